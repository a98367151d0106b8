using System.Globalization;
using System.Text.RegularExpressions;

namespace Speculators.Text;

/// <summary>
/// A tokenizer.json regex run with code-point semantics. HF compiles these patterns with
/// Oniguruma over UTF-8, where an emoji or a supplementary-plane letter is one character;
/// .NET's <see cref="Regex"/> sees UTF-16 units, so <c>[^\s\p{L}\p{N}]?\p{L}+</c> would not take
/// "😀abc" as one piece and <c>\p{L}</c> would not match "𠀀". When the input has surrogates we
/// therefore match on a shadow string holding one BMP stand-in of the same Unicode category per
/// code point and map the match positions back. Patterns containing supplementary literals are
/// rejected (the shadow could not represent them).
/// </summary>
internal sealed class CodePointRegex
{
    readonly Regex _regex;
    readonly Action<ReadOnlySpan<char>, List<(int Start, int End)>>? _fast;
    public string Pattern { get; }

    public CodePointRegex(string pattern, string source, bool escape = false)
    {
        Pattern = pattern;
        string p = escape ? Regex.Escape(pattern) : pattern;
        foreach (char c in p)
            if (char.IsSurrogate(c))
                throw new SpeculatorsException($"{source}: the regex '{pattern}' contains characters outside the Basic Multilingual Plane, which this tokenizer cannot match with code-point semantics.");
        try
        {
            _regex = new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new SpeculatorsException($"{source}: the regex '{pattern}' is not supported by .NET regular expressions ({e.Message}).", e);
        }
        if (!escape) _fast = FastSplitPatterns.For(pattern);
    }

    /// <summary>True when a hand-written matcher replaces the regex (GPT-2, Llama-3, Qwen2 patterns).</summary>
    public bool IsFast => _fast != null;

    /// <summary>The regex path, bypassing any hand-written matcher (tests compare the two).</summary>
    internal void RegexMatches(ReadOnlySpan<char> text, List<(int Start, int End)> output)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (var m in _regex.EnumerateMatches(text))
                if (m.Length > 0) output.Add((m.Index, m.Index + m.Length));
            return;
        }
        ShadowMatches(text, output);
    }

    /// <summary>Appends the non-empty matches in <paramref name="text"/> as (start, end) UTF-16 ranges.</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int Start, int End)> output)
    {
        if (_fast != null) { _fast(text, output); return; }
        RegexMatches(text, output);
    }

    void ShadowMatches(ReadOnlySpan<char> text, List<(int Start, int End)> output)
    {
        // Shadow: one char per code point; map[k] = UTF-16 index of shadow char k (map[len] = text.Length).
        var shadow = new char[text.Length];
        var map = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length; i++)
        {
            map[n] = i;
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                shadow[n++] = StandIn(char.ConvertToUtf32(c, text[i + 1]));
                i++;
            }
            else shadow[n++] = char.IsSurrogate(c) ? '\uFFFD' : c;
        }
        map[n] = text.Length;
        foreach (var m in _regex.EnumerateMatches(shadow.AsSpan(0, n)))
            if (m.Length > 0) output.Add((map[m.Index], map[m.Index + m.Length]));
    }

    /// <summary>A BMP character with the same general category as <paramref name="cp"/> (none of them ASCII or case-related to ASCII).</summary>
    internal static char StandIn(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp) switch
    {
        UnicodeCategory.UppercaseLetter => '\u0100',
        UnicodeCategory.LowercaseLetter => '\u0101',
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',
        UnicodeCategory.LetterNumber => '\u2160',
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.SpaceSeparator => '\u3000',
        UnicodeCategory.LineSeparator => '\u2028',
        UnicodeCategory.ParagraphSeparator => '\u2029',
        UnicodeCategory.Control => '\u0080',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00A1',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00A8',
        UnicodeCategory.OtherSymbol => '\u00A6',
        _ => '\u0378', // unassigned
    };
}
