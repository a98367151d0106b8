using System.Globalization;
using System.Text;
using Speculators.Text.Unicode;

namespace Speculators.Text;

/// <summary>A pre-token: units [Start, End) of the working text; AddedId ≥ 0 marks an added token (never split).</summary>
internal readonly record struct Piece(int Start, int End, int AddedId = -1);

/// <summary>HF <c>SplitDelimiterBehavior</c>.</summary>
internal enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

/// <summary>
/// The pre-tokenized form of one segment of the caller's text (HF <c>PreTokenizedString</c>):
/// a working text, the alignment of each working unit to the caller's string, and the pieces.
/// </summary>
internal sealed class PreTokenizedText
{
    /// <summary>Working text (the normalized segment, or a rebuilt text after Metaspace/prefix-space transforms).</summary>
    public ReadOnlyMemory<char> Text;
    /// <summary>Per working unit, the range in the segment's original text; null = identity.</summary>
    public int[]? Starts, Ends;
    /// <summary>Where the segment starts in the caller's string.</summary>
    public int BaseOffset;
    public List<Piece> Pieces = new();
    List<Piece> _spare = new();
    readonly List<(int Start, int End)> _matches = new();
    readonly List<(int Start, int End, bool IsMatch)> _events = new();
    /// <summary>Set by the ByteLevel pre-tokenizer: the model sees UTF-8 bytes as GPT-2 byte characters.</summary>
    public bool ByteLevel;

    public void Reset(ReadOnlyMemory<char> text, int[]? starts, int[]? ends, int baseOffset)
    {
        Text = text; Starts = starts; Ends = ends; BaseOffset = baseOffset;
        Pieces.Clear();
        ByteLevel = false;
    }

    public ReadOnlySpan<char> PieceText(in Piece p) => Text.Span[p.Start..p.End];

    /// <summary>Start of unit <paramref name="u"/> in the segment's original text.</summary>
    public int SegmentStart(int u) => Starts == null ? u : Starts[u];

    /// <summary>Range in the caller's string covered by working units [from, to).</summary>
    public (int Start, int End) MapRange(int from, int to)
    {
        if (Starts == null) return (BaseOffset + from, BaseOffset + to);
        int s = int.MaxValue, e = int.MinValue;
        for (int i = from; i < to; i++)
        {
            if (Starts[i] < s) s = Starts[i];
            if (Ends![i] > e) e = Ends[i];
        }
        return (BaseOffset + s, BaseOffset + e);
    }

    /// <summary>Splits every non-added piece at the matches found by <paramref name="find"/> (HF NormalizedString::split).</summary>
    public void Split(Action<ReadOnlySpan<char>, List<(int Start, int End)>> find, SplitBehavior behavior, bool invert = false)
    {
        var output = _spare;
        output.Clear();
        var span = Text.Span;
        foreach (var p in Pieces)
        {
            if (p.AddedId >= 0 || p.End == p.Start) { if (p.End > p.Start) output.Add(p); continue; }
            _matches.Clear();
            find(span[p.Start..p.End], _matches);
            _events.Clear();
            int prev = 0, len = p.End - p.Start;
            foreach (var (ms, me) in _matches)
            {
                if (prev != ms) _events.Add((prev, ms, invert));
                _events.Add((ms, me, !invert));
                prev = me;
            }
            if (prev != len) _events.Add((prev, len, invert));
            ApplyBehavior(_events, behavior, p.Start, output);
        }
        _spare = Pieces;
        Pieces = output;
    }

