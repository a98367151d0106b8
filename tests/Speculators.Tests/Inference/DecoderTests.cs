using Speculators.Inference;

namespace Speculators.Tests.Inference;

/// <summary>The decoding loop against a prefix-hash verifier double (any bookkeeping slip changes the outputs).</summary>
public class DecoderTests
{
    static readonly long[][] Prompts =
    [
        [5, 9, 3, 11, 2],
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
        [14],
        [7, 7, 7, 0, 12, 3, 3],
        [10, 4],
    ];

    static IReadOnlyList<IReadOnlyList<long>> P(params long[][] p) => p;

    [Fact]
    public void PlainGreedyMatchesTheDirectReference()
    {
        var v = new ToyVerifier(16);
        var o = new GenerationOptions { MaxNewTokens = 12, EosTokenIds = new HashSet<long> { 1 }, BatchSize = 3 };
        var run = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var expected = v.GreedyReference(Prompts[i], 12, 1);
            Assert.Equal(expected, run.Results[i].Tokens);
            Assert.Equal(expected[^1] == 1 ? FinishReason.Stop : FinishReason.Length, run.Results[i].FinishReason);
        }
        Assert.Equal(0, run.Stats.NumDrafts);
        Assert.Equal(run.Results.Sum(r => r.Tokens.Length), run.Timings.GeneratedTokens);
        // Some prompt should stop on EOS and some on length, or the test would not cover both.
        Assert.Contains(run.Results, r => r.FinishReason == FinishReason.Stop);
        Assert.Contains(run.Results, r => r.FinishReason == FinishReason.Length);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(5)]
    public void OracleDraftIsAcceptedEverywhere(int k)
    {
        var v = new ToyVerifier(32);
        int steps = 4;
        int maxNew = 1 + steps * (k + 1); // prefill token + full runs of k+1: the last step ends exactly at the limit
        var o = new GenerationOptions { MaxNewTokens = maxNew, IgnoreEos = true, NumSpeculativeTokens = k, BatchSize = 2 };
        var plain = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(Prompts, plain), v.VocabSize);
        var spec = new SpeculativeDecoder(v, oracle).Generate(Prompts, o);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(plain.Results[i].Tokens, spec.Results[i].Tokens);
        Assert.Equal(k + 1, spec.Stats.MeanAcceptanceLength, 12);
        Assert.Equal(1.0, spec.Stats.DraftAcceptanceRate, 12);
        Assert.All(spec.Stats.PerPositionAcceptance, p => Assert.Equal(1.0, p, 12));
        Assert.Equal(Prompts.Length * steps, spec.Stats.NumDrafts);
        Assert.All(spec.Results, r => Assert.Equal(steps, r.DecodeSteps));
    }

    [Fact]
    public void RandomDraftGetsAcceptanceLengthNearOneAndTheSameOutput()
    {
        var v = new ToyVerifier(64);
        var o = new GenerationOptions { MaxNewTokens = 40, IgnoreEos = true, NumSpeculativeTokens = 3, BatchSize = 5 };
        var plain = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        using var random = new RandomDraft(v.VocabSize, seed: 3);
        var spec = new SpeculativeDecoder(v, random).Generate(Prompts, o);
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(plain.Results[i].Tokens, spec.Results[i].Tokens);
        // Uniform drafts are right with probability 1/V per position: E[AL] = 1 + Σ (1/64)^i ≈ 1.016.
        Assert.InRange(spec.Stats.MeanAcceptanceLength, 1.0, 1.1);
        Assert.Equal(3 * spec.Stats.NumDrafts, spec.Stats.NumDraftTokens);
        // Every step emits accepted + 1 tokens: the counters and the outputs agree.
        Assert.Equal(spec.Results.Sum(r => r.Tokens.Length), spec.Results.Count + spec.Stats.NumDrafts + spec.Stats.NumAcceptedTokens);
    }

    [Fact]
    public void CorruptedOracleGivesTheExpectedPerPositionAcceptance()
    {
        var v = new ToyVerifier(50);
        const int k = 4;
        const double q = 0.3;
        var prompts = Enumerable.Range(0, 24).Select(i => (IReadOnlyList<long>)new long[] { i % 50, (i * 7 + 3) % 50, 1 + i % 11 }).ToArray();
        var o = new GenerationOptions { MaxNewTokens = 200, IgnoreEos = true, NumSpeculativeTokens = k, BatchSize = 12 };
        var reference = SpeculativeDecoder.GeneratePlain(v, prompts, o with { MaxNewTokens = 200 + k });
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(prompts, reference), v.VocabSize, corruption: q, seed: 5);
        var spec = new SpeculativeDecoder(v, oracle).Generate(prompts, o);
        for (int i = 0; i < prompts.Length; i++) Assert.Equal(reference.Results[i].Tokens[..200], spec.Results[i].Tokens);
        // A corrupted token is a different id, so it is rejected (and the target's argmax emitted instead), unless the
        // uncorrupted prefix ended earlier: P(at least i+1 accepted) = (1 − q)^(i+1).
        var per = spec.Stats.PerPositionAcceptance;
        long n = spec.Stats.NumDrafts;
        Assert.True(n > 1000, $"only {n} drafts");
        for (int i = 0; i < k; i++)
        {
            double p = Math.Pow(1 - q, i + 1);
            double sd = Math.Sqrt(p * (1 - p) / n);
            Assert.InRange(per[i], p - 5 * sd, p + 5 * sd);
        }
        Assert.InRange(spec.Stats.MeanAcceptanceLength, oracle.ExpectedAcceptanceLength(k) - 0.1, oracle.ExpectedAcceptanceLength(k) + 0.1);
    }

    [Fact]
    public void EosInsideAnAcceptedRunStopsThereButCountsTheRun()
    {
        var v = new ToyVerifier(16);
        const int k = 4;
        var eos = new HashSet<long> { 1 };
        var o = new GenerationOptions { MaxNewTokens = 60, EosTokenIds = eos, NumSpeculativeTokens = k, BatchSize = 5 };
        // The oracle follows the verifier past EOS (reference decoded with ignore_eos), so every step accepts all k.
        var past = SpeculativeDecoder.GeneratePlain(v, Prompts, o with { IgnoreEos = true, MaxNewTokens = 60 + k });
        var plain = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(Prompts, past), v.VocabSize);
        var spec = new SpeculativeDecoder(v, oracle).Generate(Prompts, o);
        int stopsInsideRun = 0;
        for (int i = 0; i < Prompts.Length; i++)
        {
            var r = spec.Results[i];
            Assert.Equal(plain.Results[i].Tokens, r.Tokens);
            Assert.Equal(plain.Results[i].FinishReason, r.FinishReason);
            if (r.FinishReason != FinishReason.Stop) continue;
            Assert.Equal(1, r.Tokens[^1]);
            // Counters count whole runs (vLLM counts before trimming at the stop): accepted = k per draft.
            Assert.Equal(k * r.Stats.NumDrafts, r.Stats.NumAcceptedTokens);
            int emittedAtMost = 1 + (int)r.Stats.NumDrafts * (k + 1);
            if (r.Tokens.Length < emittedAtMost) stopsInsideRun++;
        }
        Assert.True(stopsInsideRun > 0, "no prompt stopped inside an accepted run; pick other prompts");
    }

    [Fact]
    public void MaxNewTokensInsideAnAcceptedRunTrimsTheRun()
    {
        var v = new ToyVerifier(32);
        const int k = 3;
        var o = new GenerationOptions { MaxNewTokens = 1 + 3 * (k + 1) - 2, IgnoreEos = true, NumSpeculativeTokens = k, BatchSize = 5 };
        var past = SpeculativeDecoder.GeneratePlain(v, Prompts, o with { MaxNewTokens = 40 });
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(Prompts, past), v.VocabSize);
        var spec = new SpeculativeDecoder(v, oracle).Generate(Prompts, o);
        foreach (var r in spec.Results)
        {
            Assert.Equal(o.MaxNewTokens, r.Tokens.Length);
            Assert.Equal(past.Results[r.Index].Tokens[..o.MaxNewTokens], r.Tokens);
            Assert.Equal(FinishReason.Length, r.FinishReason);
            Assert.Equal(3, r.Stats.NumDrafts);
            Assert.Equal(3 * k, r.Stats.NumAcceptedTokens);
        }
        Assert.Equal(k + 1, spec.Stats.MeanAcceptanceLength, 12);
    }

    [Fact]
    public void ContextLimitClipsDraftsAndStopsTheSequence()
    {
        var v = new ToyVerifier(32, maxContext: 20);
        const int k = 4;
        var o = new GenerationOptions { MaxNewTokens = 100, IgnoreEos = true, NumSpeculativeTokens = k, BatchSize = 5 };
        var plain = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        var past = SpeculativeDecoder.GeneratePlain(new ToyVerifier(32, 200), Prompts, o);
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(Prompts, past), v.VocabSize);
        var spec = new SpeculativeDecoder(v, oracle).Generate(Prompts, o);
        for (int i = 0; i < Prompts.Length; i++)
        {
            Assert.Equal(FinishReason.ContextLength, spec.Results[i].FinishReason);
            Assert.Equal(20, Prompts[i].Length + spec.Results[i].Tokens.Length);
            Assert.Equal(plain.Results[i].Tokens, spec.Results[i].Tokens);
        }
        // The verifier never saw a position ≥ 20 (it asserts), and the last steps carried fewer than k drafts.
        Assert.True(spec.Stats.NumDraftTokens < k * spec.Stats.NumDrafts);
        // As vLLM: drafts ≤ context − 1 − committed, so every emitted token fits and nothing is trimmed at the limit;
        // a sequence one token short of the limit takes a plain step without drafts.
        Assert.Equal(spec.Results.Sum(r => r.Tokens.Length), spec.Results.Count + spec.Results.Sum(r => r.DecodeSteps) + spec.Stats.NumAcceptedTokens);
        Assert.Equal(0, SpeculativeDecoder.DraftsAllowed(k, 20, 19));
        Assert.Equal(2, SpeculativeDecoder.DraftsAllowed(k, 20, 17));
        Assert.Equal(k, SpeculativeDecoder.DraftsAllowed(k, 20, 5));
        Assert.Equal(1.0, spec.Stats.DraftAcceptanceRate, 12);
    }

    [Fact]
    public void BatchedEqualsOneAtATime()
    {
        var v = new ToyVerifier(24);
        var eos = new HashSet<long> { 1 };
        var greedyRef = SpeculativeDecoder.GeneratePlain(v, Prompts, new GenerationOptions { MaxNewTokens = 30, EosTokenIds = eos });
        var references = OracleDraft.ReferencesFrom(Prompts, greedyRef);
        foreach (var withDraft in new[] { false, true })
        foreach (double temperature in new[] { 0.0, 0.8 })
        {
            var o = new GenerationOptions { MaxNewTokens = 25, EosTokenIds = eos, NumSpeculativeTokens = 3, Temperature = temperature, Seed = 11 };
            GenerationRun Run(int batch)
            {
                // The oracle's proposals depend only on each sequence's context, so batching cannot change them.
                using var d = withDraft ? new OracleDraft(references, v.VocabSize) : null;
                return new SpeculativeDecoder(v, d).Generate(Prompts, o with { BatchSize = batch });
            }
            var single = Run(1);
            foreach (int batch in new[] { Prompts.Length, 2, 3 }) // 2 and 3 rows: finished rows are refilled with later prompts
            {
                var batched = Run(batch);
                for (int i = 0; i < Prompts.Length; i++)
                    Assert.Equal(single.Results[i].Tokens, batched.Results[i].Tokens);
                Assert.Equal(single.Stats.NumAcceptedTokens, batched.Stats.NumAcceptedTokens);
            }
        }
        // Greedy with a draft: outputs are draft-independent, so batched must equal single even with different drafts.
        var g = new GenerationOptions { MaxNewTokens = 25, EosTokenIds = eos, NumSpeculativeTokens = 3 };
        using var d1 = new RandomDraft(v.VocabSize, 2);
        using var d2 = new RandomDraft(v.VocabSize, 2);
        var a = new SpeculativeDecoder(v, d1).Generate(Prompts, g with { BatchSize = 5 });
        var b = new SpeculativeDecoder(v, d2).Generate(Prompts, g with { BatchSize = 1 });
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(b.Results[i].Tokens, a.Results[i].Tokens);
        // Rows of different lengths shared a forward, and finished rows sat out with 0 tokens.
        Assert.Contains(v.ExtendCalls, c => c.Counts.Distinct().Count() > 1 && c.Counts.Contains(0));
    }

    [Fact]
    public void FinishedRowsAreRefilledWhileOthersKeepDecoding()
    {
        var v = new ToyVerifier(24);
        var o = new GenerationOptions { MaxNewTokens = 12, EosTokenIds = new HashSet<long> { 1 }, BatchSize = 2 };
        var run = SpeculativeDecoder.GeneratePlain(v, Prompts, o);
        var prefills = v.ExtendCalls.Select((c, i) => (c, i)).Where(x => x.c.LastOnly).ToList();
        Assert.True(prefills.Count >= 3, $"{prefills.Count} prefills");
        // Some refill prefilled one row while the other was mid-answer, and the next step decoded both.
        Assert.Contains(prefills, p => p.c.Counts.Length == 2 && p.c.Counts.Count(n => n > 0) == 1 && p.i + 1 < v.ExtendCalls.Count
            && !v.ExtendCalls[p.i + 1].LastOnly && v.ExtendCalls[p.i + 1].Counts.All(n => n > 0));
        for (int i = 0; i < Prompts.Length; i++) Assert.Equal(v.GreedyReference(Prompts[i], 12, 1), run.Results[i].Tokens);
        Assert.All(run.Results, r => Assert.InRange(r.Seconds, 0, run.Timings.TotalSeconds));
    }

    [Fact]
    public void PromptsAreCheckedBeforeDecoding()
    {
        var v = new ToyVerifier(16, maxContext: 8);
        var o = new GenerationOptions { MaxNewTokens = 4 };
        var tooLong = Assert.Throws<SpeculatorsException>(() => SpeculativeDecoder.GeneratePlain(v, P([1, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9]), o));
        Assert.Contains("prompt 1 has 9 tokens", tooLong.Message);
        Assert.Contains("context of 8", tooLong.Message);
        var badId = Assert.Throws<SpeculatorsException>(() => SpeculativeDecoder.GeneratePlain(v, P([1, 16]), o));
        Assert.Contains("outside the verifier's vocabulary [0, 16)", badId.Message);
        Assert.Throws<SpeculatorsException>(() => SpeculativeDecoder.GeneratePlain(v, P(Array.Empty<long>()), o));
        Assert.Empty(v.ExtendCalls);
    }
}
