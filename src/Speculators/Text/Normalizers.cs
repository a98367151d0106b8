using System.Globalization;
using System.Text;
using Speculators.Text.Unicode;

namespace Speculators.Text;

/// <summary>
/// A tokenizer.json normalizer. <see cref="Normalize"/> returns null when the text is unchanged
/// (the fast path: offsets are then the identity), otherwise the normalized text with, per unit,
/// the range of the input it came from.
/// </summary>
internal abstract class TextNormalizer
{
    /// <summary>Normalizes raw text; null = unchanged.</summary>
    public virtual AlignedString? Normalize(ReadOnlySpan<char> text)
    {
        if (IsUnchanged(text)) return null;
        return Apply(AlignedString.Identity(text));
    }

    /// <summary>Cheap test that the normalizer would leave <paramref name="text"/> as is (false = maybe not).</summary>
    protected abstract bool IsUnchanged(ReadOnlySpan<char> text);

    /// <summary>Normalizes an aligned string (may return the same instance when nothing changes).</summary>
    public abstract AlignedString Apply(AlignedString input);

    /// <summary>Plain-string form, for added-token contents.</summary>
    public string NormalizeString(string s) => Normalize(s)?.ToString() ?? s;
}

internal sealed class UnicodeFormNormalizer(UnicodeForm form) : TextNormalizer
{
    protected override bool IsUnchanged(ReadOnlySpan<char> text) => UnicodeNormalizer.IsNormalizedQuick(text, form);

    public override AlignedString Apply(AlignedString input)
    {
        if (UnicodeNormalizer.IsNormalizedQuick(input.Chars, form)) return input;
        var dst = new AlignedString(input.Length + 8);
        UnicodeNormalizer.Normalize(input, form, dst);
        return dst;
    }
}

/// <summary>HF Lowercase: Rust <c>char::to_lowercase</c> per character (full mapping: İ → i̇).</summary>
internal sealed class LowercaseNormalizer : TextNormalizer
{
    protected override bool IsUnchanged(ReadOnlySpan<char> text)
    {
        foreach (var r in text.EnumerateRunes())
            if (r.Value == 0x130 || Rune.ToLowerInvariant(r) != r) return false;
        return true;
    }

    public override AlignedString Apply(AlignedString input)
    {
        var dst = new AlignedString(input.Length + 4);
        var c = input.Chars;
        for (int i = 0; i < c.Length;)
        {
            Rune.DecodeFromUtf16(c[i..], out var r, out int used);
            int s = input.Starts[i], e = input.Ends[i + used - 1];
            if (r.Value == 0x130) { dst.Append('i', s, e); dst.Append('\u0307', s, e); }
            else dst.AppendCodePoint(Rune.ToLowerInvariant(r).Value, s, e);
            i += used;
        }
        return dst;
    }
}

/// <summary>HF Strip: removes leading and/or trailing whitespace (Rust <c>char::is_whitespace</c>).</summary>
internal sealed class StripNormalizer(bool left, bool right) : TextNormalizer
{
    protected override bool IsUnchanged(ReadOnlySpan<char> text) =>
        text.IsEmpty || (!(left && char.IsWhiteSpace(text[0])) && !(right && char.IsWhiteSpace(text[^1])));

    public override AlignedString Apply(AlignedString input)
    {
        int a = 0, b = input.Length;
        if (left) while (a < b && char.IsWhiteSpace(input.Chars[a])) a++;
        if (right) while (b > a && char.IsWhiteSpace(input.Chars[b - 1])) b--;
        if (a == 0 && b == input.Length) return input;
        var dst = new AlignedString(b - a + 4);
        dst.AppendFrom(input, a, b);
        return dst;
    }
}

/// <summary>HF StripAccents: removes combining marks (categories Mn, Mc, Me), usually after NFD.</summary>
internal sealed class StripAccentsNormalizer : TextNormalizer
{
    static bool IsMark(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;

    protected override bool IsUnchanged(ReadOnlySpan<char> text)
    {
        foreach (var r in text.EnumerateRunes())
            if (IsMark(r)) return false;
        return true;
    }

    public override AlignedString Apply(AlignedString input)
    {
        var dst = new AlignedString(input.Length + 4);
        var c = input.Chars;
        for (int i = 0; i < c.Length;)
        {
            Rune.DecodeFromUtf16(c[i..], out var r, out int used);
            if (!IsMark(r)) dst.AppendFrom(input, i, i + used);
            i += used;
        }
        return dst;
    }
}

/// <summary>HF Prepend: inserts a string before non-empty text (inserted units get an empty range at the start).</summary>
internal sealed class PrependNormalizer(string prepend) : TextNormalizer
{
    protected override bool IsUnchanged(ReadOnlySpan<char> text) => text.IsEmpty || prepend.Length == 0;

    public override AlignedString Apply(AlignedString input)
    {
        if (input.Length == 0 || prepend.Length == 0) return input;
        var dst = new AlignedString(input.Length + prepend.Length + 4);
        int at = input.Starts[0];
        foreach (char ch in prepend) dst.Append(ch, at, at);
        dst.AppendFrom(input, 0, input.Length);
        return dst;
    }
}

/// <summary>HF Replace (string or regex pattern): every replacement unit maps to the union of the matched units.</summary>
internal sealed class ReplaceNormalizer : TextNormalizer
{
    readonly string? _literal;
    readonly CodePointRegex? _regex;
    readonly string _content;

    public ReplaceNormalizer(string? literal, CodePointRegex? regex, string content)
    {
        _literal = literal;
        _regex = regex;
        _content = content;
    }

    protected override bool IsUnchanged(ReadOnlySpan<char> text) =>
        _literal != null ? (_literal.Length == 0 || text.IndexOf(_literal, StringComparison.Ordinal) < 0) : false;

    public override AlignedString Apply(AlignedString input)
    {
        var matches = new List<(int Start, int End)>();
        var c = input.Chars;
        if (_literal != null)
        {
            if (_literal.Length == 0) return input;
            for (int i = 0; i <= c.Length - _literal.Length;)
            {
                int k = c[i..].IndexOf(_literal, StringComparison.Ordinal);
                if (k < 0) break;
                matches.Add((i + k, i + k + _literal.Length));
                i += k + _literal.Length;
            }
        }
        else _regex!.Matches(c, matches);
        if (matches.Count == 0) return input;
        var dst = new AlignedString(input.Length + 4);
        int last = 0;
        foreach (var (ms, me) in matches)
        {
            dst.AppendFrom(input, last, ms);
            var (s, e) = input.Span(ms, me);
            foreach (char ch in _content) dst.Append(ch, s, e);
            last = me;
        }
        dst.AppendFrom(input, last, input.Length);
        return dst;
    }
}

internal sealed class SequenceNormalizer(IReadOnlyList<TextNormalizer> steps) : TextNormalizer
{
    public override AlignedString? Normalize(ReadOnlySpan<char> text)
    {
        AlignedString? cur = null;
        foreach (var step in steps)
        {
            if (cur == null) cur = step.Normalize(text);
            else cur = step.Apply(cur);
        }
        return cur;
    }

    protected override bool IsUnchanged(ReadOnlySpan<char> text) => false;

    public override AlignedString Apply(AlignedString input)
    {
        foreach (var step in steps) input = step.Apply(input);
        return input;
    }
}
