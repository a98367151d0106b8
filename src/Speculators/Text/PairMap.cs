namespace Speculators.Text;

/// <summary>
/// Open-addressing hash map from a token-id pair to (merge rank, merged id): the BPE merge table.
/// Read-only after construction, so lookups are lock-free and thread-safe.
/// </summary>
internal sealed class PairMap
{
    const ulong Empty = ulong.MaxValue;
    readonly ulong[] _keys;
    readonly int[] _ranks;
    readonly int[] _ids;
    readonly int _shift;
    readonly int _mask;

    public int Count { get; private set; }

    public PairMap(int expected)
    {
        int cap = 16;
        while (cap < expected * 2) cap <<= 1;
        _keys = new ulong[cap];
        Array.Fill(_keys, Empty);
        _ranks = new int[cap];
        _ids = new int[cap];
        _mask = cap - 1;
        _shift = 64 - System.Numerics.BitOperations.Log2((uint)cap);
    }

    static ulong Key(int a, int b) => ((ulong)(uint)a << 32) | (uint)b;

    int Slot(ulong key) => (int)((key * 0x9E3779B97F4A7C15UL) >> _shift);

    /// <summary>Sets (overwrites) the entry for (a, b); later merges win, as in HF's merge map.</summary>
    public void Set(int a, int b, int rank, int id)
    {
        ulong key = Key(a, b);
        int i = Slot(key);
        while (true)
        {
            if (_keys[i] == Empty) { _keys[i] = key; _ranks[i] = rank; _ids[i] = id; Count++; return; }
            if (_keys[i] == key) { _ranks[i] = rank; _ids[i] = id; return; }
            i = (i + 1) & _mask;
        }
    }

    public bool TryGet(int a, int b, out int rank, out int id)
    {
        ulong key = Key(a, b);
        int i = Slot(key);
        while (true)
        {
            ulong k = _keys[i];
            if (k == key) { rank = _ranks[i]; id = _ids[i]; return true; }
            if (k == Empty) { rank = 0; id = 0; return false; }
            i = (i + 1) & _mask;
        }
    }
}
