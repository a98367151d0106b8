using System.Globalization;
using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>
/// Python str semantics on .NET strings. Python counts and indexes code points; .NET strings are
/// UTF-16, so every length, index and slice goes through here. Strings without surrogates (the
/// common case) take the direct path.
/// </summary>
internal static class PyStr
{
    static readonly string[] Latin1 = CreateLatin1();
    static string[] CreateLatin1()
    {
        var a = new string[256];
        for (int i = 0; i < 256; i++) a[i] = ((char)i).ToString();
        return a;
    }

    public static string CharString(char c) => c < 256 ? Latin1[c] : c.ToString();

    public static bool HasSurrogates(string s) => s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;

    /// <summary>len(s) in code points.</summary>
    public static int Length(string s)
    {
        if (!HasSurrogates(s)) return s.Length;
        int n = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
            n++;
        }
        return n;
    }

    /// <summary>Code point count of s[0..utf16Index).</summary>
    public static int CodePointIndex(string s, int utf16Index)
    {
        int n = 0;
        for (int i = 0; i < utf16Index; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) i++;
            n++;
        }
        return n;
    }

    public static int[] CodePoints(string s)
    {
        var r = new int[Length(s)];
        int k = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                r[k++] = char.ConvertToUtf32(c, s[i + 1]);
                i++;
            }
            else r[k++] = c;
        }
        return r;
    }

    public static string FromCodePoints(ReadOnlySpan<int> cps)
    {
        var sb = new StringBuilder(cps.Length);
        foreach (int cp in cps) AppendCodePoint(sb, cp);
        return sb.ToString();
    }

    public static void AppendCodePoint(StringBuilder sb, int cp)
    {
        if (cp < 0x10000) sb.Append((char)cp);
        else sb.Append(char.ConvertFromUtf32(cp));
    }

    public static string CodePointString(int cp) => cp < 0x10000 ? CharString((char)cp) : char.ConvertFromUtf32(cp);

    /// <summary>s[i] with Python's negative indexing; null when out of range.</summary>
    public static string? Index(string s, long i)
    {
        if (!HasSurrogates(s))
        {
            if (i < 0) i += s.Length;
            return i >= 0 && i < s.Length ? CharString(s[(int)i]) : null;
        }
        var cps = CodePoints(s);
        if (i < 0) i += cps.Length;
        return i >= 0 && i < cps.Length ? CodePointString(cps[(int)i]) : null;
    }

    public static string Slice(string s, PySlice sl)
    {
        if (!HasSurrogates(s))
        {
            var (start, stop, step, n) = Slicing.Indices(s.Length, sl);
            if (step == 1) return n <= 0 ? "" : s.Substring((int)start, (int)n);
            var sb = new StringBuilder((int)n);
            for (long i = 0, j = start; i < n; i++, j += step) sb.Append(s[(int)j]);
            return sb.ToString();
        }
        var cps = CodePoints(s);
        var (st, sp, stp, cnt) = Slicing.Indices(cps.Length, sl);
        var r = new int[cnt];
        for (long i = 0, j = st; i < cnt; i++, j += stp) r[i] = cps[j];
        return FromCodePoints(r);
    }

    /// <summary>Python's code point order (UTF-16 ordinal order differs only around surrogates).</summary>
    public static int CompareCodePoints(string a, string b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            char x = a[i], y = b[i];
            if (x == y) continue;
            if (x >= 0xD800 && y >= 0xD800)
            {
                // Surrogates (D800-DFFF) encode code points above FFFF: they sort after E000-FFFF.
                int fx = x >= 0xE000 ? x - 0x800 : x + 0x2000;
                int fy = y >= 0xE000 ? y - 0x800 : y + 0x2000;
                return fx.CompareTo(fy);
            }
            return x.CompareTo(y);
        }
        return a.Length.CompareTo(b.Length);
    }

    // ---------------------------------------------------------------- character classes

    /// <summary>str.isspace for one code point.</summary>
    public static bool IsSpace(int c) => c switch
    {
        >= 0x09 and <= 0x0d => true,
        >= 0x1c and <= 0x20 => true,
        0x85 or 0xa0 or 0x1680 or 0x2028 or 0x2029 or 0x202f or 0x205f or 0x3000 => true,
        >= 0x2000 and <= 0x200a => true,
        _ => false,
    };

    public static bool IsPrintable(int cp)
    {
        if (cp < 0x7f) return cp >= 0x20;
        var cat = CharUnicodeInfo.GetUnicodeCategory(cp);
        return cat switch
        {
            UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse
                or UnicodeCategory.OtherNotAssigned or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator
                or UnicodeCategory.SpaceSeparator => false,
            _ => true,
        };
    }

    static UnicodeCategory Cat(int cp) => CharUnicodeInfo.GetUnicodeCategory(cp);

    public static bool IsAlpha(int cp) => Cat(cp) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
        or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter;
    public static bool IsDecimal(int cp) => CharUnicodeInfo.GetDecimalDigitValue(CodePointString(cp), 0) >= 0;
    public static bool IsDigit(int cp) => CharUnicodeInfo.GetDigitValue(CodePointString(cp), 0) >= 0;
    public static bool IsNumeric(int cp) => CharUnicodeInfo.GetNumericValue(CodePointString(cp), 0) != -1;
    public static bool IsAlnum(int cp) => IsAlpha(cp) || IsDecimal(cp) || IsDigit(cp) || IsNumeric(cp);
    public static bool IsLower(int cp) => Cat(cp) == UnicodeCategory.LowercaseLetter || CaseTables.InRanges(CaseTables.OtherLowercase, cp);
    public static bool IsUpper(int cp) => Cat(cp) == UnicodeCategory.UppercaseLetter || CaseTables.InRanges(CaseTables.OtherUppercase, cp);
    public static bool IsTitle(int cp) => Cat(cp) == UnicodeCategory.TitlecaseLetter;
    public static bool IsCased(int cp) => IsLower(cp) || IsUpper(cp) || IsTitle(cp);
    /// <summary>regex \w on str patterns: alphanumerics and underscore.</summary>
    public static bool IsWord(int cp) => cp == '_' || IsAlnum(cp);

    // ---------------------------------------------------------------- case mapping

    static void AppendUpper(StringBuilder sb, int cp)
    {
        if (CaseTables.Upper.TryGetValue(cp, out var full)) { sb.Append(full); return; }
        AppendCodePoint(sb, cp < 0x10000 ? char.ToUpperInvariant((char)cp) : UpperAstral(cp));
    }

    static void AppendLower(StringBuilder sb, int cp)
    {
        if (CaseTables.Lower.TryGetValue(cp, out var full)) { sb.Append(full); return; }
        AppendCodePoint(sb, cp < 0x10000 ? char.ToLowerInvariant((char)cp) : LowerAstral(cp));
    }

    static void AppendTitle(StringBuilder sb, int cp)
    {
        if (CaseTables.Title.TryGetValue(cp, out var t)) { sb.Append(t); return; }
        AppendUpper(sb, cp);
    }

    static int UpperAstral(int cp) { var s = char.ConvertFromUtf32(cp).ToUpperInvariant(); return char.ConvertToUtf32(s, 0); }
    static int LowerAstral(int cp) { var s = char.ConvertFromUtf32(cp).ToLowerInvariant(); return char.ConvertToUtf32(s, 0); }

    static bool IsAscii(string s) => !s.AsSpan().ContainsAnyExceptInRange('\0', '\x7f');

    public static string Upper(string s)
    {
        if (IsAscii(s)) return s.ToUpperInvariant();
        var sb = new StringBuilder(s.Length);
        foreach (int cp in CodePoints(s)) AppendUpper(sb, cp);
        return sb.ToString();
    }

    public static string Lower(string s)
    {
        if (IsAscii(s)) return s.ToLowerInvariant();
        var sb = new StringBuilder(s.Length);
        var cps = CodePoints(s);
        for (int i = 0; i < cps.Length; i++) AppendLowerAt(sb, cps, i);
        return sb.ToString();
    }

    /// <summary>Lowercases cps[i], applying Final_Sigma to capital sigma as CPython's lower_ucs4 does.</summary>
    static void AppendLowerAt(StringBuilder sb, int[] cps, int i)
    {
        if (cps[i] == 0x3A3) sb.Append(IsFinalSigma(cps, i) ? '\u03C2' : '\u03C3');
        else AppendLower(sb, cps[i]);
    }

    /// <summary>Unicode's Final_Sigma condition, which Python's str.lower applies to capital sigma.</summary>
    static bool IsFinalSigma(int[] cps, int i)
    {
        int j = i - 1;
        while (j >= 0 && IsCaseIgnorable(cps[j])) j--;
        if (j < 0 || !IsCased(cps[j])) return false;
        j = i + 1;
        while (j < cps.Length && IsCaseIgnorable(cps[j])) j++;
        return j == cps.Length || !IsCased(cps[j]);
    }

    static bool IsCaseIgnorable(int cp) =>
        cp is '\'' or '.' or ':' or 0xB7 or 0x387 or 0x5F4 or 0x2018 or 0x2019 or 0x2024 or 0x2027 or 0xFE13 or 0xFE52 or 0xFE55 or 0xFF07 or 0xFF0E or 0xFF1A
        || Cat(cp) is UnicodeCategory.NonSpacingMark or UnicodeCategory.EnclosingMark or UnicodeCategory.Format
            or UnicodeCategory.ModifierLetter or UnicodeCategory.ModifierSymbol;

    public static string SwapCase(string s)
    {
        var sb = new StringBuilder(s.Length);
        var cps = CodePoints(s);
        for (int i = 0; i < cps.Length; i++)
        {
            int cp = cps[i];
            if (IsUpper(cp)) AppendLowerAt(sb, cps, i);
            else if (IsLower(cp)) AppendUpper(sb, cp);
            else AppendCodePoint(sb, cp);
        }
        return sb.ToString();
    }

    /// <summary>str.capitalize (Python 3.8+): first code point titlecased, the rest lowercased.</summary>
    public static string Capitalize(string s)
    {
        if (s.Length == 0) return s;
        var cps = CodePoints(s);
        var sb = new StringBuilder(s.Length);
        AppendTitle(sb, cps[0]);
        for (int i = 1; i < cps.Length; i++) AppendLowerAt(sb, cps, i);
        return sb.ToString();
    }

    /// <summary>str.title.</summary>
    public static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        var cps = CodePoints(s);
        for (int i = 0; i < cps.Length; i++)
        {
            int cp = cps[i];
            if (prevCased) AppendLowerAt(sb, cps, i);
            else AppendTitle(sb, cp);
            prevCased = IsCased(cp);
        }
        return sb.ToString();
    }

    /// <summary>Uppercases the first code point only (jinja's title filter does item[0].upper()).</summary>
    public static string UpperFirstLowerRest(string s)
    {
        if (s.Length == 0) return s;
        var cps = CodePoints(s);
        var sb = new StringBuilder(s.Length);
        AppendUpper(sb, cps[0]);
        sb.Append(Lower(FromCodePoints(cps.AsSpan(1))));
        return sb.ToString();
    }

    // ---------------------------------------------------------------- strip / split

    static bool InChars(int cp, string? chars)
    {
        if (chars == null) return IsSpace(cp);
        if (cp < 0x10000) return chars.Contains((char)cp);
        return chars.Contains(char.ConvertFromUtf32(cp), StringComparison.Ordinal);
    }

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        if (!HasSurrogates(s) && (chars == null || !HasSurrogates(chars)))
        {
            int a = 0, b = s.Length;
            if (left) while (a < b && InChars(s[a], chars)) a++;
            if (right) while (b > a && InChars(s[b - 1], chars)) b--;
            return a == 0 && b == s.Length ? s : s.Substring(a, b - a);
        }
        var cps = CodePoints(s);
        int i = 0, j = cps.Length;
        if (left) while (i < j && InChars(cps[i], chars)) i++;
        if (right) while (j > i && InChars(cps[j - 1], chars)) j--;
        return FromCodePoints(cps.AsSpan(i, j - i));
    }

    /// <summary>str.split(sep, maxsplit).</summary>
    public static List<object?> Split(string s, string? sep, long maxsplit)
    {
        var r = new List<object?>();
        if (maxsplit < 0) maxsplit = long.MaxValue;
        if (sep == null)
        {
            int i = 0, n = s.Length;
            while (true)
            {
                while (i < n && IsSpaceAt(s, i)) i++;
                if (i >= n) break;
                if (maxsplit-- <= 0)
                {
                    int end = n;
                    while (end > i && IsSpaceAt(s, end - 1)) end--;
                    r.Add(s.Substring(i, end - i));
                    break;
                }
                int j = i;
                while (j < n && !IsSpaceAt(s, j)) j++;
                r.Add(s.Substring(i, j - i));
                i = j;
            }
            return r;
        }
        if (sep.Length == 0) throw Py.ValueError("empty separator");
        int pos = 0;
        while (maxsplit-- > 0)
        {
            int k = s.IndexOf(sep, pos, StringComparison.Ordinal);
            if (k < 0) break;
            r.Add(s.Substring(pos, k - pos));
            pos = k + sep.Length;
        }
        r.Add(s.Substring(pos));
        return r;
    }

    /// <summary>str.rsplit(sep, maxsplit).</summary>
    public static List<object?> RSplit(string s, string? sep, long maxsplit)
    {
        var r = new List<object?>();
        if (maxsplit < 0) maxsplit = long.MaxValue;
        if (sep == null)
        {
            int j = s.Length;
            while (true)
            {
                while (j > 0 && IsSpaceAt(s, j - 1)) j--;
                if (j <= 0) break;
                if (maxsplit-- <= 0)
                {
                    int start = 0;
                    while (start < j && IsSpaceAt(s, start)) start++;
                    r.Add(s.Substring(start, j - start));
                    break;
                }
                int i = j;
                while (i > 0 && !IsSpaceAt(s, i - 1)) i--;
                r.Add(s.Substring(i, j - i));
                j = i;
            }
            r.Reverse();
            return r;
        }
        if (sep.Length == 0) throw Py.ValueError("empty separator");
        int end = s.Length;
        while (maxsplit-- > 0)
        {
            if (end - sep.Length < 0) break;
            int k = s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (k < 0) break;
            r.Add(s.Substring(k + sep.Length, end - k - sep.Length));
            end = k;
        }
        r.Add(s.Substring(0, end));
        r.Reverse();
        return r;
    }

    static bool IsSpaceAt(string s, int i) => IsSpace(s[i]);

    static bool IsLineBreak(char c) => c is '\n' or '\r' or '\v' or '\f' or '\x1c' or '\x1d' or '\x1e' or '\x85' or '\u2028' or '\u2029';

    /// <summary>str.splitlines(keepends).</summary>
    public static List<string> SplitLines(string s, bool keepends)
    {
        var r = new List<string>();
        int i = 0, n = s.Length;
        while (i < n)
        {
            int j = i;
            while (j < n && !IsLineBreak(s[j])) j++;
            int eol = j;
            if (j < n)
            {
                if (s[j] == '\r' && j + 1 < n && s[j + 1] == '\n') j += 2;
                else j++;
                if (keepends) eol = j;
            }
            r.Add(s.Substring(i, eol - i));
            i = j;
        }
        return r;
    }

    /// <summary>str.replace(old, new, count).</summary>
    public static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) count = long.MaxValue;
        if (count == 0) return s;
        if (old.Length == 0)
        {
            var cps = CodePoints(s);
            var sb0 = new StringBuilder();
            long done = 0;
            for (int i = 0; i < cps.Length; i++)
            {
                if (done < count) { sb0.Append(@new); done++; }
                AppendCodePoint(sb0, cps[i]);
            }
            if (done < count) sb0.Append(@new);
            return sb0.ToString();
        }
        if (count == long.MaxValue) return s.Replace(old, @new, StringComparison.Ordinal);
        var sb = new StringBuilder(s.Length);
        int pos = 0;
        while (count-- > 0)
        {
            int k = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (k < 0) break;
            sb.Append(s, pos, k - pos).Append(@new);
            pos = k + old.Length;
        }
        sb.Append(s, pos, s.Length - pos);
        return sb.ToString();
    }

    /// <summary>str.center / ljust / rjust with Python's padding split.</summary>
    public static string Pad(string s, long width, string fill, char mode)
    {
        long len = Length(s);
        if (width <= len) return s;
        long marg = width - len;
        long left = mode switch
        {
            'c' => marg / 2 + (marg & width & 1),
            'l' => 0,
            _ => marg,
        };
        long right = marg - left;
        var sb = new StringBuilder((int)(s.Length + marg * fill.Length));
        for (long i = 0; i < left; i++) sb.Append(fill);
        sb.Append(s);
        for (long i = 0; i < right; i++) sb.Append(fill);
        return sb.ToString();
    }
}

