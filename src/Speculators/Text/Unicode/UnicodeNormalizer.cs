namespace Speculators.Text.Unicode;

internal enum UnicodeForm { NFC, NFD, NFKC, NFKD }

/// <summary>
/// Unicode normalization (UAX #15) with offset alignment. Written by hand because the product
/// runs with InvariantGlobalization, where <see cref="string.Normalize()"/> leaves non-ASCII text
/// unchanged, and because tokenizers need to know which original characters every normalized
/// character came from. Tables: <see cref="UnicodeNormalizationData"/> (generated, Unicode 14).
/// </summary>
internal static class UnicodeNormalizer
{
    const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    // Quick-check flags per code point.
    const byte NfdNo = 1, NfkdNo = 2, NfcNo = 4, NfkcNo = 8, ComposesWithPrevious = 16;

    static readonly byte[] CccBmp = new byte[0x10000];
    static readonly Dictionary<int, byte> CccSupp = new();
    static readonly byte[] FlagsBmp = new byte[0x10000];
    static readonly Dictionary<int, byte> FlagsSupp = new();
    static readonly Dictionary<int, int> CanonIndex = new();
    static readonly Dictionary<int, int> CompatIndex = new();
    static readonly int[] Pool;
    static readonly Dictionary<long, int> Compose = new();

    static UnicodeNormalizer()
    {
        var ccc = UnicodeNormalizationData.CombiningClasses;
        for (int i = 0; i < ccc.Length; i += 2)
        {
            if (ccc[i] < 0x10000) CccBmp[ccc[i]] = (byte)ccc[i + 1];
            else CccSupp[ccc[i]] = (byte)ccc[i + 1];
        }
        var canon = UnicodeNormalizationData.CanonicalDecompositions;
        var compat = UnicodeNormalizationData.CompatibilityDecompositions;
        Pool = new int[canon.Length + compat.Length];
        int p = 0;
        p = LoadDecompositions(canon, CanonIndex, p);
        LoadDecompositions(compat, CompatIndex, p);

        var pairs = UnicodeNormalizationData.CompositionPairs;
        var composites = new HashSet<int>();
        for (int i = 0; i < pairs.Length; i += 3)
        {
            Compose[Key(pairs[i], pairs[i + 1])] = pairs[i + 2];
            composites.Add(pairs[i + 2]);
            AddFlag(pairs[i + 1], ComposesWithPrevious);
        }
        foreach (var cp in CanonIndex.Keys)
        {
            AddFlag(cp, NfdNo | NfkdNo);
            if (!composites.Contains(cp)) AddFlag(cp, NfcNo | NfkcNo);
        }
        foreach (var cp in CompatIndex.Keys) AddFlag(cp, NfkdNo | NfkcNo);
        for (int s = SBase; s < SBase + SCount; s++) AddFlag(s, NfdNo | NfkdNo);
        for (int v = VBase; v < VBase + VCount; v++) AddFlag(v, ComposesWithPrevious);
        for (int t = TBase + 1; t < TBase + TCount; t++) AddFlag(t, ComposesWithPrevious);
    }

    static int LoadDecompositions(ReadOnlySpan<int> data, Dictionary<int, int> index, int p)
    {
        for (int i = 0; i < data.Length;)
        {
            int cp = data[i], n = data[i + 1];
            index[cp] = p;
            Pool[p++] = n;
            for (int k = 0; k < n; k++) Pool[p++] = data[i + 2 + k];
            i += 2 + n;
        }
        return p;
    }

    static long Key(int a, int b) => ((long)a << 21) | (uint)b;

    static void AddFlag(int cp, int flag)
    {
        if (cp < 0x10000) FlagsBmp[cp] |= (byte)flag;
        else { FlagsSupp.TryGetValue(cp, out var f); FlagsSupp[cp] = (byte)(f | flag); }
    }

    public static int CombiningClass(int cp) =>
        cp < 0x10000 ? CccBmp[cp] : CccSupp.TryGetValue(cp, out var c) ? c : 0;

    static int Flags(int cp) =>
        cp < 0x10000 ? FlagsBmp[cp] : FlagsSupp.TryGetValue(cp, out var f) ? f : 0;

    static bool IsComposing(UnicodeForm f) => f is UnicodeForm.NFC or UnicodeForm.NFKC;
    static bool IsCompat(UnicodeForm f) => f is UnicodeForm.NFKC or UnicodeForm.NFKD;

    static int NoFlag(UnicodeForm f) => f switch
    {
        UnicodeForm.NFC => NfcNo,
        UnicodeForm.NFD => NfdNo,
        UnicodeForm.NFKC => NfkcNo,
        _ => NfkdNo,
    };

