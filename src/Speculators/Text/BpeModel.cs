using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;

namespace Speculators.Text;

/// <summary>Token ids with their [start, end) ranges, appended by the model and the pipeline.</summary>
internal sealed class TokenBuffer
{
    public int[] Ids = new int[64];
    public int[] Starts = new int[64];
    public int[] Ends = new int[64];
    public int Count;

    public void Clear() => Count = 0;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Add(int id, int start, int end)
    {
        if (Count == Ids.Length) Grow();
        Ids[Count] = id;
        Starts[Count] = start;
        Ends[Count] = end;
        Count++;
    }

    void Grow()
    {
        int cap = Ids.Length * 2;
        Array.Resize(ref Ids, cap);
        Array.Resize(ref Starts, cap);
        Array.Resize(ref Ends, cap);
    }
}

/// <summary>
/// The BPE model of HF <c>tokenizers</c> (models/bpe): vocabulary, ranked merges, optional
/// <c>unk_token</c> (with <c>fuse_unk</c>), <c>byte_fallback</c> to <c>&lt;0xXX&gt;</c> tokens,
/// <c>ignore_merges</c> (a pre-token found whole in the vocabulary is one token, as tiktoken does;
/// Llama-3 sets it), <c>continuing_subword_prefix</c> and <c>end_of_word_suffix</c>. Merging
/// applies the lowest-rank adjacent pair first, leftmost among equals, exactly like HF's
/// heap-based <c>Word::merge_all</c>. Results per pre-token are cached (thread-safe).
/// <para>When <c>byteLevel</c> is set the model sees each UTF-8 byte of the pre-token as the
/// GPT-2 byte character (what HF's ByteLevel pre-tokenizer produces); token ranges are reported in
/// UTF-16 units of the un-mapped pre-token, widened to whole characters.</para>
/// </summary>
internal sealed class BpeModel
{
    /// <summary>Words longer than this (UTF-16 units) are not cached.</summary>
    const int MaxCachedLength = 256;
    /// <summary>Above this many symbols merging uses a heap instead of the quadratic scan.</summary>
    const int HeapThreshold = 96;

    readonly Dictionary<string, int> _vocab;
    readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    readonly string?[] _idToToken;
    readonly PairMap _merges;
    readonly int[] _byteCharIds = new int[256];
    readonly int[] _byteFallbackIds = new int[256];
    readonly bool _hasAllByteFallback;
    readonly int _unkId = -1;
    readonly string _prefix;
    readonly string _suffix;
    readonly bool _fuseUnk;
    readonly bool _byteFallback;
    readonly bool _ignoreMerges;
    readonly int _cacheCapacity;
    int _cacheCount;
    readonly ConcurrentDictionary<string, int[]>[] _caches =
        [new(StringComparer.Ordinal), new(StringComparer.Ordinal)];

    public string? UnkToken { get; }

    /// <summary>Builds the model; merges are then added in rank order with <see cref="AddMerge"/>.</summary>
    public BpeModel(Dictionary<string, int> vocab, int mergeCount, string? unkToken,
        string? continuingSubwordPrefix, string? endOfWordSuffix, bool fuseUnk, bool byteFallback, bool ignoreMerges,
        string source, int cacheCapacity = 1 << 18)
    {
        _source = source;
        _vocab = vocab;
        _lookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _prefix = continuingSubwordPrefix ?? "";
        _suffix = endOfWordSuffix ?? "";
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _cacheCapacity = cacheCapacity;
        UnkToken = unkToken;

        int maxId = -1;
        foreach (var kv in vocab)
        {
            if (kv.Value < 0) throw new SpeculatorsException($"{source}: model.vocab has a negative id {kv.Value} for token '{kv.Key}'.");
            maxId = Math.Max(maxId, kv.Value);
        }
        _idToToken = new string?[maxId + 1];
        foreach (var kv in vocab) _idToToken[kv.Value] = kv.Key;

        if (unkToken != null)
        {
            // HF only fails when an unknown character is actually met; resolve lazily the same way.
            _unkId = vocab.TryGetValue(unkToken, out var u) ? u : -2;
        }

        for (int b = 0; b < 256; b++)
        {
            _byteCharIds[b] = vocab.TryGetValue(ByteLevelAlphabet.ByteToChar((byte)b).ToString(), out var id) ? id : -1;
            _byteFallbackIds[b] = vocab.TryGetValue($"<0x{b:X2}>", out var fb) ? fb : -1;
        }
        _hasAllByteFallback = _byteFallbackIds.All(i => i >= 0);

        _merges = new PairMap(mergeCount);
    }