/// <summary>Python slice index arithmetic (PySlice_AdjustIndices).</summary>
internal static class Slicing
{
    static long? AsIndex(object? v, string what)
    {
        if (v is null) return null;
        if (Py.IsInt(v)) return Py.AsLong(v);
        throw Py.TypeError("slice indices must be integers or None or have an __index__ method");
    }

    public static (long start, long stop, long step, long count) Indices(long length, PySlice sl)
    {
        long step = AsIndex(sl.Step, "step") ?? 1;
        if (step == 0) throw Py.ValueError("slice step cannot be zero");
        long? s0 = AsIndex(sl.Start, "start"), e0 = AsIndex(sl.Stop, "stop");
        long start, stop;
        if (step > 0)
        {
            start = s0 ?? 0; stop = e0 ?? length;
            if (start < 0) { start += length; if (start < 0) start = 0; } else if (start > length) start = length;
            if (stop < 0) { stop += length; if (stop < 0) stop = 0; } else if (stop > length) stop = length;
            long n = stop > start ? (stop - start - 1) / step + 1 : 0;
            return (start, stop, step, n);
        }
        else
        {
            start = s0 ?? length - 1; stop = e0 ?? -length - 1;
            if (start < 0) { start += length; if (start < 0) start = -1; } else if (start >= length) start = length - 1;
            if (stop < 0) { stop += length; if (stop < 0) stop = -1; } else if (stop >= length) stop = length - 1;
            long n = stop < start ? (start - stop - 1) / -step + 1 : 0;
            return (start, stop, step, n);
        }
    }

    public static List<object?> SliceList(IReadOnlyList<object?> items, PySlice sl)
    {
        var (start, _, step, n) = Indices(items.Count, sl);
        var r = new List<object?>((int)n);
        for (long i = 0, j = start; i < n; i++, j += step) r.Add(items[(int)j]);
        return r;
    }
}
