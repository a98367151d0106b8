using System.Buffers;
using System.Globalization;
using System.Text;

namespace Speculators.Text;

/// <summary>An entry of tokenizer.json <c>added_tokens</c> (HF AddedToken).</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool Normalized, bool Lstrip, bool Rstrip, bool SingleWord);

/// <summary>
/// Finds added tokens in text the way HF's AddedVocabulary does: leftmost-longest, non-overlapping
/// matches (Aho-Corasick LeftmostLongest), then the single_word / lstrip / rstrip rules of
/// <c>find_matches</c>. A trie over the contents keeps it linear in practice.
/// </summary>
internal sealed class AddedTokenMatcher
{
    readonly AddedToken[] _tokens;
    readonly Dictionary<(int Node, char C), int> _edges = new();
    readonly List<int> _terminal = [-1];
    readonly SearchValues<char> _first;

    public AddedTokenMatcher(IReadOnlyList<(string Pattern, AddedToken Token)> tokens)
    {
        _tokens = tokens.Select(t => t.Token).ToArray();
        var firsts = new HashSet<char>();
        for (int i = 0; i < tokens.Count; i++)
        {
            string p = tokens[i].Pattern;
            if (p.Length == 0) continue;
            firsts.Add(p[0]);
            int node = 0;
            foreach (char c in p)
            {
                if (!_edges.TryGetValue((node, c), out int next))
                {
                    next = _terminal.Count;
                    _terminal.Add(-1);
                    _edges[(node, c)] = next;
                }
                node = next;
            }
            // The first registration of a pattern wins (HF keeps one id per content string).
            if (_terminal[node] < 0) _terminal[node] = i;
        }
        _first = SearchValues.Create(firsts.ToArray());
    }

    public bool IsEmpty => _tokens.Length == 0;

    /// <summary>Appends (start, end, token) for the added tokens in <paramref name="text"/>, ranges including stripped spaces.</summary>
    public void FindMatches(ReadOnlySpan<char> text, List<(int Start, int End, AddedToken Token)> output)
    {
        int startOffset = 0;
        int i = 0;
        while (i < text.Length)
        {
            int k = text[i..].IndexOfAny(_first);
            if (k < 0) break;
            i += k;
            int node = 0, bestEnd = -1, best = -1;
            for (int j = i; j < text.Length; j++)
            {
                if (!_edges.TryGetValue((node, text[j]), out node)) break;
                if (_terminal[node] >= 0) { bestEnd = j + 1; best = _terminal[node]; }
            }
            if (best < 0) { i++; continue; }
            int start = i, stop = bestEnd;
            i = bestEnd;
            var tok = _tokens[best];
            if (tok.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWordChar(text[..start]);
                bool stopSpace = stop == text.Length || !StartsWithWordChar(text[stop..]);
                if (!startSpace || !stopSpace) continue;
            }
            if (tok.Lstrip)
            {
                int ns = start;
                while (ns > 0 && IsWhiteSpaceBefore(text, ns, out int w)) ns -= w;
                start = Math.Max(ns, startOffset);
            }
            if (tok.Rstrip)
            {
                while (stop < text.Length && IsWhiteSpaceAt(text, stop, out int w)) stop += w;
            }
            output.Add((start, stop, tok));
            startOffset = stop;
            i = Math.Max(i, stop);
        }
    }

    static bool IsWhiteSpaceAt(ReadOnlySpan<char> t, int i, out int width)
    {
        Rune.DecodeFromUtf16(t[i..], out var r, out width);
        return Rune.IsWhiteSpace(r);
    }

    static bool IsWhiteSpaceBefore(ReadOnlySpan<char> t, int end, out int width)
    {
        Rune.DecodeLastFromUtf16(t[..end], out var r, out width);
        return Rune.IsWhiteSpace(r);
    }

    /// <summary>Rust regex <c>\w</c>: alphabetic, marks, decimal digits, connector punctuation, join controls.</summary>
    static bool IsWordRune(Rune r)
    {
        if (r.Value is 0x200C or 0x200D) return true;
        var cat = Rune.GetUnicodeCategory(r);
        return Rune.IsLetter(r) || cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark
            or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation
            or UnicodeCategory.LetterNumber;
    }

    static bool EndsWithWordChar(ReadOnlySpan<char> s) =>
        !s.IsEmpty && Rune.DecodeLastFromUtf16(s, out var r, out _) == OperationStatus.Done && IsWordRune(r);

    static bool StartsWithWordChar(ReadOnlySpan<char> s) =>
        !s.IsEmpty && Rune.DecodeFromUtf16(s, out var r, out _) == OperationStatus.Done && IsWordRune(r);
}