    static void ApplyBehavior(List<(int Start, int End, bool IsMatch)> ev, SplitBehavior behavior, int offset, List<Piece> output)
    {
        void Emit(int s, int e) { if (e > s) output.Add(new Piece(offset + s, offset + e)); }
        switch (behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var (s, e, _) in ev) Emit(s, e);
                break;
            case SplitBehavior.Removed:
                foreach (var (s, e, m) in ev) if (!m) Emit(s, e);
                break;
            case SplitBehavior.Contiguous:
            {
                int cs = -1, ce = -1; bool prevMatch = false;
                foreach (var (s, e, m) in ev)
                {
                    if (cs >= 0 && m == prevMatch) ce = e;
                    else { if (cs >= 0) Emit(cs, ce); cs = s; ce = e; }
                    prevMatch = m;
                }
                if (cs >= 0) Emit(cs, ce);
                break;
            }
            case SplitBehavior.MergedWithPrevious:
            {
                int cs = -1, ce = -1; bool prevMatch = false;
                foreach (var (s, e, m) in ev)
                {
                    if (m && !prevMatch && cs >= 0) ce = e;
                    else { if (cs >= 0) Emit(cs, ce); cs = s; ce = e; }
                    prevMatch = m;
                }
                if (cs >= 0) Emit(cs, ce);
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                // Walk backwards: a match is glued to the split that follows it.
                var tmp = new List<(int S, int E)>();
                bool prevMatch = false;
                for (int i = ev.Count - 1; i >= 0; i--)
                {
                    var (s, e, m) = ev[i];
                    if (m && !prevMatch && tmp.Count > 0) tmp[^1] = (s, tmp[^1].E);
                    else tmp.Add((s, e));
                    prevMatch = m;
                }
                for (int i = tmp.Count - 1; i >= 0; i--) Emit(tmp[i].S, tmp[i].E);
                break;
            }
        }
    }

    /// <summary>
    /// Rebuilds the working text piece by piece: <paramref name="prefix"/> decides what to insert
    /// before a piece (inserted units get an empty range at the piece start), <paramref name="map"/>
    /// maps each unit 1:1 (e.g. ' ' → '▁'). Added-token pieces are copied unchanged.
    /// </summary>
    public void Rebuild(Func<PreTokenizedText, Piece, string?> prefix, Func<char, char>? map)
    {
        var span = Text.Span;
        var dst = new AlignedString(span.Length + Pieces.Count + 4);
        var output = new List<Piece>(Pieces.Count);
        foreach (var p in Pieces)
        {
            int start = dst.Length;
            if (p.AddedId < 0)
            {
                string? pre = prefix(this, p);
                if (pre != null)
                {
                    int at = SegmentStart(p.Start);
                    foreach (char ch in pre) dst.Append(ch, at, at);
                }
            }
            for (int u = p.Start; u < p.End; u++)
            {
                char c = span[u];
                if (map != null && p.AddedId < 0) c = map(c);
                int s = Starts == null ? u : Starts[u];
                int e = Starts == null ? u + 1 : Ends![u];
                if (Starts == null && char.IsHighSurrogate(span[u]) && u + 1 < p.End && char.IsLowSurrogate(span[u + 1])) e = u + 2;
                else if (Starts == null && char.IsLowSurrogate(span[u]) && u > p.Start && char.IsHighSurrogate(span[u - 1])) s = u - 1;
                dst.Append(c, s, e);
            }
            output.Add(new Piece(start, dst.Length, p.AddedId));
        }
        Text = dst.Memory;
        Starts = dst.StartArray;
        Ends = dst.EndArray;
        Pieces = output;
    }
}

internal abstract class PreTokenizerStep
{
    public abstract void Apply(PreTokenizedText pt);
}

internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizerStep> steps) : PreTokenizerStep
{
    public IReadOnlyList<PreTokenizerStep> Steps => steps;
    public override void Apply(PreTokenizedText pt) { foreach (var s in steps) s.Apply(pt); }
}

/// <summary>HF Split: a string or regex pattern, a behavior and invert.</summary>
internal sealed class SplitPreTokenizer(CodePointRegex regex, SplitBehavior behavior, bool invert) : PreTokenizerStep
{
    public CodePointRegex Regex => regex;
    public override void Apply(PreTokenizedText pt) => pt.Split(regex.Matches, behavior, invert);
}

