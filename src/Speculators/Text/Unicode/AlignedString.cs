namespace Speculators.Text.Unicode;

/// <summary>
/// A transformed string that remembers, for every UTF-16 unit, the range [start, end) of the
/// caller's original text it came from. Normalizers and pre-tokenizers produce these so token
/// offsets can be mapped back to the original string. Inserted characters get an empty range at
/// their insertion point; characters produced from part of a character (decompositions, byte
/// splits) get the whole source character's range; merged characters get the union.
/// </summary>
internal sealed class AlignedString
{
    char[] _chars;
    int[] _starts;
    int[] _ends;

    public AlignedString(int capacity = 16)
    {
        capacity = Math.Max(capacity, 4);
        _chars = new char[capacity];
        _starts = new int[capacity];
        _ends = new int[capacity];
    }

    public int Length { get; private set; }
    public ReadOnlySpan<char> Chars => _chars.AsSpan(0, Length);
    public ReadOnlySpan<int> Starts => _starts.AsSpan(0, Length);
    public ReadOnlySpan<int> Ends => _ends.AsSpan(0, Length);
    public ReadOnlyMemory<char> Memory => _chars.AsMemory(0, Length);
    public int[] StartArray => _starts;
    public int[] EndArray => _ends;

    public void Clear() => Length = 0;

    void Grow(int need)
    {
        int cap = Math.Max(need, _chars.Length * 2);
        Array.Resize(ref _chars, cap);
        Array.Resize(ref _starts, cap);
        Array.Resize(ref _ends, cap);
    }

    public void Append(char c, int start, int end)
    {
        if (Length == _chars.Length) Grow(Length + 1);
        _chars[Length] = c;
        _starts[Length] = start;
        _ends[Length] = end;
        Length++;
    }

    public void AppendCodePoint(int cp, int start, int end)
    {
        if (cp < 0x10000) { Append((char)cp, start, end); return; }
        cp -= 0x10000;
        Append((char)(0xD800 + (cp >> 10)), start, end);
        Append((char)(0xDC00 + (cp & 0x3FF)), start, end);
    }

    /// <summary>Appends units of <paramref name="src"/> [from, to) with their alignments.</summary>
    public void AppendFrom(AlignedString src, int from, int to)
    {
        int n = to - from;
        if (Length + n > _chars.Length) Grow(Length + n);
        src._chars.AsSpan(from, n).CopyTo(_chars.AsSpan(Length));
        src._starts.AsSpan(from, n).CopyTo(_starts.AsSpan(Length));
        src._ends.AsSpan(from, n).CopyTo(_ends.AsSpan(Length));
        Length += n;
    }

    /// <summary>An aligned copy of <paramref name="text"/> where unit i maps to [i, i+1) (surrogate pairs to both units).</summary>
    public static AlignedString Identity(ReadOnlySpan<char> text)
    {
        var s = new AlignedString(text.Length + 4);
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                s.Append(text[i], i, i + 2);
                s.Append(text[i + 1], i, i + 2);
                i++;
            }
            else s.Append(text[i], i, i + 1);
        }
        return s;
    }

    /// <summary>Range covered by units [from, to): the union of their source ranges.</summary>
    public (int Start, int End) Span(int from, int to)
    {
        if (from >= to) return from < Length ? (_starts[from], _starts[from]) : Length > 0 ? (_ends[Length - 1], _ends[Length - 1]) : (0, 0);
        int s = int.MaxValue, e = int.MinValue;
        for (int i = from; i < to; i++)
        {
            if (_starts[i] < s) s = _starts[i];
            if (_ends[i] > e) e = _ends[i];
        }
        return (s, e);
    }

    public override string ToString() => new(Chars);
}
