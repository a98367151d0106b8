using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace Speculators.Text;

/// <summary>
/// Hand-written matchers for the pre-tokenizer regexes almost every byte-level BPE uses (GPT-2,
/// Llama-3, Qwen2), with the exact leftmost-alternative semantics of the regex, on code points.
/// They are about 3× faster than the compiled .NET regex; a test checks them against the regex
/// on random text. Any other pattern runs through <see cref="CodePointRegex"/>'s regex.
/// </summary>
internal static class FastSplitPatterns
{
    public const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    public const string Llama3 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2 = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>A matcher for <paramref name="pattern"/>, or null when it is not one we know.</summary>
    public static Action<ReadOnlySpan<char>, List<(int Start, int End)>>? For(string pattern) => pattern switch
    {
        Gpt2 => MatchGpt2,
        Llama3 => (s, o) => MatchLlama3(s, o, 3),
        Qwen2 => (s, o) => MatchLlama3(s, o, 1),
        _ => null,
    };

    const byte Other = 0, Letter = 1, Number = 2, Space = 3;
    static readonly byte[] BmpClass = BuildTable();

    static byte[] BuildTable()
    {
        var t = new byte[0x10000];
        for (int c = 0; c < 0x10000; c++) t[c] = Classify(c);
        return t;
    }

    static byte Classify(int cp)
    {
        if (cp < 0x10000 && char.IsWhiteSpace((char)cp)) return Space;
        if (cp is >= 0xD800 and <= 0xDFFF) return Other;
        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => Letter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => Number,
            _ => Other,
        };
    }

    /// <summary>Class of the code point at <paramref name="i"/> and its width in UTF-16 units.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte ClassAt(ReadOnlySpan<char> s, int i, out int width)
    {
        char c = s[i];
        if (!char.IsHighSurrogate(c) || i + 1 >= s.Length || !char.IsLowSurrogate(s[i + 1]))
        {
            width = 1;
            return BmpClass[c];
        }
        width = 2;
        return Classify(char.ConvertToUtf32(c, s[i + 1]));
    }

    static int RunEnd(ReadOnlySpan<char> s, int i, byte cls)
    {
        while (i < s.Length && ClassAt(s, i, out int w) == cls) i += w;
        return i;
    }

    static int RunEnd(ReadOnlySpan<char> s, int i, byte cls, int maxCount)
    {
        for (int k = 0; k < maxCount && i < s.Length && ClassAt(s, i, out int w) == cls; k++) i += w;
        return i;
    }

    static char Lower(char c) => c is >= 'A' and <= 'Z' ? (char)(c | 0x20) : c;

    /// <summary>Length of a contraction ('s 't 're 've 'm 'll 'd) at i, or 0.</summary>
    static int Contraction(ReadOnlySpan<char> s, int i, bool ignoreCase)
    {
        if (s[i] != '\'' || i + 1 >= s.Length) return 0;
        char c1 = ignoreCase ? Lower(s[i + 1]) : s[i + 1];
        if (c1 is 's' or 't' or 'm' or 'd') return 2;
        if (i + 2 >= s.Length) return 0;
        char c2 = ignoreCase ? Lower(s[i + 2]) : s[i + 2];
        if ((c1 is 'r' or 'v') && c2 == 'e') return 3;
        if (c1 == 'l' && c2 == 'l') return 3;
        return 0;
    }

    /// <summary>Whitespace run [i, j) handling shared by the patterns: \s+(?!\S) then \s+.</summary>
    static int TrailingSpaceRule(ReadOnlySpan<char> s, int i, int j)
    {
        if (j == s.Length) return j;
        return j - 1 > i ? j - 1 : j;
    }

    static void MatchLlama3(ReadOnlySpan<char> s, List<(int Start, int End)> output, int maxDigits)
    {
        int i = 0;
        while (i < s.Length)
        {
            int end = MatchLlama3At(s, i, maxDigits);
            output.Add((i, end));
            i = end;
        }
    }

    static int MatchLlama3At(ReadOnlySpan<char> s, int i, int maxDigits)
    {
        int k = Contraction(s, i, ignoreCase: true);
        if (k > 0) return i + k;
        char c = s[i];
        byte cls = ClassAt(s, i, out int w);
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if (cls == Letter) return RunEnd(s, i + w, Letter);
        if (cls != Number && c != '\r' && c != '\n' && i + w < s.Length && ClassAt(s, i + w, out int w2) == Letter)
            return RunEnd(s, i + w + w2, Letter);
        // \p{N}{1,maxDigits}
        if (cls == Number) return RunEnd(s, i, Number, maxDigits);
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        if (c == ' ' && i + 1 < s.Length && ClassAt(s, i + 1, out _) == Other) return CrLfRun(s, RunEnd(s, i + 1, Other));
        if (cls == Other) return CrLfRun(s, RunEnd(s, i, Other));
        // Whitespace: \s*[\r\n]+ (ends after the last \r or \n of the run), then \s+(?!\S), then \s+.
        int j = RunEnd(s, i, Space);
        for (int p = j - 1; p >= i; p--)
            if (s[p] is '\r' or '\n') return p + 1;
        return TrailingSpaceRule(s, i, j);
    }

    static int CrLfRun(ReadOnlySpan<char> s, int i)
    {
        while (i < s.Length && s[i] is '\r' or '\n') i++;
        return i;
    }

    static void MatchGpt2(ReadOnlySpan<char> s, List<(int Start, int End)> output)
    {
        int i = 0;
        while (i < s.Length)
        {
            int end = MatchGpt2At(s, i);
            output.Add((i, end));
            i = end;
        }
    }

    static int MatchGpt2At(ReadOnlySpan<char> s, int i)
    {
        int k = Contraction(s, i, ignoreCase: false);
        if (k > 0) return i + k;
        int start = i;
        if (s[i] == ' ' && i + 1 < s.Length)
        {
            byte next = ClassAt(s, i + 1, out _);
            if (next != Space) start = i + 1; // " ?" then a letter, number or other run
        }
        byte cls = ClassAt(s, start, out _);
        if (cls != Space) return RunEnd(s, start, cls);
        int j = RunEnd(s, i, Space);
        return TrailingSpaceRule(s, i, j);
    }
}