/// <summary>HF ByteLevel: optional prefix space, optional GPT-2 regex split, then byte-level mapping (done by the model).</summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
{
    static readonly Lazy<CodePointRegex> Gpt2 = new(() => new CodePointRegex(FastSplitPatterns.Gpt2, "ByteLevel pre-tokenizer"));

    public bool AddPrefixSpace => addPrefixSpace;

    public override void Apply(PreTokenizedText pt)
    {
        if (addPrefixSpace)
        {
            bool needed = false;
            foreach (var p in pt.Pieces)
                if (p.AddedId < 0 && p.End > p.Start && pt.Text.Span[p.Start] != ' ') { needed = true; break; }
            if (needed) pt.Rebuild((t, p) => p.End > p.Start && t.Text.Span[p.Start] != ' ' ? " " : null, null);
        }
        if (useRegex) pt.Split(Gpt2.Value.Matches, SplitBehavior.Isolated);
        pt.ByteLevel = true;
    }
}

/// <summary>HF Metaspace: spaces → replacement, prepend per scheme (always / first / never), optional split.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : PreTokenizerStep
{
    public override void Apply(PreTokenizedText pt)
    {
        string rep = replacement.ToString();
        pt.Rebuild((t, p) =>
        {
            var text = t.Text.Span[p.Start..p.End];
            if (text.IsEmpty || text[0] == replacement || text[0] == ' ') return null; // ' ' becomes the replacement itself
            return prependScheme switch
            {
                "always" => rep,
                "first" => t.BaseOffset + t.SegmentStart(p.Start) == 0 ? rep : null,
                _ => null,
            };
        }, c => c == ' ' ? replacement : c);
        if (split)
            pt.Split((s, m) => { for (int i = 0; i < s.Length; i++) if (s[i] == replacement) m.Add((i, i + 1)); }, SplitBehavior.MergedWithNext);
    }
}

/// <summary>HF Digits: splits on numeric characters (each digit alone, or runs).</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizerStep
{
    public override void Apply(PreTokenizedText pt) =>
        pt.Split(CharMatches(c => Rune.IsNumber(c)), individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous);

    internal static Action<ReadOnlySpan<char>, List<(int, int)>> CharMatches(Func<Rune, bool> pred) => (s, m) =>
    {
        for (int i = 0; i < s.Length;)
        {
            Rune.DecodeFromUtf16(s[i..], out var r, out int used);
            if (pred(r)) m.Add((i, i + used));
            i += used;
        }
    };
}

/// <summary>HF Punctuation: ASCII punctuation or Unicode P* categories, with a behavior (default Isolated).</summary>
internal sealed class PunctuationPreTokenizer(SplitBehavior behavior) : PreTokenizerStep
{
    internal static bool IsPunctuation(Rune r) =>
        (r.IsAscii && char.IsAsciiLetterOrDigit((char)r.Value) == false && r.Value > 32 && r.Value < 127) ||
        Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
            or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
            or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    public override void Apply(PreTokenizedText pt) => pt.Split(DigitsPreTokenizer.CharMatches(IsPunctuation), behavior);
}

/// <summary>HF WhitespaceSplit (split on whitespace, removed) and CharDelimiterSplit.</summary>
internal sealed class CharSplitPreTokenizer(Func<Rune, bool> isDelimiter) : PreTokenizerStep
{
    public override void Apply(PreTokenizedText pt) => pt.Split(DigitsPreTokenizer.CharMatches(isDelimiter), SplitBehavior.Removed);
}

/// <summary>HF Whitespace: keeps <c>\w+|[^\w\s]+</c> runs.</summary>
internal sealed class WhitespacePreTokenizer : PreTokenizerStep
{
    static readonly Lazy<CodePointRegex> Re = new(() => new CodePointRegex(@"\w+|[^\w\s]+", "Whitespace pre-tokenizer"));
    public override void Apply(PreTokenizedText pt) => pt.Split(Re.Value.Matches, SplitBehavior.Removed, invert: true);
}
