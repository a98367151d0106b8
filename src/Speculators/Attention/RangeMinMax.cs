namespace Speculators.Attention;

/// <summary>
/// O(1) range queries over an int array (sparse tables, O(n log n) build): the maximum, the
/// minimum over non-negative entries, and whether a range holds a negative entry. Mask
/// functions use it to bound document ids over a block without visiting its elements.
/// </summary>
internal sealed class RangeMinMax
{
    readonly int[][] _max;       // _max[j][i] = max(values[i .. i + 2^j))
    readonly int[][] _minNonNeg; // same for min over entries >= 0 (int.MaxValue when none)
    readonly int[] _negPrefix;   // number of negative entries in values[0 .. i)

    public int Length { get; }

    public RangeMinMax(ReadOnlySpan<int> values)
    {
        Length = values.Length;
        int levels = 1;
        while ((1 << levels) <= Math.Max(1, Length)) levels++;
        _max = new int[levels][];
        _minNonNeg = new int[levels][];
        _max[0] = values.ToArray();
        _minNonNeg[0] = new int[Length];
        _negPrefix = new int[Length + 1];
        for (int i = 0; i < Length; i++)
        {
            _minNonNeg[0][i] = values[i] >= 0 ? values[i] : int.MaxValue;
            _negPrefix[i + 1] = _negPrefix[i] + (values[i] < 0 ? 1 : 0);
        }
        for (int j = 1; j < levels; j++)
        {
            int half = 1 << (j - 1), n = Length - (1 << j) + 1;
            if (n <= 0) { _max[j] = []; _minNonNeg[j] = []; continue; }
            var mx = new int[n];
            var mn = new int[n];
            for (int i = 0; i < n; i++)
            {
                mx[i] = Math.Max(_max[j - 1][i], _max[j - 1][i + half]);
                mn[i] = Math.Min(_minNonNeg[j - 1][i], _minNonNeg[j - 1][i + half]);
            }
            _max[j] = mx;
            _minNonNeg[j] = mn;
        }
    }

    /// <summary>Bounds over [lo, hi) (non-empty, inside the array).</summary>
    public (int minNonNeg, int max, bool anyNegative) Query(long lo, long hi)
    {
        if (lo < 0 || hi > Length || lo >= hi)
            throw new ArgumentOutOfRangeException(nameof(lo), $"range [{lo}, {hi}) outside [0, {Length})");
        int a = (int)lo, b = (int)hi;
        int j = 31 - System.Numerics.BitOperations.LeadingZeroCount((uint)(b - a));
        int other = b - (1 << j);
        return (Math.Min(_minNonNeg[j][a], _minNonNeg[j][other]),
                Math.Max(_max[j][a], _max[j][other]),
                _negPrefix[b] - _negPrefix[a] > 0);
    }
}