    readonly string _source;
    char[] _mergeBuffer = new char[256];
    int _mergeRank;

    /// <summary>Adds the next merge rule (rank = call order). Later duplicates of a pair win, as in HF's merge map.</summary>
    public void AddMerge(ReadOnlySpan<char> a, ReadOnlySpan<char> b)
    {
        int rank = _mergeRank++;
        if (!_lookup.TryGetValue(a, out int ia))
            throw new SpeculatorsException($"{_source}: model.merges[{rank}] ('{a}' '{b}'): '{a}' is not in model.vocab.");
        if (!_lookup.TryGetValue(b, out int ib))
            throw new SpeculatorsException($"{_source}: model.merges[{rank}] ('{a}' '{b}'): '{b}' is not in model.vocab.");
        var tail = b.StartsWith(_prefix, StringComparison.Ordinal) ? b[_prefix.Length..] : b;
        if (_mergeBuffer.Length < a.Length + tail.Length) _mergeBuffer = new char[(a.Length + tail.Length) * 2];
        a.CopyTo(_mergeBuffer);
        tail.CopyTo(_mergeBuffer.AsSpan(a.Length));
        var merged = _mergeBuffer.AsSpan(0, a.Length + tail.Length);
        if (!_lookup.TryGetValue(merged, out int im))
            throw new SpeculatorsException($"{_source}: model.merges[{rank}] ('{a}' '{b}'): the merged token '{merged}' is not in model.vocab.");
        _merges.Set(ia, ib, rank, im);
    }

    public int VocabCount => _vocab.Count;

    /// <summary>Empties the per-word caches (benchmarks measure cold encoding with it).</summary>
    internal void ClearCache()
    {
        foreach (var c in _caches) c.Clear();
        Volatile.Write(ref _cacheCount, 0);
    }

    /// <summary>
    /// True when cutting a word just before <paramref name="c"/> (where the previous character is
    /// not <paramref name="c"/>) can never change the result: <paramref name="c"/> is itself a
    /// token (so unknown-character runs cannot fuse across it), no token has another character
    /// followed by <paramref name="c"/> (so no merge can span the cut) and ignore_merges is off
    /// (whole-word lookups would see different words). SentencePiece vocabularies satisfy this for
    /// '▁', which lets us cache per-word results although their tokenizer.json has no pre-tokenizer.
    /// </summary>
    internal bool CanSplitBefore(char c)
    {
        if (_ignoreMerges || _prefix.Length > 0 || _suffix.Length > 0 || !_vocab.ContainsKey(c.ToString())) return false;
        foreach (var token in _vocab.Keys)
            for (int i = 1; i < token.Length; i++)
                if (token[i] == c && token[i - 1] != c) return false;
        return true;
    }

    public bool TryGetId(ReadOnlySpan<char> token, out int id) => _lookup.TryGetValue(token, out id);

    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>
    /// Tokenizes one pre-token. Ranges are UTF-16 units of <paramref name="piece"/> plus
    /// <paramref name="unitOffset"/>.
    /// </summary>
    public void Tokenize(ReadOnlySpan<char> piece, bool byteLevel, TokenBuffer output, int unitOffset)
    {
        if (piece.IsEmpty) return;
        var cache = _caches[byteLevel ? 1 : 0];
        var lookup = cache.GetAlternateLookup<ReadOnlySpan<char>>();
        if (piece.Length <= MaxCachedLength && lookup.TryGetValue(piece, out var hit))
        {
            Emit(hit, output, unitOffset);
            return;
        }
        var scratch = t_scratch ??= new Scratch();
        int[] result = Compute(piece, byteLevel, scratch);
        if (piece.Length <= MaxCachedLength && Volatile.Read(ref _cacheCount) < _cacheCapacity)
        {
            if (cache.TryAdd(piece.ToString(), result)) Interlocked.Increment(ref _cacheCount);
        }
        Emit(result, output, unitOffset);
    }

