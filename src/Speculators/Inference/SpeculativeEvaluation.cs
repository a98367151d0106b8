using Speculators.Util;

namespace Speculators.Inference;

/// <summary>Settings of an evaluation run (plain vs speculative decoding of the same prompts).</summary>
public sealed record EvaluationSettings
{
    /// <summary>k: drafts per verification step.</summary>
    public int NumSpeculativeTokens { get; init; } = 3;
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>0 = greedy (then the lossless check runs).</summary>
    public double Temperature { get; init; }
    public long Seed { get; init; }
    /// <summary>Prompts decoded together. 1 (the default) measures single-request latency, where speculation pays off.</summary>
    public int BatchSize { get; init; } = 1;
    public bool IgnoreEos { get; init; }
    public IReadOnlySet<long> EosTokenIds { get; init; } = new HashSet<long>();
    /// <summary>MT-bench rows: generate every turn, feeding each run's own answers back.</summary>
    public bool AllTurns { get; init; }
    /// <summary>Decode a few tokens of the first prompt in both modes before timing (first-call costs).</summary>
    public bool Warmup { get; init; } = true;
    /// <summary>Context limit override (default: the verifier's).</summary>
    public int? MaxContextLength { get; init; }

    internal GenerationOptions Generation(int batch) => new()
    {
        MaxNewTokens = MaxNewTokens,
        Temperature = Temperature,
        Seed = Seed,
        NumSpeculativeTokens = NumSpeculativeTokens,
        EosTokenIds = EosTokenIds,
        IgnoreEos = IgnoreEos,
        BatchSize = batch,
        MaxContextLength = MaxContextLength,
    };
}

/// <summary>One prompt and turn decoded both ways.</summary>
public sealed record EvaluationPair(int Prompt, int Turn, long[] BaselinePrompt, GenerationResult Baseline, long[] SpeculativePrompt, GenerationResult Speculative);

/// <summary>What <see cref="SpeculativeEvaluation.Run"/> measured.</summary>
public sealed class EvaluationResult
{
    /// <summary>vLLM's counters of the speculative run (all prompts and turns).</summary>
    public required SpecDecodingStats Stats { get; init; }
    public required GenerationTimings Baseline { get; init; }
    public required GenerationTimings Speculative { get; init; }
    public required int NumSpeculativeTokens { get; init; }
    public required double Temperature { get; init; }
    public required IReadOnlyList<EvaluationPair> Pairs { get; init; }
    /// <summary>Greedy runs: the lossless check; null when sampling (checked statistically in tests instead).</summary>
    public LosslessResult? Lossless { get; init; }
    /// <summary>Prompts × turns dropped because the turn's prompt no longer fitted the context.</summary>
    public int SkippedTurns { get; init; }
    public int NumPrompts { get; init; }

    public double TokensPerSecondBaseline => Baseline.TokensPerSecond;
    public double TokensPerSecondSpeculative => Speculative.TokensPerSecond;
    /// <summary>Speculative ÷ plain tokens per second.</summary>
    public double Speedup => TokensPerSecondBaseline > 0 ? TokensPerSecondSpeculative / TokensPerSecondBaseline : 0;
    /// <summary>c_v: seconds of one plain decoding step of the verifier (measured in this run).</summary>
    public double VerifierStepSeconds => Baseline.SecondsPerVerifyStep;
    /// <summary>c_d: seconds of one draft forward pass (draft time ÷ passes; without a draft model, ÷ drafted positions).</summary>
    public double DraftForwardSeconds =>
        Speculative.DraftForwardPasses > 0 ? Speculative.SecondsPerDraftPass
        : Speculative.DecodeSteps > 0 && NumSpeculativeTokens > 0 ? Speculative.DraftSeconds / (Speculative.DecodeSteps * (double)NumSpeculativeTokens) : 0;
    /// <summary>c_d / c_v.</summary>
    public double DraftCostRatio => VerifierStepSeconds > 0 ? DraftForwardSeconds / VerifierStepSeconds : 0;
    /// <summary>The verification forward of k + 1 tokens ÷ a plain one-token step (1 on a memory-bound GPU, more on CPU).</summary>
    public double VerifyCostRatio => VerifierStepSeconds > 0 ? Speculative.SecondsPerVerifyStep / VerifierStepSeconds : 0;
    /// <summary><see cref="SpeedupCeiling.Compute"/> for this run's acceptance length and cost ratio.</summary>
    public double TheoreticalSpeedup => VerifierStepSeconds > 0
        ? SpeedupCeiling.Compute(Stats.MeanAcceptanceLength, NumSpeculativeTokens, DraftForwardSeconds, VerifierStepSeconds) : 0;
}

