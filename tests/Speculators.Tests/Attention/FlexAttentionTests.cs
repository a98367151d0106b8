using Speculators.Attention;
using TorchSharp;
using static Speculators.Tests.Attention.AttentionReference;
using static TorchSharp.torch;

namespace Speculators.Tests.Attention;

/// <summary>
/// Block-sparse attention against dense masked attention in fp64 (plain tensor ops, autograd
/// for the gradients), forward and backward.
/// </summary>
public class FlexAttentionTests
{
    sealed record Case(string Name, MaskMod Mod, long QLen, long KvLen, int B = 1, int Hq = 4, int Hkv = 2, int D = 16,
        int QBlock = 16, int KvBlock = 16, int MaxKvTokens = BlockMask.DefaultMaxKvTokensPerCall, double? Scale = null,
        int? Dv = null, bool SequenceMajor = false);

    /// <summary>
    /// Runs flex and the dense reference on the same inputs and compares the output and the
    /// gradients of a random linear function of the output. Inputs are drawn in fp64 and rounded
    /// to <paramref name="dtype"/>; the reference runs in fp64 on the rounded values.
    /// </summary>
    static void Check(Case c, ScalarType dtype, double tol, int seed = 0, BlockMask? prebuilt = null)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(seed);
        var q64 = randn(c.B, c.Hq, c.QLen, c.D, dtype: ScalarType.Float64).to(dtype).to(ScalarType.Float64);
        var k64 = randn(c.B, c.Hkv, c.KvLen, c.D, dtype: ScalarType.Float64).to(dtype).to(ScalarType.Float64);
        int dv = c.Dv ?? c.D;
        var v64 = randn(c.B, c.Hkv, c.KvLen, dv, dtype: ScalarType.Float64).to(dtype).to(ScalarType.Float64);
        var w = randn(c.B, c.Hq, c.QLen, dv, dtype: ScalarType.Float64);
        double scale = c.Scale ?? 1.0 / Math.Sqrt(c.D);

        var qr = q64.detach().requires_grad_(true);
        var kr = k64.detach().requires_grad_(true);
        var vr = v64.detach().requires_grad_(true);
        using var dense = c.Mod.ToDense(c.QLen, c.KvLen);
        var refOut = AttentionReference.Attention(qr, kr, vr, dense, scale);
        (refOut * w).sum().backward();

