using Speculators.Algorithms.Eagle3;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>
/// The batched, KV-cached proposer against a dense reference that recomputes the whole draft sequence
/// (verified slots, then its own fed-back steps) without a cache for every drafted token; sequences of
/// different lengths, sliding-window layers, re-observation after a rejection and idle sequences.
/// </summary>
public class Eagle3ProposerTests
{
    public Eagle3ProposerTests() => TestTorch.SingleThreaded();

    /// <summary>Dense chain: verified slots (fc(aux) row, next token) at positions 0..m−1, then k greedy steps.</summary>
    static long[] DenseChain(Eagle3DraftModel draft, List<(Tensor Hidden, long Token)> slots, int k)
    {
        using var scope = NewDisposeScope();
        var hidden = slots.Select(s => s.Hidden).ToList();
        var tokens = slots.Select(s => s.Token).ToList();
        var result = new long[k];
        for (int step = 0; step < k; step++)
        {
            int n = tokens.Count;
            using var backend = new SdpaAttentionBackend(null, null, 1, n);
            var x = draft.RunLayers(draft.Embed(torch.tensor(tokens.ToArray()).unsqueeze(0)), torch.stack(hidden, 0).unsqueeze(0),
                torch.arange(n, ScalarType.Int64).unsqueeze(0), backend);
            var (logits, next) = draft.Head(x.narrow(1, n - 1, 1));
            long target = draft.DraftToTarget(logits.argmax(-1)).item<long>();
            result[step] = target;
            hidden.Add(next[0, 0]);
            tokens.Add(target);
        }
        return result;
    }

    [Fact]
    public void BatchedCachedProposalsEqualADenseRecomputation()
    {
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { Family = ModelFamily.Qwen3, Seed = 21 }, ScalarType.Float64);
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        var mapping = Speculators.Data.VocabMapping.Build(
            Enumerable.Range(0, 320).Select(i => KeyValuePair.Create((long)i, (long)((i * 7919) % 331))).ToList(), 80, 320);
        using var draft = Eagle3Builder.FromVerifier(vw,
            Eagle3DraftOptions.HeadDefaults with { LayerStyle = Eagle3LayerStyle.Qwen3, NumLayers = 2, SlidingWindow = 4, InitializerRange = 0.3, Seed = 5 },
            mapping, null, ScalarType.Float64);
        var gen = new Generator(3);
        int auxWidth = draft.NumAuxLayers * draft.AuxHiddenSize;
        Tensor Aux(int n) => torch.randn([n, auxWidth], ScalarType.Float64, generator: gen).DetachFromDisposeScope();
        long[] Tokens(int n) => torch.randint(0, 320, [n], generator: gen).data<long>().ToArray();
        Tensor Rows(Tensor aux) => draft.CombineAuxHidden(aux);

        // Sequence 0: 7 prompt slots; sequence 1: 3; sequence 2 stays idle.
        var aux0 = Aux(7); var tok0 = Tokens(7);
        var aux1 = Aux(3); var tok1 = Tokens(3);
        var slots0 = Enumerable.Range(0, 7).Select(i => (Rows(aux0)[i], tok0[i])).ToList();
        var slots1 = Enumerable.Range(0, 3).Select(i => (Rows(aux1)[i], tok1[i])).ToList();
        using var proposer = new Eagle3Proposer(draft, 3);
        proposer.Observe(0, aux0, tok0, 0);
        proposer.Observe(1, aux1, tok1, 0);
        var p1 = proposer.Propose(3);
        Assert.Equal(DenseChain(draft, slots0, 3), p1[0]);
        Assert.Equal(DenseChain(draft, slots1, 3), p1[1]);
        Assert.Empty(p1[2]);
        Assert.Equal(7, proposer.VerifiedLength(0));

        // Verification accepted one token of sequence 0 (two new positions) and none of sequence 1.
        var aux0b = Aux(2); var tok0b = Tokens(2);
        var aux1b = Aux(1); var tok1b = Tokens(1);
        proposer.Observe(0, aux0b, tok0b, 7);
        proposer.Observe(1, aux1b, tok1b, 3);
        slots0.AddRange(Enumerable.Range(0, 2).Select(i => (Rows(aux0b)[i], tok0b[i])));
        slots1.Add((Rows(aux1b)[0], tok1b[0]));
        var p2 = proposer.Propose(4);
        Assert.Equal(DenseChain(draft, slots0, 4), p2[0]);
        Assert.Equal(DenseChain(draft, slots1, 4), p2[1]);

        // Re-observe sequence 0 from position 5 (e.g. the decoder rolled back); sequence 1 has nothing new.
        var aux0c = Aux(1); var tok0c = Tokens(1);
        proposer.Observe(0, aux0c, tok0c, 5);
        var slots0c = slots0.Take(5).Append((Rows(aux0c)[0], tok0c[0])).ToList();
        var p3 = proposer.Propose(2);
        Assert.Equal(DenseChain(draft, slots0c, 2), p3[0]);
        Assert.Empty(p3[1]);
        Assert.Equal(6, proposer.VerifiedLength(0));

        // Two observations before one proposal merge; a rollback drops the tail of a pending one.
        var aux1d = Aux(3); var tok1d = Tokens(3);
        proposer.Observe(1, aux1d.narrow(0, 0, 2), tok1d.AsSpan(0, 2), 4);
        proposer.Observe(1, aux1d.narrow(0, 2, 1), tok1d.AsSpan(2, 1), 6);
        proposer.Rollback(1, 6);
        var slots1d = slots1.Concat(Enumerable.Range(0, 2).Select(i => (Rows(aux1d)[i], tok1d[i]))).ToList();
        Assert.Equal(DenseChain(draft, slots1d, 3), proposer.Propose(3)[1]);

        // A reset slot starts over.
        proposer.Reset(0);
        Assert.Equal(0, proposer.VerifiedLength(0));
        var e = Assert.Throws<SpeculatorsException>(() => proposer.Observe(0, Aux(1), Tokens(1), 3));
        Assert.Contains("gap", e.Message);
        Assert.Throws<SpeculatorsException>(() => proposer.Observe(0, Aux(2), Tokens(1), 0));
        Assert.Throws<SpeculatorsException>(() => proposer.Observe(0, Aux(1), [320], 0));
    }
}
