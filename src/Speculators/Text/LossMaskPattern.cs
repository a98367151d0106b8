using System.Text;
using System.Text.RegularExpressions;

namespace Speculators.Text;

/// <summary>
/// An assistant regex: group 1 of every match is supervised text. Either given by the user
/// (<c>--assistant-pattern</c>) or detected from a probe render by <see cref="Detect"/>.
/// </summary>
public sealed class AssistantPattern
{
    /// <summary>The .NET regex text (semantically the pattern Python's speculators would build).</summary>
    public string Pattern { get; }
    /// <summary>Detection only: the literal text before the assistant content (after <c>&lt;think&gt;</c> stripping).</summary>
    public string? RoleMarker { get; }
    /// <summary>Detection only: the literal text after the assistant content.</summary>
    public string? Suffix { get; }
    /// <summary>Detection only: the tag the lazy content group may not run into (null when none was found and
    /// the fallback lookahead <c>(?!&lt;|start|)</c> is used).</summary>
    public string? Boundary { get; }
    /// <summary>True when detected from probe renders, false when given.</summary>
    public bool Detected { get; }

    public Regex Regex { get; }

    static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(20);

    AssistantPattern(string pattern, Regex regex, string? roleMarker, string? suffix, string? boundary, bool detected)
    {
        Pattern = pattern;
        Regex = regex;
        RoleMarker = roleMarker;
        Suffix = suffix;
        Boundary = boundary;
        Detected = detected;
    }

    /// <summary>
    /// A user-given pattern (Python <c>re</c> syntax as far as .NET shares it; <c>(?P&lt;name&gt;…)</c>,
    /// <c>(?P=name)</c> and <c>\Z</c> are translated). Matched with DOTALL, as speculators does.
    /// It must have a capturing group 1 (the supervised text).
    /// </summary>
    public static AssistantPattern FromUser(string pattern, string origin = "--assistant-pattern")
    {
        if (string.IsNullOrEmpty(pattern)) throw new SpeculatorsException($"{origin}: the pattern is empty; expected a regex whose group 1 is the assistant text.");
        string translated = TranslatePython(pattern);
        Regex re;
        try
        {
            re = new Regex(translated, RegexOptions.Singleline | RegexOptions.CultureInvariant | RegexOptions.Compiled, MatchTimeout);
        }
        catch (ArgumentException e)
        {
            throw new SpeculatorsException($"{origin}: '{pattern}' is not a valid regex: {e.Message}", e);
        }
        if (re.GetGroupNumbers().All(g => g != 1))
            throw new SpeculatorsException($"{origin}: '{pattern}' has no capturing group; group 1 must capture the assistant text, e.g. '<\\|im_start\\|>assistant\\n(.*?)<\\|im_end\\|>'.");
        return new AssistantPattern(translated, re, null, null, null, detected: false);
    }

    /// <summary>Probe conversation of legacy speculators' <c>_detect_assistant_pattern</c>.</summary>
    public static readonly (string Role, string Content)[] ProbeConversation =
    [
        ("user", "USER_MSG_1"), ("assistant", "ASSISTANT_MSG_1"), ("user", "USER_MSG_2"), ("assistant", "ASSISTANT_MSG_2"),
    ];

    static readonly Regex ThinkBlock = new(@"<think>.*?</think>[\s\x1c-\x1f]*", RegexOptions.Singleline | RegexOptions.CultureInvariant);
    static readonly Regex TagLike = new(@"((<\|?[a-zA-Z0-9_]+[\|>]?)|(\[[a-zA-Z0-9_]+\]))", RegexOptions.CultureInvariant);