        var bm = prebuilt ?? BlockMask.Create(c.Mod, c.QLen, c.KvLen, c.QBlock, c.KvBlock, maxKvTokensPerCall: c.MaxKvTokens);
        try
        {
            // SequenceMajor: leaves are [B, L, H, D] and attention sees transposed (non-contiguous) views.
            Tensor Leaf(Tensor x) => (c.SequenceMajor ? x.transpose(1, 2).contiguous() : x).to(dtype).detach().requires_grad_(true);
            Tensor View(Tensor leaf) => c.SequenceMajor ? leaf.transpose(1, 2) : leaf;
            var qf = Leaf(q64);
            var kf = Leaf(k64);
            var vf = Leaf(v64);
            var outF = FlexAttention.Forward(View(qf), View(kf), View(vf), bm, c.Scale);
            Assert.Equal(dtype, outF.dtype);
            Assert.Equal(new[] { (long)c.B, c.Hq, c.QLen, dv }, outF.shape);
            (outF.to(ScalarType.Float64) * w).sum().backward();

            AssertClose($"{c.Name} out", refOut, outF, tol);
            AssertClose($"{c.Name} dq", qr.grad!, View(qf.grad!), tol);
            AssertClose($"{c.Name} dk", kr.grad!, View(kf.grad!), tol);
            AssertClose($"{c.Name} dv", vr.grad!, View(vf.grad!), tol);
        }
        finally
        {
            if (prebuilt is null) bm.Dispose();
        }
    }

    static void AssertClose(string what, Tensor expected, Tensor actual, double tol)
    {
        var a = actual.to(ScalarType.Float64);
        Assert.False(a.isnan().any().item<bool>(), $"{what}: NaN");
        double err = (a - expected).abs().max().item<double>();
        double size = Math.Max(1.0, expected.abs().max().item<double>());
        Assert.True(err <= tol * size, $"{what}: max abs error {err:E3} > {tol:E1} × {size:F2}");
    }

    static long[] Docs(int seed, int L, int maxDoc, bool padding) => RandomDocs(new Random(seed), L, maxDoc, padding);

    [Fact]
    public void Eagle3TttStepsMatchDenseInFp64()
    {
        // L not a multiple of the block size, several documents incl. length-1 ones and padding,
        // GQA 4:2, TTT steps 0–2 with kv_len = (k+1)·L via ExtendKv.
        int L = 77;
        var docs = Docs(1, L, 30, padding: true);
        var mod = MaskMod.Eagle3(docs);
        var bm = BlockMask.Create(mod, L, L, 16, 16);
        for (int step = 0; step < 3; step++)
        {
            if (step > 0)
            {
                var next = bm.ExtendKv((step + 1L) * L);
                bm.Dispose();
                bm = next;
            }
            Check(new Case($"eagle3 step {step}", mod, L, (step + 1L) * L), ScalarType.Float64, 1e-10, seed: step, prebuilt: bm);
        }
        bm.Dispose();
    }

    [Fact]
    public void SlidingWindowGqaAndBatchMatchDenseInFp32()
    {
        int L = 90;
        var docs = Docs(2, L, 60, padding: true);
        var mod = MaskMod.Eagle3(docs, slidingWindow: 13);
        Check(new Case("window step 0", mod, L, L, B: 2, Hq: 6, Hkv: 2), ScalarType.Float32, 2e-5);
        Check(new Case("window step 2", mod, L, 3L * L, Hq: 4, Hkv: 1, QBlock: 32, KvBlock: 8), ScalarType.Float32, 2e-5, seed: 1);
    }

    [Fact]
    public void GroupingAndGatherPathsAgree()
    {
        // Small MaxKvTokens forces one q block per call (contiguous views where possible); a large
        // one batches q blocks with equal kv-block counts through gathers.
        int L = 100;
        var docs = Docs(3, L, 9, padding: false);    // many short documents: many equal-count q blocks
        var mod = MaskMod.Eagle3(docs);
        Check(new Case("one block per call", mod, L, 2L * L, QBlock: 8, KvBlock: 8, MaxKvTokens: 1), ScalarType.Float64, 1e-10);
        Check(new Case("batched calls", mod, L, 2L * L, QBlock: 8, KvBlock: 8, MaxKvTokens: 1 << 20), ScalarType.Float64, 1e-10);
        Check(new Case("plain causal", MaskMod.Causal(), L, L, QBlock: 16, KvBlock: 16), ScalarType.Float64, 1e-10);
    }

    [Fact]
    public void DFlashAnchorBlocksWithQLenNotKvLen()
    {
        int L = 70, bs = 4;
        var docs = Docs(4, L, 25, padding: true);
        var anchors = new long[] { 2, 9, 17, 18, 33, 40, 51, 0 };   // last one invalid (0), as the trainer pads them
        long qLen = anchors.Length * bs, kvLen = L + qLen;
        Check(new Case("dflash bidirectional", MaskMod.DFlash(anchors, docs, bs), qLen, kvLen, Hq: 4, Hkv: 4), ScalarType.Float64, 1e-10);
        Check(new Case("dflash causal window", MaskMod.DFlash(anchors, docs, bs, slidingWindow: 12, causalInBlock: true),
            qLen, kvLen, QBlock: 8, KvBlock: 16), ScalarType.Float32, 2e-5);
    }

    [Fact]
    public void FullyMaskedRowsGiveZeroAndNoNaN()
    {
        // Rows q ≡ 0 (mod 3) see nothing; query block 0..7 has only partial blocks.
        var mod = MaskMod.Custom((q, kv) => kv.lt(q).logical_and(q.remainder(3).ne(0)), "holes");
        var c = new Case("holes", mod, 37, 37, QBlock: 8, KvBlock: 8);
        Check(c, ScalarType.Float64, 1e-10);
        Check(c with { Name = "holes fp32" }, ScalarType.Float32, 2e-5);
        // A q block that sees nothing at all, and a mask that hides everything.
        Check(new Case("empty q blocks", MaskMod.QRange(20, 40) & MaskMod.Causal(), 40, 40, QBlock: 8, KvBlock: 8), ScalarType.Float64, 1e-10);
        using var none = BlockMask.Create(MaskMod.None(), 5, 5, 4, 4);
        using var q = randn(1, 2, 5, 8);
        using var o = FlexAttention.Forward(q, q, q, none);
        Assert.Equal(0.0, o.abs().max().item<float>());
    }

    [Fact]
    public void CustomScaleAndAsymmetricBlocks()
    {
        int L = 45;
        var docs = Docs(6, L, 20, padding: true);
        Check(new Case("scale 0.3", MaskMod.Eagle3(docs), L, 2L * L, QBlock: 16, KvBlock: 4, Scale: 0.3), ScalarType.Float64, 1e-10);
    }

    [Fact]
    public void NonContiguousInputsAndValueHeadDim()
    {
        int L = 52;
        var docs = Docs(9, L, 20, padding: true);
        Check(new Case("sequence-major views", MaskMod.Eagle3(docs), L, 2L * L, B: 2, SequenceMajor: true), ScalarType.Float64, 1e-10);
        Check(new Case("dv 8", MaskMod.Eagle3(docs, slidingWindow: 9), L, L, D: 16, Dv: 8), ScalarType.Float64, 1e-10);
    }

    [Fact]
    public void BFloat16IsCloseToTheFp64Reference()
    {
        int L = 50;
        var docs = Docs(7, L, 20, padding: true);
        Check(new Case("bf16", MaskMod.Eagle3(docs), L, 2L * L, Hq: 2, Hkv: 1, D: 8), ScalarType.BFloat16, 3e-2);
    }

    [Fact]
    public void WithoutGradientsNoGraphIsBuiltAndResultsAgree()
    {
        int L = 40;
        var mod = MaskMod.Eagle3(Docs(8, L, 15, padding: true));
        using var bm = BlockMask.Create(mod, L, L, 16, 16);
        using var q = randn(1, 2, L, 8);
        using var k = randn(1, 1, L, 8);
        using var v = randn(1, 1, L, 8);
        using var a = FlexAttention.Forward(q, k, v, bm);
        Assert.False(a.requires_grad);
        using var qg = q.detach().requires_grad_(true);
        using var b = FlexAttention.Forward(qg, k, v, bm);
        Assert.True(b.requires_grad);
        Assert.True(a.allclose(b.detach(), rtol: 0, atol: 0));
        using (torch.no_grad())
        {
            using var c = FlexAttention.Forward(qg, k, v, bm);
            Assert.False(c.requires_grad);
        }
    }

    [Fact]
    public void ShapeErrorsThrowInsteadOfAborting()
    {
        using var bm = BlockMask.Create(MaskMod.Causal(), 10, 10, 4, 4);
        using var q = randn(1, 4, 10, 8);
        using var k = randn(1, 2, 10, 8);
        using var k3 = randn(1, 3, 10, 8);
        using var kShort = randn(1, 2, 9, 8);
        using var kD = randn(1, 2, 10, 4);
        Assert.Contains("multiple of kv heads", Assert.Throws<ArgumentException>(() => FlexAttention.Forward(q, k3, k3, bm)).Message);
        Assert.Contains("do not match the block mask", Assert.Throws<ArgumentException>(() => FlexAttention.Forward(q, kShort, kShort, bm)).Message);
        Assert.Contains("head dims differ", Assert.Throws<ArgumentException>(() => FlexAttention.Forward(q, kD, kD, bm)).Message);
        Assert.Contains("dtypes differ", Assert.Throws<ArgumentException>(() => FlexAttention.Forward(q, k.to(ScalarType.Float64), k, bm)).Message);
        Assert.Contains("4-D", Assert.Throws<ArgumentException>(() => FlexAttention.Forward(q[0], k, k, bm)).Message);
    }
}