    /// <summary>
    /// True when <paramref name="text"/> is certainly already in <paramref name="form"/> (the
    /// UAX #15 quick check answered YES). False means "maybe not": run <see cref="Normalize"/>.
    /// </summary>
    public static bool IsNormalizedQuick(ReadOnlySpan<char> text, UnicodeForm form)
    {
        int threshold = IsComposing(form) && !IsCompat(form) ? 0x300 : 0xA0;
        int no = NoFlag(form) | (IsComposing(form) ? ComposesWithPrevious : 0);
        int lastCcc = 0;
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (cp < threshold) { lastCcc = 0; continue; }
            if (char.IsHighSurrogate((char)cp) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32((char)cp, text[i + 1]);
                i++;
            }
            int ccc = CombiningClass(cp);
            if (ccc != 0 && lastCcc > ccc) return false;
            if ((Flags(cp) & no) != 0) return false;
            lastCcc = ccc;
        }
        return true;
    }

    [ThreadStatic] static CodePointBuffer? t_buffer;

    /// <summary>Normalizes <paramref name="src"/> into <paramref name="dst"/> (cleared first), composing alignments.</summary>
    public static void Normalize(AlignedString src, UnicodeForm form, AlignedString dst)
    {
        var buf = t_buffer ??= new CodePointBuffer();
        buf.Clear();
        bool compat = IsCompat(form);
        var chars = src.Chars;
        var starts = src.Starts;
        var ends = src.Ends;
        // 1. Full decomposition.
        for (int i = 0; i < chars.Length; i++)
        {
            int cp = chars[i];
            int s = starts[i], e = ends[i];
            if (char.IsHighSurrogate((char)cp) && i + 1 < chars.Length && char.IsLowSurrogate(chars[i + 1]))
            {
                cp = char.ConvertToUtf32((char)cp, chars[i + 1]);
                s = Math.Min(s, starts[i + 1]);
                e = Math.Max(e, ends[i + 1]);
                i++;
            }
            Decompose(cp, compat, s, e, buf);
        }
        // 2. Canonical ordering: stable sort of each run of non-starters by combining class.
        var cps = buf.Cps;
        var ccs = buf.Cccs;
        for (int i = 1; i < buf.Count; i++)
        {
            int c = ccs[i];
            if (c == 0) continue;
            int j = i;
            while (j > 0 && ccs[j - 1] > c)
            {
                buf.Swap(j - 1, j);
                j--;
            }
        }
        // 3. Canonical composition.
        if (IsComposing(form)) ComposeInPlace(buf);
        dst.Clear();
        for (int i = 0; i < buf.Count; i++) dst.AppendCodePoint(cps[i], buf.Starts[i], buf.Ends[i]);
    }

    static void Decompose(int cp, bool compat, int s, int e, CodePointBuffer buf)
    {
        if (cp >= SBase && cp < SBase + SCount)
        {
            int si = cp - SBase;
            buf.Add(LBase + si / NCount, 0, s, e);
            buf.Add(VBase + si % NCount / TCount, 0, s, e);
            int t = si % TCount;
            if (t != 0) buf.Add(TBase + t, 0, s, e);
            return;
        }
        if (cp >= 0xA0)
        {
            if ((compat && CompatIndex.TryGetValue(cp, out int p)) || CanonIndex.TryGetValue(cp, out p))
            {
                int n = Pool[p];
                for (int k = 1; k <= n; k++) buf.Add(Pool[p + k], CombiningClass(Pool[p + k]), s, e);
                return;
            }
        }
        buf.Add(cp, cp < 0x300 ? 0 : CombiningClass(cp), s, e);
    }

    static int TryCompose(int a, int b)
    {
        if (a >= LBase && a < LBase + LCount && b >= VBase && b < VBase + VCount)
            return SBase + ((a - LBase) * VCount + (b - VBase)) * TCount;
        if (a >= SBase && a < SBase + SCount && (a - SBase) % TCount == 0 && b > TBase && b < TBase + TCount)
            return a + (b - TBase);
        return Compose.TryGetValue(Key(a, b), out int c) ? c : -1;
    }

    static void ComposeInPlace(CodePointBuffer buf)
    {
        int n = buf.Count;
        if (n == 0) return;
        var cps = buf.Cps;
        var ccs = buf.Cccs;
        var ss = buf.Starts;
        var es = buf.Ends;
        int starterPos = 0;
        int starter = cps[0];
        int lastClass = ccs[0] == 0 ? 0 : 256;
        int w = 1;
        for (int r = 1; r < n; r++)
        {
            int ch = cps[r], cls = ccs[r];
            int composite = lastClass == 256 ? -1 : TryCompose(starter, ch);
            if (composite >= 0 && (lastClass < cls || lastClass == 0))
            {
                cps[starterPos] = composite;
                ss[starterPos] = Math.Min(ss[starterPos], ss[r]);
                es[starterPos] = Math.Max(es[starterPos], es[r]);
                starter = composite;
                continue;
            }
            if (cls == 0) { starterPos = w; starter = ch; }
            lastClass = cls;
            cps[w] = ch; ccs[w] = cls; ss[w] = ss[r]; es[w] = es[r];
            w++;
        }
        buf.Count = w;
    }

    /// <summary>Normalizes a plain string (no alignment); for tests and added-token contents.</summary>
    public static string Normalize(string text, UnicodeForm form)
    {
        if (IsNormalizedQuick(text, form)) return text;
        var dst = new AlignedString(text.Length + 8);
        Normalize(AlignedString.Identity(text), form, dst);
        return dst.ToString();
    }

    sealed class CodePointBuffer
    {
        public int[] Cps = new int[64], Cccs = new int[64], Starts = new int[64], Ends = new int[64];
        public int Count;
        public void Clear() => Count = 0;

        public void Add(int cp, int ccc, int s, int e)
        {
            if (Count == Cps.Length)
            {
                int cap = Count * 2;
                Array.Resize(ref Cps, cap); Array.Resize(ref Cccs, cap);
                Array.Resize(ref Starts, cap); Array.Resize(ref Ends, cap);
            }
            Cps[Count] = cp; Cccs[Count] = ccc; Starts[Count] = s; Ends[Count] = e;
            Count++;
        }

        public void Swap(int a, int b)
        {
            (Cps[a], Cps[b]) = (Cps[b], Cps[a]);
            (Cccs[a], Cccs[b]) = (Cccs[b], Cccs[a]);
            (Starts[a], Starts[b]) = (Starts[b], Starts[a]);
            (Ends[a], Ends[b]) = (Ends[b], Ends[a]);
        }
    }
}
