namespace Speculators.Text;

/// <summary>
/// Character spans → token mask. A token is supervised when its character range overlaps a span
/// (<c>tokenStart &lt; spanEnd &amp;&amp; tokenEnd &gt; spanStart</c>), so a token straddling a span boundary
/// counts, as in transformers' <c>return_assistant_tokens_mask</c> (<c>char_to_token</c> of the span's first
/// and last character, every token between) and in legacy speculators' regex masks. Offsets and spans
/// must be in the same units (UTF-16 here: <see cref="HfTokenizer"/> offsets and
/// <c>RenderResult.GenerationSpansUtf16</c>); because a token always covers whole characters, overlap in
/// UTF-16 units equals overlap in code points.
/// <para>
/// One deliberate difference from transformers: when the last character of a span is split over several
/// tokens (byte-level pieces of an emoji), transformers' <c>char_to_token</c> returns only the first of
/// them and leaves the rest unsupervised; here all of them are supervised, so the supervised tokens
/// decode to whole characters. Tokens with an empty range (special tokens added by a post-processor)
/// are never supervised.
/// </para>
/// </summary>
public static class LossMaskSpans
{
    /// <summary>The 0/1 mask of tokens overlapping any of <paramref name="spans"/> ([start, end) in the offsets' units).</summary>
    public static byte[] FromSpans(IReadOnlyList<(int Start, int End)> tokenOffsets, IEnumerable<(int Start, int End)> spans)
    {
        var merged = Merge(spans);
        var mask = new byte[tokenOffsets.Count];
        if (merged.Count == 0) return mask;
        for (int t = 0; t < mask.Length; t++)
        {
            var (s, e) = tokenOffsets[t];
            if (e <= s) continue;
            // First merged span ending after the token's start; it overlaps iff it starts before the token's end.
            int lo = 0, hi = merged.Count;
            while (lo < hi)
            {
                int mid = (lo + hi) >>> 1;
                if (merged[mid].End <= s) lo = mid + 1; else hi = mid;
            }
            if (lo < merged.Count && merged[lo].Start < e) mask[t] = 1;
        }
        return mask;
    }

    /// <summary>Non-empty spans sorted and merged where they overlap or touch.</summary>
    internal static List<(int Start, int End)> Merge(IEnumerable<(int Start, int End)> spans)
    {
        var sorted = spans.Where(x => x.End > x.Start).OrderBy(x => x.Start).ThenBy(x => x.End).ToList();
        var merged = new List<(int Start, int End)>(sorted.Count);
        foreach (var sp in sorted)
        {
            if (merged.Count > 0 && sp.Start <= merged[^1].End)
                merged[^1] = (merged[^1].Start, Math.Max(merged[^1].End, sp.End));
            else merged.Add(sp);
        }
        return merged;
    }
}