    static void Emit(int[] r, TokenBuffer output, int unitOffset)
    {
        int n = r[0];
        for (int i = 0; i < n; i++) output.Add(r[1 + i], unitOffset + r[1 + n + i], unitOffset + r[1 + 2 * n + i]);
    }

    [ThreadStatic] static Scratch? t_scratch;

    sealed class Scratch
    {
        public int[] Ids = new int[128], S = new int[128], E = new int[128], Rank = new int[128], NewId = new int[128];
        public int[] Prev = new int[128], Next = new int[128];
        public long[] Heap = new long[128];
        public char[] Chars = new char[256];
        public int Count;
        public int UnkId = -1, UnkS, UnkE;

        public void Reset() { Count = 0; UnkId = -1; }

        public void Add(int id, int s, int e)
        {
            if (Count == Ids.Length)
            {
                int cap = Count * 2;
                Array.Resize(ref Ids, cap); Array.Resize(ref S, cap); Array.Resize(ref E, cap);
                Array.Resize(ref Rank, cap); Array.Resize(ref NewId, cap);
                Array.Resize(ref Prev, cap); Array.Resize(ref Next, cap);
            }
            Ids[Count] = id; S[Count] = s; E[Count] = e;
            Count++;
        }

        public void FlushUnk()
        {
            if (UnkId >= 0) { int id = UnkId; UnkId = -1; Add(id, UnkS, UnkE); }
        }
    }

    int[] Compute(ReadOnlySpan<char> piece, bool byteLevel, Scratch sc)
    {
        sc.Reset();
        if (byteLevel) InitByteLevel(piece, sc);
        else InitChars(piece, sc);
        if (sc.Count > 1)
        {
            if (sc.Count <= HeapThreshold) MergeQuadratic(sc);
            else MergeHeap(sc);
        }
        int n = sc.Count;
        var r = new int[1 + 3 * n];
        r[0] = n;
        Array.Copy(sc.Ids, 0, r, 1, n);
        Array.Copy(sc.S, 0, r, 1 + n, n);
        Array.Copy(sc.E, 0, r, 1 + 2 * n, n);
        return r;
    }

