using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>Full forward vs KV-cache incremental decoding, batched prefill with padding vs one-by-one.</summary>
public class KvCacheTests
{
    public KvCacheTests() => TestTorch.SingleThreaded();

    public static readonly Dictionary<string, TinyModelOptions> Models = new()
    {
        ["llama"] = new TinyModelOptions { Seed = 11, NumLayers = 3, HiddenSize = 32, NumHeads = 4, NumKvHeads = 2, VocabSize = 64, WriteTokenizer = false, InitStd = 0.2 },
        ["qwen3-sliding"] = new TinyModelOptions
        {
            Family = ModelFamily.Qwen3, Seed = 12, NumLayers = 3, HiddenSize = 32, NumHeads = 4, NumKvHeads = 1, HeadDim = 16, SlidingWindow = 4,
            VocabSize = 64, WriteTokenizer = false, InitStd = 0.2, Rope = new RopeConfig { Type = RopeType.Yarn, HeadDim = 0, Factor = 4, OriginalMaxPositionEmbeddings = 16 },
        },
        ["mistral-window3"] = new TinyModelOptions
        {
            Family = ModelFamily.Mistral, Seed = 13, NumLayers = 2, HiddenSize = 32, NumHeads = 4, NumKvHeads = 2, SlidingWindow = 3,
            VocabSize = 64, WriteTokenizer = false, InitStd = 0.2,
        },
    };

    public static TheoryData<string> ModelNames() => new(Models.Keys);

    static void Close(Tensor expected, Tensor actual, string what, double rel = 2e-5) =>
        ReferenceModelTests.AssertClose(expected, actual, rel, what);

    static Tensor Ids(IEnumerable<long> ids) => torch.tensor(ids.ToArray()).unsqueeze(0);

    /// <summary>Token ids [B, T] (pad id 0) and the 0/1 attention mask for a padded batch.</summary>
    static (Tensor Ids, Tensor Mask) Pad(long[][] prompts, int t, bool left)
    {
        var ids = new long[prompts.Length * t];
        var mask = new long[prompts.Length * t];
        for (int i = 0; i < prompts.Length; i++)
        {
            int off = left ? t - prompts[i].Length : 0;
            for (int j = 0; j < prompts[i].Length; j++)
            {
                ids[i * t + off + j] = prompts[i][j];
                mask[i * t + off + j] = 1;
            }
        }
        return (torch.tensor(ids).view(prompts.Length, t), torch.tensor(mask).view(prompts.Length, t));
    }

