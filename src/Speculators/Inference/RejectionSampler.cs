namespace Speculators.Inference;

/// <summary>Result of verifying one sequence's drafts: how many were accepted and the tokens the step emits (accepted + recovered or bonus, 1…k+1).</summary>
public readonly record struct VerifyOutcome(int Accepted, long[] Emitted);

/// <summary>
/// Verification of k drafted tokens against the verifier's k + 1 next-token distributions, following
/// vLLM's <c>vllm/v1/sample/rejection_sampler.py</c> (SpecInfer / Leviathan et al. 2023):
/// <list type="bullet">
/// <item>greedy (temperature 0): accept d_i while d_i = argmax of the target at i; at the first mismatch emit the
/// target argmax and stop; when all k are accepted append the bonus token (argmax at position k);</item>
/// <item>random (temperature &gt; 0) with greedy drafting, i.e. no draft probabilities (vLLM's <c>draft_probs=None</c>):
/// the draft probability is 1, so d_i is accepted when p_target(d_i) ≥ u, u ~ U[0, 1); on rejection the
/// "recovered" token is drawn from max(p_target − p_draft, 0) renormalized, which with a one-hot draft is
/// the target distribution with d_i removed; when all k are accepted a bonus token is drawn from the target
/// distribution at position k.</item>
/// </list>
/// The emitted tokens are distributed exactly as sampling the target token by token.
/// </summary>
public static class RejectionSampler
{
    /// <summary>Greedy verification.</summary>
    /// <param name="drafts">d_1 … d_k</param>
    /// <param name="targetArgmax">argmax of the verifier at the k + 1 positions [last, d_1 … d_k]</param>
    public static VerifyOutcome Greedy(IReadOnlyList<long> drafts, IReadOnlyList<long> targetArgmax)
    {
        if (targetArgmax.Count < drafts.Count + 1)
            throw new ArgumentException($"need {drafts.Count + 1} target tokens for {drafts.Count} drafts, got {targetArgmax.Count}", nameof(targetArgmax));
        int a = 0;
        while (a < drafts.Count && drafts[a] == targetArgmax[a]) a++;
        var emitted = new long[a + 1];
        for (int i = 0; i < a; i++) emitted[i] = drafts[i];
        emitted[a] = targetArgmax[a];
        return new VerifyOutcome(a, emitted);
    }

    /// <summary>Random verification with draft probability 1 (greedy drafts).</summary>
    /// <param name="drafts">d_1 … d_k</param>
    /// <param name="probs">target probabilities (after temperature), row-major <c>[k + 1, vocab]</c> (at least)</param>
    /// <param name="vocab">V: row length of <paramref name="probs"/></param>
    /// <param name="rng">the sequence's generator</param>
    public static VerifyOutcome Random(IReadOnlyList<long> drafts, ReadOnlySpan<float> probs, int vocab, Random rng)
    {
        int k = drafts.Count;
        if (probs.Length < (long)(k + 1) * vocab)
            throw new ArgumentException($"need [{k + 1}, {vocab}] probabilities, got {probs.Length} values", nameof(probs));
        var emitted = new List<long>(k + 1);
        for (int i = 0; i < k; i++)
        {
            var row = probs.Slice(i * vocab, vocab);
            long d = drafts[i];
            double u = rng.NextDouble();
            // vLLM: accepted = draft_prob > 0 && target_prob / draft_prob >= uniform, with draft_prob = 1;
            // a draft id outside the vocabulary is rejected.
            bool accepted = d >= 0 && d < vocab && row[(int)d] >= u;
            if (accepted)
            {
                emitted.Add(d);
                continue;
            }
            emitted.Add(SampleCategorical(row, rng, exclude: d));
            return new VerifyOutcome(i, emitted.ToArray());
        }
        emitted.Add(SampleCategorical(probs.Slice(k * vocab, vocab), rng));
        return new VerifyOutcome(k, emitted.ToArray());
    }

    /// <summary>
    /// Draws an index from <paramref name="probs"/> (need not be normalized) with <paramref name="exclude"/> given
    /// probability 0. When nothing has mass left (the distribution was one-hot on the excluded id, or underflowed),
    /// returns the most probable other id (lowest id on ties).
    /// </summary>
    public static long SampleCategorical(ReadOnlySpan<float> probs, Random rng, long exclude = -1)
    {
        double total = 0;
        for (int v = 0; v < probs.Length; v++)
            if (v != exclude && probs[v] > 0) total += probs[v];
        if (!(total > 0))
        {
            int best = exclude == 0 && probs.Length > 1 ? 1 : 0;
            for (int v = 0; v < probs.Length; v++)
                if (v != exclude && probs[v] > probs[best]) best = v;
            return best;
        }
        double u = rng.NextDouble() * total;
        double acc = 0;
        int last = -1;
        for (int v = 0; v < probs.Length; v++)
        {
            if (v == exclude || !(probs[v] > 0)) continue;
            acc += probs[v];
            last = v;
            if (u < acc) return v;
        }
        return last; // rounding: u landed on the total
    }
}