    void InitChars(ReadOnlySpan<char> piece, Scratch sc)
    {
        if (_ignoreMerges && _lookup.TryGetValue(piece, out int whole))
        {
            sc.Add(whole, 0, piece.Length);
            return;
        }
        for (int i = 0; i < piece.Length;)
        {
            int len = char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]) ? 2 : 1;
            bool first = i == 0, last = i + len == piece.Length;
            ReadOnlySpan<char> sym = piece.Slice(i, len);
            if ((!first && _prefix.Length > 0) || (last && _suffix.Length > 0))
            {
                string built = (!first ? _prefix : "") + sym.ToString() + (last ? _suffix : "");
                sym = built;
            }
            AddSymbol(sym, i, i + len, sc);
            i += len;
        }
        sc.FlushUnk();
    }

    void InitByteLevel(ReadOnlySpan<char> piece, Scratch sc)
    {
        // Map the UTF-8 bytes of the piece to byte characters, remembering each byte's source unit range.
        Span<byte> utf8 = stackalloc byte[4];
        int nBytes = 0;
        if (sc.Chars.Length < piece.Length * 3 + 8) sc.Chars = new char[piece.Length * 3 + 8];
        var chars = sc.Chars;
        // Byte characters into sc.Chars; each byte's source unit range into sc.Prev/sc.Next (free until merging).
        int[] bs = EnsureLength(ref sc.Prev, piece.Length * 3 + 8);
        int[] be = EnsureLength(ref sc.Next, piece.Length * 3 + 8);
        for (int i = 0; i < piece.Length;)
        {
            int len = 1;
            int cp = piece[i];
            if (char.IsHighSurrogate(piece[i]) && i + 1 < piece.Length && char.IsLowSurrogate(piece[i + 1]))
            {
                cp = char.ConvertToUtf32(piece[i], piece[i + 1]);
                len = 2;
            }
            else if (char.IsSurrogate(piece[i])) cp = 0xFFFD;
            int nb = new Rune(cp).EncodeToUtf8(utf8);
            for (int k = 0; k < nb; k++)
            {
                chars[nBytes] = ByteLevelAlphabet.ByteToChar(utf8[k]);
                bs[nBytes] = i;
                be[nBytes] = i + len;
                nBytes++;
            }
            i += len;
        }
        ReadOnlySpan<char> mapped = chars.AsSpan(0, nBytes);
        if (_ignoreMerges && _lookup.TryGetValue(mapped, out int whole))
        {
            sc.Add(whole, 0, piece.Length);
            return;
        }
        // bs/be stay valid below: Add() may replace sc.Prev/Next by resized copies but never writes them.
        int[] rs = bs, re = be;
        bool plain = _prefix.Length == 0 && _suffix.Length == 0;
        for (int j = 0; j < nBytes; j++)
        {
            if (plain)
            {
                int id = _byteCharIds[ByteLevelAlphabet.CharToByte(mapped[j])];
                if (id >= 0)
                {
                    sc.FlushUnk();
                    sc.Add(id, rs[j], re[j]);
                    continue;
                }
                AddSymbol(mapped.Slice(j, 1), rs[j], re[j], sc);
            }
            else
            {
                bool first = j == 0, last = j == nBytes - 1;
                string sym = (!first ? _prefix : "") + mapped[j] + (last ? _suffix : "");
                AddSymbol(sym, rs[j], re[j], sc);
            }
        }
        sc.FlushUnk();
    }

    static int[] EnsureLength(ref int[] a, int n)
    {
        if (a.Length < n) a = new int[n];
        return a;
    }

    /// <summary>One initial symbol: vocabulary hit, else byte fallback, else unk (fused), else dropped (as HF does).</summary>
    void AddSymbol(ReadOnlySpan<char> sym, int s, int e, Scratch sc)
    {
        if (_lookup.TryGetValue(sym, out int id))
        {
            sc.FlushUnk();
            sc.Add(id, s, e);
            return;
        }
        if (_byteFallback)
        {
            Span<byte> bytes = stackalloc byte[sym.Length * 3];
            int nb = System.Text.Encoding.UTF8.GetBytes(sym, bytes);
            bool all = _hasAllByteFallback;
            if (!all)
            {
                all = true;
                for (int k = 0; k < nb; k++) if (_byteFallbackIds[bytes[k]] < 0) { all = false; break; }
            }
            if (all)
            {
                // HF adds the byte tokens without flushing a pending unk first.
                for (int k = 0; k < nb; k++) sc.Add(_byteFallbackIds[bytes[k]], s, e);
                return;
            }
        }
        if (UnkToken != null)
        {
            if (_unkId < 0)
                throw new SpeculatorsException($"tokenizer.json: model.unk_token '{UnkToken}' is not in model.vocab (needed for an unknown character).");
            if (sc.UnkId >= 0 && _fuseUnk)
            {
                sc.UnkE = e;
                return;
            }
            sc.FlushUnk();
            sc.UnkId = _unkId; sc.UnkS = s; sc.UnkE = e;
        }
    }

    /// <summary>Lowest rank first, leftmost among equal ranks; O(n²) but fast for short words.</summary>
    void MergeQuadratic(Scratch sc)
    {
        int n = sc.Count;
        var ids = sc.Ids; var s = sc.S; var e = sc.E; var rank = sc.Rank; var nid = sc.NewId;
        for (int i = 0; i < n - 1; i++)
        {
            if (_merges.TryGet(ids[i], ids[i + 1], out int r, out int m)) { rank[i] = r; nid[i] = m; }
            else rank[i] = int.MaxValue;
        }
        while (n > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i < n - 1; i++)
                if (rank[i] < bestRank) { bestRank = rank[i]; best = i; }
            if (best < 0) break;
            ids[best] = nid[best];
            e[best] = e[best + 1];
            int tail = n - best - 2;
            if (tail > 0)
            {
                Array.Copy(ids, best + 2, ids, best + 1, tail);
                Array.Copy(s, best + 2, s, best + 1, tail);
                Array.Copy(e, best + 2, e, best + 1, tail);
                Array.Copy(rank, best + 2, rank, best + 1, tail);
                Array.Copy(nid, best + 2, nid, best + 1, tail);
            }
            n--;
            if (best > 0)
            {
                if (_merges.TryGet(ids[best - 1], ids[best], out int r, out int m)) { rank[best - 1] = r; nid[best - 1] = m; }
                else rank[best - 1] = int.MaxValue;
            }
            if (best < n - 1)
            {
                if (_merges.TryGet(ids[best], ids[best + 1], out int r, out int m)) { rank[best] = r; nid[best] = m; }
                else rank[best] = int.MaxValue;
            }
        }
        sc.Count = n;
    }

    /// <summary>HF's algorithm: a min-heap of (rank, position) with lazy invalidation; O(n log n).</summary>
    void MergeHeap(Scratch sc)
    {
        int n = sc.Count;
        var ids = sc.Ids; var e = sc.E;
        var prev = sc.Prev; var next = sc.Next;
        if (prev.Length < n) { prev = sc.Prev = new int[ids.Length]; next = sc.Next = new int[ids.Length]; }
        var alive = new bool[n];
        for (int i = 0; i < n; i++) { prev[i] = i - 1; next[i] = i + 1 < n ? i + 1 : -1; alive[i] = true; }
        var heap = new PriorityQueue<int, long>(n);
        for (int i = 0; i < n - 1; i++)
            if (_merges.TryGet(ids[i], ids[i + 1], out int r, out _)) heap.Enqueue(i, ((long)r << 32) | (uint)i);
        while (heap.TryDequeue(out int pos, out long key))
        {
            int r = (int)(key >> 32);
            if (!alive[pos] || next[pos] < 0) continue;
            int right = next[pos];
            if (!_merges.TryGet(ids[pos], ids[right], out int cr, out int m) || cr != r) continue;
            ids[pos] = m;
            e[pos] = e[right];
            alive[right] = false;
            next[pos] = next[right];
            if (next[right] >= 0) prev[next[right]] = pos;
            if (prev[pos] >= 0 && _merges.TryGet(ids[prev[pos]], ids[pos], out int r1, out _))
                heap.Enqueue(prev[pos], ((long)r1 << 32) | (uint)prev[pos]);
            if (next[pos] >= 0 && _merges.TryGet(ids[pos], ids[next[pos]], out int r2, out _))
                heap.Enqueue(pos, ((long)r2 << 32) | (uint)pos);
        }
        int w = 0;
        for (int i = 0; i < n; i++)
        {
            if (!alive[i]) continue;
            ids[w] = ids[i]; sc.S[w] = sc.S[i]; e[w] = e[i];
            w++;
        }
        sc.Count = w;
    }

    /// <summary>Test hook: merges a symbol-id sequence with either algorithm (dense vs heap equivalence).</summary>
    internal int[] MergeForTest(ReadOnlySpan<int> symbols, bool useHeap)
    {
        var sc = new Scratch();
        for (int i = 0; i < symbols.Length; i++) sc.Add(symbols[i], i, i + 1);
        if (sc.Count > 1) { if (useHeap) MergeHeap(sc); else MergeQuadratic(sc); }
        return sc.Ids[..sc.Count];
    }
}