    [Theory]
    [MemberData(nameof(ModelNames))]
    public void IncrementalDecodeWithRollbackEqualsFullForward(string name)
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models[name]);
        int n = model.Config.NumLayers;
        int[] capture = [0, 1, n];
        var seq = ForwardReferenceTests.RandomIds(12, 64, 5).ToList();
        using var cache = model.CreateCache(1, initialCapacity: 2); // forces growth
        var fed = new List<long>();

        void Step(IReadOnlyList<long> chunk)
        {
            using var s = NewDisposeScope();
            using var inc = model.Forward(Ids(chunk), cache: cache, captureLayerIds: capture);
            fed.AddRange(chunk);
            Assert.Equal(fed.Count, cache.Lengths[0]);
            using var full = model.Forward(Ids(fed), captureLayerIds: capture);
            int t0 = fed.Count - chunk.Count;
            Close(full.Logits![0].narrow(0, t0, chunk.Count), inc.Logits![0], $"{name} logits at {t0}");
            Close(full.HiddenStates![0].narrow(0, t0, chunk.Count), inc.HiddenStates![0], $"{name} hidden at {t0}");
        }

        Step(seq.Take(5).ToList());                 // prefill
        foreach (var t in seq.Skip(5).Take(3)) Step([t]); // one token at a time
        Step(seq.Skip(8).Take(4).ToList());          // k+1 tokens at once (speculative verification)
        cache.Truncate(9);                            // reject the last 3
        fed.RemoveRange(9, fed.Count - 9);
        Step([3, 1, 4]);                              // different continuation overwrites stale slots
        Step([1]);
        Assert.True(cache.Capacity >= 14);
    }

    [Theory]
    [MemberData(nameof(ModelNames))]
    public void BatchedCacheWithDifferentLengthsEqualsOneByOne(string name)
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models[name]);
        var prompts = new[] { ForwardReferenceTests.RandomIds(3, 64, 1), ForwardReferenceTests.RandomIds(6, 64, 2), ForwardReferenceTests.RandomIds(8, 64, 3) };
        var seqs = prompts.Select(p => p.ToList()).ToArray();
        int b = prompts.Length, t = prompts.Max(p => p.Length);
        // Right-padded prefill.
        var (ids, mask) = Pad(prompts, t, left: false);
        using var cache = model.CreateCache(b);
        using (var pre = model.Forward(ids, cache: cache, attentionMask: mask, logits: LogitsSelection.Last))
        {
            Assert.Equal(prompts.Select(p => (long)p.Length), cache.Lengths);
            for (int i = 0; i < b; i++)
            {
                using var single = model.Forward(Ids(seqs[i]));
                Close(single.Logits![0][-1], pre.Logits![i][0], $"{name} prefill seq {i}");
                Assert.Equal(prompts[i].Length - 1, pre.LogitsPositions![i][0].item<long>());
            }
        }
        // Decode steps: every sequence gets one new token per step; then a 2-token chunk for some, padding for others.
        for (int step = 0; step < 3; step++)
        {
            var next = Enumerable.Range(0, b).Select(i => (long)((step * 7 + i * 3) % 64)).ToArray();
            using var outp = model.Forward(torch.tensor(next).view(b, 1), cache: cache);
            for (int i = 0; i < b; i++)
            {
                seqs[i].Add(next[i]);
                using var single = model.Forward(Ids(seqs[i]));
                Close(single.Logits![0][-1], outp.Logits![i][0], $"{name} decode step {step} seq {i}");
            }
        }
        cache.Truncate([cache.Lengths[0] - 1, cache.Lengths[1], cache.Lengths[2] - 2]);
        seqs[0].RemoveAt(seqs[0].Count - 1);
        seqs[2].RemoveRange(seqs[2].Count - 2, 2);
        var chunk = torch.tensor(new long[] { 5, 6, 7, 0, 9, 0 }).view(b, 2);
        var chunkMask = torch.tensor(new long[] { 1, 1, 1, 0, 1, 0 }).view(b, 2);
        using (var outp = model.Forward(chunk, cache: cache, attentionMask: chunkMask))
        {
            seqs[0].AddRange([5, 6]);
            seqs[1].Add(7);
            seqs[2].Add(9);
            long[] valid = [2, 1, 1];
            for (int i = 0; i < b; i++)
            {
                Assert.Equal(seqs[i].Count, cache.Lengths[i]);
                using var single = model.Forward(Ids(seqs[i]));
                Close(single.Logits![0].narrow(0, seqs[i].Count - (int)valid[i], (int)valid[i]), outp.Logits![i].narrow(0, 0, valid[i]), $"{name} chunk seq {i}");
            }
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void PaddedBatchWithoutCacheEqualsOneByOne(bool leftPadding)
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models["qwen3-sliding"]);
        var prompts = new[] { ForwardReferenceTests.RandomIds(4, 64, 7), ForwardReferenceTests.RandomIds(9, 64, 8) };
        int t = 9;
        var (ids, mask) = Pad(prompts, t, leftPadding);
        using var outp = model.Forward(ids, attentionMask: mask, captureLayerIds: [2]);
        for (int i = 0; i < 2; i++)
        {
            int len = prompts[i].Length, off = leftPadding ? t - len : 0;
            using var single = model.Forward(Ids(prompts[i]), captureLayerIds: [2]);
            Close(single.Logits![0], outp.Logits![i].narrow(0, off, len), $"row {i} logits");
            Close(single.HiddenStates![0], outp.HiddenStates![i].narrow(0, off, len), $"row {i} hidden");
            Assert.False(outp.Logits[i].isnan().any().item<bool>(), "padding rows must stay finite");
        }
    }

    [Fact]
    public void CaptureIdsFollowVllmSemanticsAndLogitSelectionsAgree()
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models["llama"]);
        int n = model.Config.NumLayers;
        var ids = Ids(ForwardReferenceTests.RandomIds(7, 64, 9));
        using var all = model.Forward(ids, captureLayerIds: [n, 0, 2, 2]);
        Assert.Equal(new[] { 0, 2, n }, all.CaptureLayerIds);
        Assert.Equal(new long[] { 1, 7, 3, model.Config.HiddenSize }, all.HiddenStates!.shape);
        // id 0 is the embedding output; id N the last layer's output before the final norm.
        Close(model.model.embed_tokens.weight.index_select(0, ids[0]), all.HiddenStates[0].select(1, 0), "id 0");
        Close(all.LastHidden[0], all.HiddenStates[0].select(1, 2), "id N");
        Close(all.Logits![0], model.ComputeLogits(all.HiddenStates[0].select(1, 2)), "logits from id N");
        // id 2 is the input of layer 2: running layers 0..1 by hand gives it.
        using (var backend = new SdpaAttentionBackend(null, null, 1, 7))
        {
            var h = model.model.embed_tokens.call(ids);
            var (cos, sin) = model.model.RotaryFor(0).Forward(torch.arange(7, ScalarType.Int64).unsqueeze(0), ScalarType.Float32);
            for (int l = 0; l < 2; l++) h = model.model.layers[l].call(h, cos, sin, backend);
            Close(h[0], all.HiddenStates[0].select(1, 1), "id 2 = input of layer 2");
        }
        using var last = model.Forward(ids, logits: LogitsSelection.Last);
        Close(all.Logits[0][-1], last.Logits![0][0], "last");
        using var at = model.Forward(ids, logits: LogitsSelection.At(torch.tensor(new long[] { 4, 1 }).view(1, 2)));
        Close(all.Logits[0][4], at.Logits![0][0], "at 4");
        Close(all.Logits[0][1], at.Logits[0][1], "at 1");
        // Hidden states only, shallow ids: later layers are skipped, values unchanged.
        using var shallow = model.Forward(ids, captureLayerIds: [0, 2], logits: LogitsSelection.None);
        Assert.Null(shallow.Logits);
        Close(all.HiddenStates[0].narrow(1, 0, 2), shallow.HiddenStates![0], "shallow captures");
    }

    /// <summary>A caller-supplied backend (plain eager attention) gets every layer with its info and gives the same result.</summary>
    sealed class EagerBackend : IAttentionBackend
    {
        public readonly List<AttentionLayerInfo> Calls = [];

        public Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer)
        {
            Calls.Add(layer);
            int rep = layer.NumHeads / layer.NumKvHeads;
            var kk = k.repeat_interleave(rep, 1);
            var vv = v.repeat_interleave(rep, 1);
            long t = q.shape[2];
            var scores = q.matmul(kk.transpose(2, 3)).mul(layer.Scale);
            var causal = torch.ones([t, t], ScalarType.Bool).tril();
            if (layer.SlidingWindow is int w) causal = causal.logical_and(torch.ones([t, t], ScalarType.Bool).triu(-(w - 1)));
            scores = scores.masked_fill(causal.logical_not(), double.NegativeInfinity);
            return scores.softmax(-1).matmul(vv);
        }
    }

    [Fact]
    public void CustomAttentionBackendIsUsedForEveryLayer()
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models["qwen3-sliding"]);
        var ids = Ids(ForwardReferenceTests.RandomIds(10, 64, 4));
        var eager = new EagerBackend();
        using var custom = model.Forward(ids, backend: eager);
        using var sdpa = model.Forward(ids);
        Close(sdpa.Logits!, custom.Logits!, "eager backend");
        Assert.Equal(new[] { 0, 1, 2 }, eager.Calls.Select(c => c.LayerIndex));
        Assert.Equal(new int?[] { null, 4, 4 }, eager.Calls.Select(c => c.SlidingWindow));
        Assert.All(eager.Calls, c => Assert.Equal(1.0 / Math.Sqrt(16), c.Scale, 12));
    }

    [Fact]
    public void BadInputsAreRejectedBeforeAnyWork()
    {
        using var scope = NewDisposeScope();
        using var model = TinyModelFactory.CreateInMemory(Models["llama"]);
        var ids = Ids([1, 2, 3]);
        Assert.Contains("out of range [0, 3]", Assert.Throws<SpeculatorsException>(() => model.Forward(ids, captureLayerIds: [4])).Message);
        Assert.Contains("outside the vocabulary [0, 64)", Assert.Throws<SpeculatorsException>(() => model.Forward(Ids([1, 64]))).Message);
        Assert.Contains("outside the vocabulary", Assert.Throws<SpeculatorsException>(() => model.Forward(Ids([-1]))).Message);
        using var cache = model.CreateCache(2);
        Assert.Contains("holds 2 sequences", Assert.Throws<SpeculatorsException>(() => model.Forward(ids, cache: cache)).Message);
        var left = torch.tensor(new long[] { 0, 1, 1, 1, 1, 1 }).view(2, 3);
        Assert.Contains("pad on the right", Assert.Throws<SpeculatorsException>(() => model.Forward(torch.ones([2, 3], ScalarType.Int64), cache: cache, attentionMask: left)).Message);
        Assert.Equal(new long[] { 0, 0 }, cache.Lengths);
        Assert.Contains("cannot set its length to 5", Assert.Throws<SpeculatorsException>(() => cache.Truncate(5)).Message);
        Assert.Contains("must be [batch, tokens]", Assert.Throws<SpeculatorsException>(() => model.Forward(torch.tensor(new long[] { 1, 2 }))).Message);
    }
}
