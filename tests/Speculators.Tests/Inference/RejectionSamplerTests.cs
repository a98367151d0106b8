using Speculators.Inference;

namespace Speculators.Tests.Inference;

public class RejectionSamplerTests
{
    [Fact]
    public void GreedyAcceptsTheMatchingPrefixThenEmitsTheTargetToken()
    {
        var none = RejectionSampler.Greedy([4, 5, 6], [9, 5, 6, 7]);
        Assert.Equal(0, none.Accepted);
        Assert.Equal(new long[] { 9 }, none.Emitted);
        var two = RejectionSampler.Greedy([4, 5, 6], [4, 5, 8, 7]);
        Assert.Equal(2, two.Accepted);
        Assert.Equal(new long[] { 4, 5, 8 }, two.Emitted);
        var all = RejectionSampler.Greedy([4, 5, 6], [4, 5, 6, 7]);
        Assert.Equal(3, all.Accepted);
        Assert.Equal(new long[] { 4, 5, 6, 7 }, all.Emitted); // bonus token
        // A later match after a mismatch does not count.
        Assert.Equal(0, RejectionSampler.Greedy([4, 5], [3, 5, 1]).Accepted);
        var plain = RejectionSampler.Greedy([], [2]);
        Assert.Equal(new long[] { 2 }, plain.Emitted);
    }

    [Fact]
    public void RandomAcceptsCertainDraftsAndNeverRecoversTheRejectedOne()
    {
        var rng = new Random(1);
        // Position 0 puts all mass on the draft → always accepted; position 1 gives the draft 0 → always rejected,
        // and the recovered token is drawn from the rest (here only ids 1 and 2, in ratio 1:3).
        float[] probs = [0, 0, 1, 0, /**/ 0.75f, 0.05f, 0.15f, 0, /**/ 0.25f, 0.25f, 0.25f, 0.25f];
        var counts = new int[4];
        for (int i = 0; i < 4000; i++)
        {
            var r = RejectionSampler.Random([2, 3], probs, 4, rng);
            Assert.Equal(1, r.Accepted);
            Assert.Equal(2, r.Emitted[0]);
            counts[r.Emitted[1]]++;
        }
        Assert.Equal(0, counts[3]);
        // Recovered = max(p − onehot(draft), 0) renormalized = p with the draft removed: 0.75 : 0.05 : 0.15.
        Assert.InRange(counts[0] / 4000.0, 0.75 / 0.95 - 0.03, 0.75 / 0.95 + 0.03);
        Assert.InRange(counts[1] / 4000.0, 0.05 / 0.95 - 0.015, 0.05 / 0.95 + 0.015);
    }

    [Fact]
    public void CategoricalSamplingFallsBackWhenOnlyTheExcludedIdHasMass()
    {
        var rng = new Random(2);
        // No mass anywhere else: the lowest other id.
        Assert.Equal(1, RejectionSampler.SampleCategorical([0f, 0f, 0f], rng, exclude: 0));
        Assert.Equal(0, RejectionSampler.SampleCategorical([0f, 1f, 0f], rng, exclude: 1));
        // Only one other id has mass.
        Assert.Equal(0, RejectionSampler.SampleCategorical([1f, 0f, 0f], rng, exclude: 1));
        Assert.Equal(2, RejectionSampler.SampleCategorical([0f, 1f, 0.5f], rng, exclude: 1));
    }

    /// <summary>A deterministic chain draft: each proposal is the previous token + 1 (mod V).</summary>
    sealed class SuccessorDraft(int vocab) : IDraftProposer
    {
        readonly Dictionary<int, long> _last = new();
        public string Name => "successor";
        public IReadOnlyList<int> VerifierLayerIds => [];
        public int? DefaultNumSpeculativeTokens => null;
        public long ForwardPasses => 0;
        public void Start(int batchSize) => _last.Clear();
        public void Observe(IReadOnlyList<DraftObservation> observations)
        {
            foreach (var o in observations) _last[o.Sequence] = o.Context[^1];
        }
        public long[][] Propose(IReadOnlyList<int> sequences, int numTokens) =>
            sequences.Select(s => Enumerable.Range(1, numTokens).Select(i => (_last[s] + i) % vocab).ToArray()).ToArray();
        public void Dispose() { }
    }

    /// <summary>
    /// Speculative sampling keeps the verifier's distribution: the joint law of the first three generated tokens
    /// (prefill sample, then a step with two greedy drafts that are sometimes right and sometimes wrong) matches the
    /// exact Markov-chain probabilities at temperature 0.7 — chi-square test, fixed seed, α = 0.001.
    /// </summary>
    [Fact]
    public void SpeculativeSamplingKeepsTheVerifierDistribution()
    {
        const int V = 4;
        const double T = 0.7;
        double[][] markov =
        [
            [0.10, 0.50, 0.20, 0.20],
            [0.30, 0.05, 0.45, 0.20],
            [0.25, 0.25, 0.10, 0.40],
            [0.60, 0.10, 0.20, 0.10],
        ];
        // Temperature applies to logits = log P: P_T ∝ P^(1/T).
        var pt = markov.Select(row =>
        {
            var w = row.Select(p => Math.Pow(p, 1 / T)).ToArray();
            double z = w.Sum();
            return w.Select(x => x / z).ToArray();
        }).ToArray();
        var v = new ToyVerifier(V) { Markov = markov };
        const int N = 6000;
        var prompts = Enumerable.Repeat((IReadOnlyList<long>)new long[] { 3 }, N).ToArray();
        var o = new GenerationOptions { MaxNewTokens = 3, Temperature = T, NumSpeculativeTokens = 2, BatchSize = 1000, Seed = 2024 };
        using var draft = new SuccessorDraft(V);
        var run = new SpeculativeDecoder(v, draft).Generate(prompts, o);

        var observed = new double[V * V * V];
        foreach (var r in run.Results)
        {
            Assert.Equal(3, r.Tokens.Length);
            observed[(r.Tokens[0] * V + r.Tokens[1]) * V + r.Tokens[2]]++;
        }
        double chi2 = 0;
        for (int a = 0; a < V; a++)
        for (int b = 0; b < V; b++)
        for (int c = 0; c < V; c++)
        {
            double e = N * pt[3][a] * pt[a][b] * pt[b][c];
            double d = observed[(a * V + b) * V + c] - e;
            chi2 += d * d / e;
        }
        int df = V * V * V - 1;
        // Wilson–Hilferty: the 0.999 quantile of chi-square(df).
        double z = 3.0902, h = 2.0 / (9 * df);
        double critical = df * Math.Pow(1 - h + z * Math.Sqrt(h), 3);
        Assert.True(chi2 < critical, $"chi2 = {chi2:F1} ≥ {critical:F1} (df {df})");
        // The drafts were both accepted and rejected (the test exercises both paths).
        Assert.InRange(run.Stats.DraftAcceptanceRate, 0.1, 0.9);
    }
}