    /// <summary>
    /// Legacy speculators' (≤ v0.7) assistant-pattern detection (speculators.md §6.4), applied to
    /// <paramref name="formatted"/>, the render of <see cref="ProbeConversation"/> without a generation prompt:
    /// role marker = the text between <c>USER_MSG_2</c> and <c>ASSISTANT_MSG_2</c> from the last <c>&lt;</c> or
    /// <c>[</c> before its last <c>assistant</c> (or from <c>assistant</c>, or all of it), with
    /// <c>&lt;think&gt;…&lt;/think&gt;\s*</c> removed; suffix = the common prefix of what follows each assistant
    /// message (the first tail, or "\n", when empty); boundary = the first tag-like token of the role marker;
    /// pattern = <c>escape(marker) ((?:(?!escape(boundary)).)*?) escape(suffix)</c>. Python string slicing
    /// quirks (a missing marker gives index −1 / 9) are reproduced; positions are compared in code points.
    /// </summary>
    public static AssistantPattern Detect(string formatted, string origin)
    {
        int firstStart = formatted.IndexOf("ASSISTANT_MSG_1", StringComparison.Ordinal);
        int secondStart = formatted.IndexOf("ASSISTANT_MSG_2", StringComparison.Ordinal);
        if (firstStart < 0 || secondStart < 0)
            throw new SpeculatorsException(
                $"{origin}: cannot detect an assistant pattern: the probe conversation (user/assistant/user/assistant) renders without " +
                $"{(firstStart < 0 ? "ASSISTANT_MSG_1" : "ASSISTANT_MSG_2")}. Pass --assistant-pattern REGEX (group 1 = assistant text) or use --mask-strategy boundary.");
        int firstEnd = firstStart + "ASSISTANT_MSG_1".Length;
        int secondEnd = secondStart + "ASSISTANT_MSG_2".Length;
        int user2 = formatted.IndexOf("USER_MSG_2", StringComparison.Ordinal);
        // Python: formatted.find("USER_MSG_2") + len("USER_MSG_2") — 9 when absent.
        int secondUserEnd = user2 >= 0 ? user2 + "USER_MSG_2".Length : CodePointIndex(formatted, 9);
        string prefix = Slice(formatted, secondUserEnd, secondStart);

        string roleMarker;
        int assistantPos = prefix.LastIndexOf("assistant", StringComparison.Ordinal);
        if (assistantPos != -1)
        {
            int roleStart = -1;
            if (assistantPos > 0)
                foreach (char c in new[] { '<', '[' })
                    roleStart = Math.Max(roleStart, prefix.LastIndexOf(c, assistantPos - 1));
            roleMarker = roleStart != -1 ? prefix[roleStart..] : prefix[assistantPos..];
        }
        else roleMarker = prefix;
        roleMarker = ThinkBlock.Replace(roleMarker, "");

        // Python: formatted[first_end : formatted.find("USER_MSG_2")] — the end is -1 (the last character) when absent.
        int suffix1End = user2 >= 0 ? user2 : LastCharStart(formatted);
        string suffix1 = Slice(formatted, firstEnd, suffix1End);
        string suffix2 = formatted[secondEnd..];
        int common = 0;
        while (common < suffix1.Length && common < suffix2.Length && suffix1[common] == suffix2[common]) common++;
        // Python compares code points: never end between the two halves of a surrogate pair.
        if (common > 0 && char.IsHighSurrogate(suffix1[common - 1])) common--;
        string suffix = suffix1[..common];
        if (suffix.Length == 0) suffix = suffix1.Length > 0 ? suffix1 : "\n";

        var bm = TagLike.Match(roleMarker);
        string? boundary = bm.Success ? bm.Groups[1].Value : null;
        string lookahead = boundary != null ? "(?!" + Regex.Escape(boundary) + ")" : @"(?!<\|start\|)";
        string pattern = Regex.Escape(roleMarker) + "((?:" + lookahead + ".)*?)" + Regex.Escape(suffix);
        var re = new Regex(pattern, RegexOptions.Singleline | RegexOptions.CultureInvariant | RegexOptions.Compiled, MatchTimeout);
        return new AssistantPattern(pattern, re, roleMarker, suffix, boundary, detected: true);
    }

    /// <summary>Python slicing s[start:end] for non-negative indices (empty when end ≤ start, clamped to the length).</summary>
    static string Slice(string s, int start, int end)
    {
        start = Math.Min(Math.Max(start, 0), s.Length);
        end = Math.Min(Math.Max(end, 0), s.Length);
        return end > start ? s[start..end] : "";
    }

