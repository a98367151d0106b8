using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>
/// The chunked custom-autograd losses against an fp64 eager reference written here from the
/// definitions (values and autograd gradients), plus the masked-mean and loss-spec rules.
/// </summary>
public class DistillationLossTests
{
    /// <summary>fp64 eager definitions (the Python tool's eager losses, in a plain form).</summary>
    static Tensor Reference(LossKind kind, Tensor z, Tensor t)
    {
        var logq = z.log_softmax(-1);
        var logp = t.log_softmax(-1);
        var q = logq.exp();
        var p = logp.exp();
        var alpha = q.minimum(p).sum(-1);
        switch (kind)
        {
            case LossKind.KlDiv: return (p * (logp - logq)).sum(-1);
            case LossKind.ReverseKl: return (q * (logq - logp)).sum(-1);
            case LossKind.JensenShannon:
            {
                var logm = ((p + q) / 2).log();
                return 0.5 * (p * (logp - logm)).sum(-1) + 0.5 * (q * (logq - logm)).sum(-1);
            }
            case LossKind.CrossEntropy: return -logq.gather(-1, t.argmax(-1, keepdim: true)).squeeze(-1);
            case LossKind.TotalVariation: return 1.0 - alpha;
            case LossKind.NegLogAcceptance: return -alpha.clamp_min(1e-5).log();
            case LossKind.LkHybrid:
            {
                var w = (-3.0 * alpha.detach()).exp();
                return w * (p * (logp - logq)).sum(-1) + (1.0 - w) * (1.0 - alpha);
            }
            default: throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    public static IEnumerable<object[]> Kinds() => Enum.GetValues<LossKind>().Select(k => new object[] { k });

    [Theory]
    [MemberData(nameof(Kinds))]
    public void ValuesAndGradientsMatchFp64Autograd(LossKind kind)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(1234);
        var z = (torch.randn(2, 5, 11) * 2).to(ScalarType.Float32);
        var t = (torch.randn(2, 5, 11) * 2).to(ScalarType.Float32);
        var w = torch.rand(2, 5);

        var zLeaf = z.clone().requires_grad_(true);
        var e = DistillationLoss.PerPosition(kind, zLeaf, t);
        Assert.Equal(ScalarType.Float32, e.dtype);
        Assert.Equal(new long[] { 2, 5 }, e.shape);
        (e * w).sum().backward();

        var z64 = z.to(ScalarType.Float64).requires_grad_(true);
        var eRef = Reference(kind, z64, t.to(ScalarType.Float64));
        (eRef * w.to(ScalarType.Float64)).sum().backward();

        AssertClose(eRef.detach(), e, 2e-6, 2e-6);
        AssertClose(z64.grad!, zLeaf.grad!, 2e-6, 2e-6);
    }

    [Fact]
    public void ChunkingDoesNotChangeResults()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(7);
        var z = torch.randn(3, 9, 17);
        var t = torch.randn(3, 9, 17);
        var g = torch.rand(3, 9);
        long saved = DistillationLoss.ChunkElements;
        try
        {
            Tensor Run(long chunk, out Tensor grad)
            {
                DistillationLoss.ChunkElements = chunk;
                var leaf = z.clone().requires_grad_(true);
                var e = DistillationLoss.PerPosition(LossKind.JensenShannon, leaf, t);
                (e * g).sum().backward();
                grad = leaf.grad!;
                return e.detach();
            }
            var whole = Run(1 << 20, out var gWhole);
            var small = Run(17 * 4, out var gSmall);   // 4 rows per chunk, last chunk partial
            var single = Run(1, out var gSingle);      // one row per chunk
            // Same math per row; only the vectorized reduction order may differ by a rounding step.
            AssertClose(whole, small, 1e-7, 1e-6);
            AssertClose(whole, single, 1e-7, 1e-6);
            AssertClose(gWhole, gSmall, 1e-8, 1e-6);
            AssertClose(gWhole, gSingle, 1e-8, 1e-6);
        }
        finally
        {
            DistillationLoss.ChunkElements = saved;
        }
    }

