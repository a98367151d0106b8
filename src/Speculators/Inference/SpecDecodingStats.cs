using System.Text.Json.Nodes;

namespace Speculators.Inference;

/// <summary>
/// Speculative-decoding counters exactly as vLLM keeps them (<c>vllm/v1/spec_decode/metrics.py</c>,
/// <c>SpecDecodingStats.observe_draft</c>): one observation per verification step of one sequence with
/// <c>num_draft_tokens</c> = drafts scheduled and <c>num_accepted</c> = tokens the step produced − 1
/// (counted before EOS / max-length trimming, as vLLM's scheduler does).
/// <list type="bullet">
/// <item>mean acceptance length = 1 + accepted / drafts (includes the bonus/recovered token),</item>
/// <item>per-position acceptance[i] = accepted_at_position_i / drafts (probability that at least i + 1 drafts were accepted),</item>
/// <item>draft acceptance rate = accepted / draft tokens.</item>
/// </list>
/// Not thread-safe; merge per-worker instances with <see cref="Add(SpecDecodingStats)"/>.
/// </summary>
public sealed class SpecDecodingStats
{
    long[] _acceptedPerPos;

    /// <param name="numSpeculativeTokens">k: the length of the per-position vector (grows if a step drafts more)</param>
    public SpecDecodingStats(int numSpeculativeTokens = 0)
    {
        if (numSpeculativeTokens < 0) throw new ArgumentOutOfRangeException(nameof(numSpeculativeTokens));
        _acceptedPerPos = new long[numSpeculativeTokens];
    }

    /// <summary>Verification steps that carried at least one draft token (vLLM <c>num_drafts</c>).</summary>
    public long NumDrafts { get; private set; }
    /// <summary>Draft tokens verified (vLLM <c>num_draft_tokens</c>).</summary>
    public long NumDraftTokens { get; private set; }
    /// <summary>Draft tokens accepted (vLLM <c>num_accepted_tokens</c>).</summary>
    public long NumAcceptedTokens { get; private set; }
    /// <summary>Steps whose first i + 1 drafts were all accepted, per position i (vLLM <c>num_accepted_tokens_per_pos</c>).</summary>
    public IReadOnlyList<long> AcceptedPerPosition => _acceptedPerPos;
    /// <summary>Length of the per-position vector (the largest number of drafts per step seen or configured).</summary>
    public int NumPositions => _acceptedPerPos.Length;

    /// <summary>
    /// Records one verification step of one sequence (vLLM <c>observe_draft</c>). Steps without drafts are
    /// not counted (vLLM only counts requests that had spec tokens scheduled).
    /// </summary>
    public void Observe(int numDraftTokens, int numAccepted)
    {
        if (numDraftTokens < 0) throw new ArgumentOutOfRangeException(nameof(numDraftTokens), numDraftTokens, "must be ≥ 0");
        if (numAccepted < 0 || numAccepted > numDraftTokens)
            throw new ArgumentOutOfRangeException(nameof(numAccepted), numAccepted, $"must be in [0, {numDraftTokens}]");
        if (numDraftTokens == 0) return;
        if (numDraftTokens > _acceptedPerPos.Length) Array.Resize(ref _acceptedPerPos, numDraftTokens);
        NumDrafts++;
        NumDraftTokens += numDraftTokens;
        NumAcceptedTokens += numAccepted;
        for (int i = 0; i < numAccepted; i++) _acceptedPerPos[i]++;
    }

    /// <summary>Adds another instance's counts into this one.</summary>
    public void Add(SpecDecodingStats other)
    {
        if (other._acceptedPerPos.Length > _acceptedPerPos.Length) Array.Resize(ref _acceptedPerPos, other._acceptedPerPos.Length);
        NumDrafts += other.NumDrafts;
        NumDraftTokens += other.NumDraftTokens;
        NumAcceptedTokens += other.NumAcceptedTokens;
        for (int i = 0; i < other._acceptedPerPos.Length; i++) _acceptedPerPos[i] += other._acceptedPerPos[i];
    }

    /// <summary>1 + accepted / drafts; 1 when nothing was drafted (every step emits one token).</summary>
    public double MeanAcceptanceLength => NumDrafts == 0 ? 1.0 : 1.0 + (double)NumAcceptedTokens / NumDrafts;

    /// <summary>accepted / draft tokens; 0 when nothing was drafted.</summary>
    public double DraftAcceptanceRate => NumDraftTokens == 0 ? 0.0 : (double)NumAcceptedTokens / NumDraftTokens;

    /// <summary>accepted_at_i / drafts for each position i (zeros when nothing was drafted).</summary>
    public double[] PerPositionAcceptance =>
        _acceptedPerPos.Select(a => NumDrafts == 0 ? 0.0 : (double)a / NumDrafts).ToArray();

    /// <summary>
    /// Conditional per-position rates: P(position i accepted | position i − 1 accepted) =
    /// accepted_at_i / accepted_at_{i−1} (position 0 over drafts). NaN where the condition never held.
    /// </summary>
    public double[] ConditionalPerPositionAcceptance
    {
        get
        {
            var r = new double[_acceptedPerPos.Length];
            for (int i = 0; i < r.Length; i++)
            {
                long denom = i == 0 ? NumDrafts : _acceptedPerPos[i - 1];
                r[i] = denom == 0 ? double.NaN : (double)_acceptedPerPos[i] / denom;
            }
            return r;
        }
    }

    /// <summary>The counters and derived rates as JSON (report keys).</summary>
    public JsonObject ToJson() => new()
    {
        ["acceptance_length"] = MeanAcceptanceLength,
        ["per_position_acceptance"] = new JsonArray(PerPositionAcceptance.Select(v => (JsonNode)v).ToArray()),
        ["draft_acceptance_rate"] = DraftAcceptanceRate,
        ["num_drafts"] = NumDrafts,
        ["num_draft_tokens"] = NumDraftTokens,
        ["num_accepted_tokens"] = NumAcceptedTokens,
        ["num_accepted_tokens_per_pos"] = new JsonArray(_acceptedPerPos.Select(v => (JsonNode)v).ToArray()),
    };

    public override string ToString() =>
        string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Mean acceptance length: {MeanAcceptanceLength:F2}, Accepted: {NumAcceptedTokens} tokens, Drafted: {NumDraftTokens} tokens, " +
            $"Per-position acceptance rate: {string.Join(", ", PerPositionAcceptance.Select(v => v.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}, " +
            $"Avg Draft acceptance rate: {100 * DraftAcceptanceRate:F1}%");
}