    /// <summary>UTF-16 index of code point <paramref name="cp"/> (clamped to the length).</summary>
    static int CodePointIndex(string s, int cp)
    {
        int i = 0;
        for (int k = 0; k < cp && i < s.Length; k++) i += char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]) ? 2 : 1;
        return i;
    }

    /// <summary>UTF-16 index of the last code point (Python's index −1); 0 for an empty string.</summary>
    static int LastCharStart(string s)
    {
        if (s.Length == 0) return 0;
        int i = s.Length - 1;
        if (i > 0 && char.IsLowSurrogate(s[i]) && char.IsHighSurrogate(s[i - 1])) i--;
        return i;
    }

    /// <summary>Group-1 spans [start, end) in UTF-16 units of every match in <paramref name="text"/>.</summary>
    public List<(int Start, int End)> Spans(string text, string where) =>
        Detected && RoleMarker!.Length > 0 ? LiteralSpans(text) : RegexSpans(text, where);

    /// <summary>
    /// What <see cref="Regex"/> finds for a detected pattern <c>marker((?:(?!boundary).)*?)suffix</c>, by ordinal searches
    /// (several times faster): from each occurrence of the marker (left to right, after the previous match), the lazy group
    /// ends at the first position where the suffix starts, unless the boundary starts earlier (the suffix is tried first at
    /// each position, so it wins a tie); when the boundary comes first, that marker occurrence does not match.
    /// </summary>
    internal List<(int Start, int End)> LiteralSpans(string text)
    {
        var spans = new List<(int, int)>();
        string marker = RoleMarker!, suffix = Suffix!, boundary = Boundary ?? "<|start|";
        int from = 0;
        while (from <= text.Length)
        {
            int m = text.IndexOf(marker, from, StringComparison.Ordinal);
            if (m < 0) break;
            int start = m + marker.Length;
            int s = text.IndexOf(suffix, start, StringComparison.Ordinal);
            if (s < 0) break; // no later marker can match either
            // A boundary starting before the suffix (it may run past the suffix's start).
            int b = text.IndexOf(boundary, start, Math.Min(text.Length - start, s - start + boundary.Length - 1), StringComparison.Ordinal);
            if (b >= 0 && b < s)
            {
                from = m + 1;
                continue;
            }
            spans.Add((start, s));
            from = s + suffix.Length;
        }
        return spans;
    }

    internal List<(int Start, int End)> RegexSpans(string text, string where)
    {
        var spans = new List<(int, int)>();
        try
        {
            for (var m = Regex.Match(text); m.Success; m = m.NextMatch())
            {
                var g = m.Groups[1];
                if (g.Success) spans.Add((g.Index, g.Index + g.Length));
                else spans.Add((-1, -1));
            }
        }
        catch (RegexMatchTimeoutException)
        {
            throw new SpeculatorsException(
                $"{where}: the assistant pattern '{Pattern}' took more than {MatchTimeout.TotalSeconds:F0} s on one conversation " +
                $"({text.Length} characters); simplify it (avoid nested quantifiers) or use --mask-strategy generation/boundary.");
        }
        return spans;
    }

    /// <summary>The mask of tokens overlapping any group-1 span, and the number of matches (0 = the pattern found no assistant text).</summary>
    public (byte[] Mask, int Matches) Apply(string text, IReadOnlyList<(int Start, int End)> tokenOffsets, string where)
    {
        var spans = Spans(text, where);
        return (LossMaskSpans.FromSpans(tokenOffsets, spans.Where(s => s.Start >= 0)), spans.Count);
    }

    /// <summary>
    /// Python <c>re</c> → .NET: <c>(?P&lt;name&gt;</c> → <c>(?&lt;name&gt;</c>, <c>(?P=name)</c> → <c>\k&lt;name&gt;</c>,
    /// <c>\Z</c> → <c>\z</c>; everything else is passed through (the common syntax is shared).
    /// </summary>
    internal static string TranslatePython(string p)
    {
        var sb = new StringBuilder(p.Length + 8);
        bool inClass = false;
        for (int i = 0; i < p.Length; i++)
        {
            char c = p[i];
            if (c == '\\' && i + 1 < p.Length)
            {
                char n = p[i + 1];
                sb.Append(!inClass && n == 'Z' ? "\\z" : p.AsSpan(i, 2));
                i++;
                continue;
            }
            if (inClass)
            {
                if (c == ']') inClass = false;
                sb.Append(c);
                continue;
            }
            if (c == '[')
            {
                inClass = true;
                sb.Append(c);
                // A ']' right after '[' or '[^' is a literal.
                if (i + 1 < p.Length && p[i + 1] == '^') { sb.Append('^'); i++; }
                if (i + 1 < p.Length && p[i + 1] == ']') { sb.Append(']'); i++; }
                continue;
            }
            if (c == '(' && p.AsSpan(i).StartsWith("(?P<"))
            {
                sb.Append("(?<");
                i += 3;
                continue;
            }
            if (c == '(' && p.AsSpan(i).StartsWith("(?P="))
            {
                int close = p.IndexOf(')', i);
                if (close > 0)
                {
                    sb.Append("\\k<").Append(p, i + 4, close - i - 4).Append('>');
                    i = close;
                    continue;
                }
            }
            sb.Append(c);
        }
        return sb.ToString();
    }
}
