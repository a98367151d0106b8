using System.Text.Json.Nodes;

namespace Speculators.Inference;

/// <summary>Where a speculative output first differs from the plain one.</summary>
/// <param name="Prompt">prompt index</param>
/// <param name="Turn">turn (0 unless multi-turn)</param>
/// <param name="Position">index into the generated tokens</param>
/// <param name="BaselineToken">plain decoding's token there (−1 when its output ended before)</param>
/// <param name="SpeculativeToken">speculative decoding's token there (−1 when its output ended before)</param>
/// <param name="BaselineGap">plain decoding's top-1 − top-2 logit there</param>
/// <param name="SpeculativeGap">the same as the speculative run's verifier saw it</param>
/// <param name="NearTie">whether the gap counts as a near-tie</param>
public sealed record Divergence(int Prompt, int Turn, int Position, long BaselineToken, long SpeculativeToken, float BaselineGap, float SpeculativeGap, bool NearTie)
{
    public JsonObject ToJson() => new()
    {
        ["prompt"] = Prompt,
        ["turn"] = Turn,
        ["position"] = Position,
        ["baseline_token"] = BaselineToken,
        ["speculative_token"] = SpeculativeToken,
        ["baseline_top2_gap"] = BaselineGap,
        ["speculative_top2_gap"] = SpeculativeGap,
        ["near_tie"] = NearTie,
    };
}

/// <summary>Outcome of <see cref="LosslessCheck.Compare"/>.</summary>
public sealed record LosslessResult(bool Lossless, int Identical, int NearTieDivergences, IReadOnlyList<Divergence> Divergences);

/// <summary>
/// The lossless check of DESIGN.md §4 for greedy decoding with an fp32 verifier: speculative and plain outputs must be
/// identical, or differ first at a near-tie — a position where the verifier's top-1 and top-2 logits are within
/// <c>1e-4 · |top-1 logit|</c> in either run (a different but equally valid argmax, since the verification forward
/// computes the same logits in a different shape). Near-tie divergences are counted; any other divergence makes the
/// run not lossless.
/// </summary>
public static class LosslessCheck
{
    public const double RelativeTieTolerance = 1e-4;

    /// <summary>Whether a top-1/top-2 gap is a near-tie for a top-1 logit of <paramref name="top"/>.</summary>
    public static bool IsNearTie(float gap, float top) => gap <= RelativeTieTolerance * Math.Abs(top);

    /// <summary>Compares pairs of results (same prompt, same turn) from greedy plain and speculative runs.</summary>
    public static LosslessResult Compare(IReadOnlyList<(int Prompt, int Turn, GenerationResult Baseline, GenerationResult Speculative)> pairs)
    {
        var divergences = new List<Divergence>();
        int identical = 0, nearTies = 0;
        bool lossless = true;
        foreach (var (prompt, turn, a, b) in pairs)
        {
            if (a.TopLogitGaps == null || b.TopLogitGaps == null || a.TopLogits == null || b.TopLogits == null)
                throw new ArgumentException("the lossless check needs greedy runs (top-2 logit gaps recorded)");
            int n = Math.Min(a.Tokens.Length, b.Tokens.Length);
            int i = 0;
            while (i < n && a.Tokens[i] == b.Tokens[i]) i++;
            if (i == a.Tokens.Length && i == b.Tokens.Length)
            {
                identical++;
                continue;
            }
            // Equal up to the shorter one: a length difference without a token difference cannot come from the
            // same stop rules, so it is a real divergence.
            float gapA = i < a.Tokens.Length ? a.TopLogitGaps[i] : float.NaN;
            float gapB = i < b.Tokens.Length ? b.TopLogitGaps[i] : float.NaN;
            bool tie = i < n && (IsNearTie(gapA, a.TopLogits[i]) || IsNearTie(gapB, b.TopLogits[i]));
            divergences.Add(new Divergence(prompt, turn, i, i < a.Tokens.Length ? a.Tokens[i] : -1, i < b.Tokens.Length ? b.Tokens[i] : -1, gapA, gapB, tie));
            if (tie) nearTies++;
            else lossless = false;
        }
        return new LosslessResult(lossless, identical, nearTies, divergences);
    }
}

/// <summary>
/// The speedup speculative decoding could reach with a perfect engine, for a measured acceptance length τ, k drafts per
/// step, a draft forward costing c_d and a verifier step costing c_v: each step costs one verifier forward plus k draft
/// forwards and yields τ tokens, against one token per c_v without speculation, so
/// <c>ceiling = τ / (1 + k · c_d / c_v)</c>. It assumes verifying k + 1 tokens costs what one decode step costs
/// (memory-bound GPUs); on CPUs, where the verification forward grows with k + 1, the measured speedup stays below it,
/// which is what makes the engine's own overhead and the verification cost visible.
/// </summary>
public static class SpeedupCeiling
{
    /// <param name="acceptanceLength">τ: mean tokens per step (vLLM mean acceptance length)</param>
    /// <param name="k">drafts per step</param>
    /// <param name="draftForwardSeconds">c_d: one draft forward pass</param>
    /// <param name="verifierStepSeconds">c_v: one plain decoding step of the verifier</param>
    public static double Compute(double acceptanceLength, int k, double draftForwardSeconds, double verifierStepSeconds)
    {
        if (verifierStepSeconds <= 0) throw new ArgumentOutOfRangeException(nameof(verifierStepSeconds), "must be > 0");
        if (k < 0 || draftForwardSeconds < 0) throw new ArgumentOutOfRangeException(nameof(k));
        return acceptanceLength / (1 + k * draftForwardSeconds / verifierStepSeconds);
    }
}