    [Fact]
    public void Bf16LogitsAreComputedInFp32AndGetBf16Gradients()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(3);
        var z = torch.randn(1, 4, 32).to(ScalarType.BFloat16).requires_grad_(true);
        var t = torch.randn(1, 4, 32).to(ScalarType.BFloat16);
        var e = DistillationLoss.PerPosition(LossKind.KlDiv, z, t);
        var eRef = Reference(LossKind.KlDiv, z.detach().to(ScalarType.Float64), t.to(ScalarType.Float64));
        AssertClose(eRef, e, 1e-6, 1e-5);
        e.sum().backward();
        Assert.Equal(ScalarType.BFloat16, z.grad!.dtype);
    }

    [Fact]
    public void MaskedRowsGetZeroGradient()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(5);
        long saved = DistillationLoss.ChunkElements;
        DistillationLoss.ChunkElements = 8; // one row per chunk so masked rows are skipped
        try
        {
            var z = torch.randn(1, 4, 8).requires_grad_(true);
            var t = torch.randn(1, 4, 8);
            var mask = torch.tensor(new long[] { 1, 0, 0, 1 }).reshape(1, 4);
            var loss = DistillationLoss.MaskedMean(DistillationLoss.PerPosition(LossKind.KlDiv, z, t), mask);
            loss.backward();
            var g = z.grad!;
            Assert.Equal(0.0, g[0, 1].abs().sum().ToDouble());
            Assert.Equal(0.0, g[0, 2].abs().sum().ToDouble());
            Assert.True(g[0, 0].abs().sum().ToDouble() > 0);
        }
        finally
        {
            DistillationLoss.ChunkElements = saved;
        }
    }

    [Fact]
    public void MaskedMeanFollowsThePythonFormula()
    {
        using var scope = NewDisposeScope();
        double[,] e = { { 1.0, 2.0, 3.0 }, { 4.0, 5.0, 6.0 } };
        double[,] w = { { 0.5, 2.0, 1.0 }, { 1.0, 1.0, 1.0 } };
        var et = torch.tensor(new float[] { 1, 2, 3, 4, 5, 6 }).reshape(2, 3);
        var mt = torch.tensor(new long[] { 1, 0, 1, 0, 0, 0 }).reshape(2, 3);
        var wt = torch.tensor(new float[] { 0.5f, 2, 1, 1, 1, 1 }).reshape(2, 3);
        // row 0: (1·0.5 + 3·1)·0.3 / (2 + 1e-5); row 1: 0 / 1e-5; mean over rows
        double expected = 0.5 * ((e[0, 0] * w[0, 0] + e[0, 2] * w[0, 2]) * 0.3 / (2 + 1e-5) + 0.0);
        Assert.Equal(expected, DistillationLoss.MaskedMean(et, mt, wt, 0.3).ToDouble(), 6);
    }

    [Fact]
    public void CompoundLossSumsWeightedTermsAndReportsEach()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(9);
        var z = torch.randn(1, 6, 10).requires_grad_(true);
        var t = torch.randn(1, 6, 10);
        var mask = torch.tensor(new long[] { 0, 1, 1, 1, 0, 1 }).reshape(1, 6);
        var spec = LossSpec.Parse("{\"ce\": 0.1, \"tv\": 0.9}");
        var (total, terms) = DistillationLoss.Compound(z, t, mask, spec, scale: 0.5);
        Assert.Equal(new[] { "ce", "tv" }, terms.Select(x => x.Name).ToArray());
        double ce = DistillationLoss.MaskedMean(DistillationLoss.PerPosition(LossKind.CrossEntropy, z, t), mask, scale: 0.5).ToDouble();
        double tv = DistillationLoss.MaskedMean(DistillationLoss.PerPosition(LossKind.TotalVariation, z, t), mask, scale: 0.5).ToDouble();
        Assert.Equal(ce, terms[0].Value.ToDouble(), 6);
        Assert.Equal(tv, terms[1].Value.ToDouble(), 6);
        Assert.Equal(0.1 * ce + 0.9 * tv, total.ToDouble(), 6);
        Assert.True(total.requires_grad);

        var (single, none) = DistillationLoss.Compound(z, t, mask, LossSpec.Parse("kl_div"));
        Assert.Empty(none);
        Assert.True(single.ToDouble() > 0);
    }

    [Fact]
    public void LossSpecParsesNamesAndWeights()
    {
        Assert.Equal(LossKind.KlDiv, LossSpec.Parse("kl_div").Terms.Single().Kind);
        Assert.Equal("jsd", LossSpec.Parse(" jsd ").ToString());
        var spec = LossSpec.Parse("{\"tv\": 0.9, \"ce\": 0.1}");
        Assert.True(spec.IsCompound);
        Assert.Equal(new[] { ("tv", 0.9), ("ce", 0.1) }, spec.Terms.Select(t => (t.Name, t.Weight)).ToArray());
        Assert.Equal("{\"tv\": 0.9, \"ce\": 0.1}", spec.ToString());
        Assert.Equal(7, LossSpec.KnownNames.Count);
    }

    [Theory]
    [InlineData("kl", "unknown loss function 'kl'")]
    [InlineData("{\"mse\": 1}", "unknown loss function 'mse'")]
    [InlineData("{\"ce\": \"a\"}", "must be a finite number")]
    [InlineData("{}", "non-empty JSON object")]
    [InlineData("[1]", "non-empty JSON object")]
    [InlineData("", "empty value")]
    public void LossSpecRejectsBadInput(string text, string message)
    {
        var e = Assert.Throws<SpeculatorsException>(() => LossSpec.Parse(text));
        Assert.Contains(message, e.Message);
        Assert.StartsWith("--loss-fn", e.Message);
    }

    static void AssertClose(Tensor expected, Tensor actual, double atol, double rtol)
    {
        var e = expected.to(ScalarType.Float64).flatten().data<double>().ToArray();
        var a = actual.to(ScalarType.Float64).flatten().data<double>().ToArray();
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= atol + rtol * Math.Abs(e[i]), $"element {i}: expected {e[i]:R}, got {a[i]:R}");
    }
}
