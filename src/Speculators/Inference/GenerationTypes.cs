using System.Text.Json.Nodes;

namespace Speculators.Inference;

/// <summary>How a sequence ended.</summary>
public enum FinishReason
{
    /// <summary>It produced an end-of-sequence token (kept as its last token).</summary>
    Stop,
    /// <summary>It reached <see cref="GenerationOptions.MaxNewTokens"/>.</summary>
    Length,
    /// <summary>Prompt + output reached the verifier's context length.</summary>
    ContextLength,
}

/// <summary>Decoding settings shared by plain and speculative generation.</summary>
public sealed record GenerationOptions
{
    /// <summary>Tokens to generate per prompt at most (vLLM <c>max_tokens</c>).</summary>
    public int MaxNewTokens { get; init; } = 256;
    /// <summary>0 = greedy; &gt; 0 samples from softmax(logits / T). Below 1e-5 counts as greedy (as vLLM).</summary>
    public double Temperature { get; init; }
    /// <summary>Seed of the per-sequence generators (sequence i of a call uses a generator derived from (Seed, i)).</summary>
    public long Seed { get; init; }
    /// <summary>k: drafts verified per step when a draft is attached (ignored without one).</summary>
    public int NumSpeculativeTokens { get; init; } = 3;
    /// <summary>Tokens that end a sequence (kept in the output). Empty: only length limits stop.</summary>
    public IReadOnlySet<long> EosTokenIds { get; init; } = new HashSet<long>();
    /// <summary>Generate past EOS (vLLM <c>ignore_eos</c>); the EOS tokens stay in the output.</summary>
    public bool IgnoreEos { get; init; }
    /// <summary>Rows decoded together (padded to one batch). A finished row is refilled with the next prompt once half the rows are free.</summary>
    public int BatchSize { get; init; } = 8;
    /// <summary>Context limit override (default: the verifier's <see cref="IVerifier.MaxContextLength"/>); never above it.</summary>
    public int? MaxContextLength { get; init; }
    /// <summary>Keep every verification step of every sequence in <see cref="GenerationResult.Steps"/> (drafts, accepted count, emitted tokens).</summary>
    public bool RecordSteps { get; init; }

    /// <summary>True when decoding is greedy (T below vLLM's 1e-5 epsilon).</summary>
    public bool Greedy => Temperature < 1e-5;

    internal void Validate()
    {
        if (MaxNewTokens < 1) throw new SpeculatorsException($"max new tokens must be ≥ 1; got {MaxNewTokens}.");
        if (double.IsNaN(Temperature) || Temperature < 0) throw new SpeculatorsException($"temperature must be ≥ 0; got {Temperature}.");
        if (NumSpeculativeTokens < 1) throw new SpeculatorsException($"the number of speculative tokens must be ≥ 1; got {NumSpeculativeTokens}.");
        if (BatchSize < 1) throw new SpeculatorsException($"batch size must be ≥ 1; got {BatchSize}.");
        if (MaxContextLength is int m && m < 2) throw new SpeculatorsException($"max context length must be ≥ 2; got {m}.");
    }
}

/// <summary>One prompt's completion.</summary>
public sealed class GenerationResult
{
    /// <summary>Index of the prompt in the call.</summary>
    public required int Index { get; init; }
    public required int PromptLength { get; init; }
    /// <summary>Generated token ids (EOS included when it stopped the sequence).</summary>
    public required long[] Tokens { get; init; }
    public required FinishReason FinishReason { get; init; }
    /// <summary>True when the sequence ended on its own (EOS), false when a length limit cut it.</summary>
    public bool Finished => FinishReason == FinishReason.Stop;
    /// <summary>
    /// Greedy decoding only: per output token, the verifier's top-1 minus top-2 logit at the position that
    /// produced it, and the top-1 logit — for the near-tie rule of the lossless check. Null when sampling.
    /// </summary>
    public float[]? TopLogitGaps { get; init; }
    /// <summary>Greedy decoding only: the top-1 logit at each output token's position.</summary>
    public float[]? TopLogits { get; init; }
    /// <summary>This sequence's speculative-decoding counters (empty without a draft).</summary>
    public required SpecDecodingStats Stats { get; init; }
    /// <summary>Verifier forward passes this sequence took part in after its prefill.</summary>
    public required int DecodeSteps { get; init; }
    /// <summary>Seconds from its prefill to its last token.</summary>
    public required double Seconds { get; init; }
    /// <summary>With <see cref="GenerationOptions.RecordSteps"/>: each verification step after the prefill.</summary>
    public IReadOnlyList<DecodeStep>? Steps { get; init; }
}

/// <summary>One verification step of one sequence: the drafts, how many were accepted, and the tokens the step emitted (before any stop trimmed them).</summary>
public sealed record DecodeStep(long[] Proposed, int Accepted, long[] Emitted);

/// <summary>Where the time of a <see cref="SpeculativeDecoder.Generate"/> call went.</summary>
public sealed record GenerationTimings
{
    /// <summary>Wall time of the whole call.</summary>
    public double TotalSeconds { get; init; }
    /// <summary>Verifier prefill forwards (all batches).</summary>
    public double PrefillSeconds { get; init; }
    /// <summary>Verifier forwards after prefill (decode / verification).</summary>
    public double VerifySeconds { get; init; }
    /// <summary>Draft observe + propose.</summary>
    public double DraftSeconds { get; init; }
    /// <summary>Everything else: sampling, acceptance, bookkeeping, host copies.</summary>
    public double OtherSeconds => Math.Max(0, TotalSeconds - PrefillSeconds - VerifySeconds - DraftSeconds);
    /// <summary>Verifier forwards after prefill (one per decode step of the row pool).</summary>
    public long DecodeSteps { get; init; }
    /// <summary>Draft forward passes (as the draft counts them).</summary>
    public long DraftForwardPasses { get; init; }
    /// <summary>Tokens produced (all prompts).</summary>
    public long GeneratedTokens { get; init; }

    /// <summary>Generated tokens per second of wall time.</summary>
    public double TokensPerSecond => TotalSeconds > 0 ? GeneratedTokens / TotalSeconds : 0;
    /// <summary>Mean seconds of one verifier forward after prefill.</summary>
    public double SecondsPerVerifyStep => DecodeSteps > 0 ? VerifySeconds / DecodeSteps : 0;
    /// <summary>Mean seconds of one draft forward pass (observe passes included).</summary>
    public double SecondsPerDraftPass => DraftForwardPasses > 0 ? DraftSeconds / DraftForwardPasses : 0;

    public JsonObject ToJson() => new()
    {
        ["total_seconds"] = TotalSeconds,
        ["prefill_seconds"] = PrefillSeconds,
        ["verify_seconds"] = VerifySeconds,
        ["draft_seconds"] = DraftSeconds,
        ["other_seconds"] = OtherSeconds,
        ["decode_steps"] = DecodeSteps,
        ["draft_forward_passes"] = DraftForwardPasses,
        ["generated_tokens"] = GeneratedTokens,
        ["tokens_per_second"] = TokensPerSecond,
    };
}

/// <summary>Everything a <see cref="SpeculativeDecoder.Generate"/> call produced.</summary>
public sealed class GenerationRun
{
    /// <summary>One result per prompt, in prompt order.</summary>
    public required IReadOnlyList<GenerationResult> Results { get; init; }
    /// <summary>vLLM's counters over all prompts (empty without a draft).</summary>
    public required SpecDecodingStats Stats { get; init; }
    public required GenerationTimings Timings { get; init; }
    /// <summary>k used (0 without a draft).</summary>
    public required int NumSpeculativeTokens { get; init; }
}