/// <summary>
/// The evaluation as a library call: decodes every prompt without speculation and with the draft, in the same process
/// and settings, and measures vLLM's acceptance metrics, throughput both ways, the speedup, its theoretical ceiling
/// and (greedy) the lossless check. <c>speculators evaluate</c> and the quickstart call it.
/// </summary>
public static class SpeculativeEvaluation
{
    public static EvaluationResult Run(IVerifier verifier, IDraftProposer draft, IReadOnlyList<PromptSpec> prompts, IPromptRenderer? renderer, EvaluationSettings s)
    {
        if (prompts.Count == 0) throw new SpeculatorsException("no prompts to evaluate.");
        int maxContext = Math.Min(s.MaxContextLength ?? verifier.MaxContextLength, verifier.MaxContextLength);
        var plain = new SpeculativeDecoder(verifier);
        var spec = new SpeculativeDecoder(verifier, draft);
        var opts = s.Generation(s.BatchSize);

        // Turn 0 of every prompt is known now: check them all before decoding anything.
        var first = prompts.Select(p => (IReadOnlyList<long>)PromptBuilder.Build(p, 0, [], renderer)).ToArray();
        for (int i = 0; i < prompts.Count; i++)
            SpeculativeDecoder.CheckPrompt(first[i], verifier.VocabSize, maxContext, $"{prompts[i].Location} (prompt {i})");

        if (s.Warmup)
        {
            var w = opts with { MaxNewTokens = Math.Min(4, s.MaxNewTokens), BatchSize = 1 };
            plain.Generate([first[0]], w);
            spec.Generate([first[0]], w);
        }

        int turns = prompts.Max(p => p.TurnCount(s.AllTurns));
        var baseAnswers = prompts.Select(_ => new List<IReadOnlyList<long>>()).ToArray();
        var specAnswers = prompts.Select(_ => new List<IReadOnlyList<long>>()).ToArray();
        var pairs = new List<EvaluationPair>();
        var stats = new SpecDecodingStats(s.NumSpeculativeTokens);
        var baseTimes = new List<GenerationTimings>();
        var specTimes = new List<GenerationTimings>();
        var alive = Enumerable.Repeat(true, prompts.Count).ToArray();
        int skipped = 0;
        for (int turn = 0; turn < turns; turn++)
        {
            var idx = new List<int>();
            var basePrompts = new List<IReadOnlyList<long>>();
            var specPrompts = new List<IReadOnlyList<long>>();
            for (int i = 0; i < prompts.Count; i++)
            {
                if (!alive[i] || prompts[i].TurnCount(s.AllTurns) <= turn) continue;
                var a = turn == 0 ? first[i] : PromptBuilder.Build(prompts[i], turn, baseAnswers[i], renderer);
                var b = turn == 0 ? first[i] : PromptBuilder.Build(prompts[i], turn, specAnswers[i], renderer);
                if (Math.Max(a.Count, b.Count) >= maxContext)
                {
                    Log.Warn($"{prompts[i].Location}: turn {turn + 1} has {Math.Max(a.Count, b.Count)} tokens with the earlier answers, " +
                             $"no room left in the context of {maxContext}; skipping this and later turns.");
                    alive[i] = false;
                    skipped += prompts[i].TurnCount(s.AllTurns) - turn;
                    continue;
                }
                idx.Add(i);
                basePrompts.Add(a);
                specPrompts.Add(b);
            }
            if (idx.Count == 0) break;
            string label = turns > 1 ? $" (turn {turn + 1}/{turns})" : "";
            GenerationRun baseRun, specRun;
            using (var progress = new Progress("plain decoding" + label, (long)idx.Count * s.MaxNewTokens, "tokens"))
                baseRun = plain.Generate(basePrompts, opts, progress);
            using (var progress = new Progress("speculative decoding" + label, (long)idx.Count * s.MaxNewTokens, "tokens"))
                specRun = spec.Generate(specPrompts, opts, progress);
            baseTimes.Add(baseRun.Timings);
            specTimes.Add(specRun.Timings);
            stats.Add(specRun.Stats);
            for (int j = 0; j < idx.Count; j++)
            {
                int i = idx[j];
                baseAnswers[i].Add(baseRun.Results[j].Tokens);
                specAnswers[i].Add(specRun.Results[j].Tokens);
                pairs.Add(new EvaluationPair(i, turn, basePrompts[j].ToArray(), baseRun.Results[j], specPrompts[j].ToArray(), specRun.Results[j]));
            }
        }

        LosslessResult? lossless = s.Temperature < 1e-5
            ? LosslessCheck.Compare(pairs.Select(p => (p.Prompt, p.Turn, p.Baseline, p.Speculative)).ToList())
            : null;
        return new EvaluationResult
        {
            Stats = stats,
            Baseline = Sum(baseTimes),
            Speculative = Sum(specTimes),
            NumSpeculativeTokens = s.NumSpeculativeTokens,
            Temperature = s.Temperature,
            Pairs = pairs,
            Lossless = lossless,
            SkippedTurns = skipped,
            NumPrompts = prompts.Count,
        };
    }

    static GenerationTimings Sum(IReadOnlyList<GenerationTimings> t) => new()
    {
        TotalSeconds = t.Sum(x => x.TotalSeconds),
        PrefillSeconds = t.Sum(x => x.PrefillSeconds),
        VerifySeconds = t.Sum(x => x.VerifySeconds),
        DraftSeconds = t.Sum(x => x.DraftSeconds),
        DecodeSteps = t.Sum(x => x.DecodeSteps),
        DraftForwardPasses = t.Sum(x => x.DraftForwardPasses),
        GeneratedTokens = t.Sum(x => x.GeneratedTokens),
    };
}
