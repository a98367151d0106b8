using Speculators.Util;

namespace Speculators.Data;

/// <summary>
/// The multipack distributed batch sampler (speculators' <c>MultipackDistributedBatchSamplerV2</c>,
/// with the slot rotation of later versions): every optimizer step packs a prefix of the shuffled
/// dataset into <c>WorldSize</c> rows of at most <c>BatchMaxLength</c> tokens each, one row per rank.
/// <list type="number">
/// <item>Samples longer than the budget are clipped to it (the collator truncates them) or, with
/// <c>truncateLongSamples: false</c>, dropped.</item>
/// <item>Epoch order: <c>numpy.random.default_rng(seed + epoch).permutation(valid)</c>, reproduced
/// exactly by <see cref="NumpyRandom"/>.</item>
/// <item>Per step: binary search for the longest prefix of the remaining samples that LPT
/// (longest processing time first: samples in decreasing length, each into the least-filled row,
/// ties to the lowest slot) fits into <c>WorldSize</c> rows; the search range starts at
/// <c>[1, 1 + #(cumsum ≤ used + budget·WorldSize))</c>.</item>
/// <item>Slot rotation: at step s, rank r takes slot <c>(r − s) mod WorldSize</c>, so the rank that
/// receives the largest samples cycles.</item>
/// <item>When fewer than <c>WorldSize</c> samples remain, they are dropped for this epoch.</item>
/// </list>
/// Every rank computes the same global plan (<see cref="Plan"/>) and takes its own row, so ranks
/// always agree on the number of steps. Ties between equal lengths are ordered by descending
/// position in the shuffled order (what NumPy's stable small-array argsort, reversed, gives; NumPy
/// does not specify the order for larger arrays).
/// </summary>
public sealed class MultipackSampler
{
    readonly int[] _clipped;     // per dataset row, length clipped to the budget
    readonly int[] _valid;       // dataset rows that take part
    MultipackPlan? _cached;

    public int BatchMaxLength { get; }
    public int WorldSize { get; }
    public int Rank { get; }
    public long Seed { get; }
    public int Epoch { get; private set; }

    /// <summary>Rows longer than the budget (clipped when truncating, dropped otherwise).</summary>
    public int LongSampleCount { get; }
    public bool TruncateLongSamples { get; }

    /// <param name="lengths">Token count of every dataset row (after any per-sample shift), in dataset order.</param>
    /// <param name="batchMaxLength">Tokens per packed row per rank (<c>--total-seq-len</c>).</param>
    /// <param name="worldSize">Number of data-parallel ranks.</param>
    /// <param name="rank">This rank.</param>
    /// <param name="seed">Sampler seed; the epoch order is drawn from <c>seed + epoch</c> (speculators passes 0).</param>
    /// <param name="truncateLongSamples">Clip over-long rows to the budget (default) instead of dropping them.</param>
    public MultipackSampler(IReadOnlyList<int> lengths, int batchMaxLength, int worldSize = 1, int rank = 0,
        long seed = 0, bool truncateLongSamples = true)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        if (batchMaxLength < 1)
            throw new SpeculatorsException($"--total-seq-len: expected a positive token budget per packed row, got {batchMaxLength}.");
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), $"world size must be >= 1, got {worldSize}.");
        if (rank < 0 || rank >= worldSize) throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside [0, {worldSize}).");
        if (seed < 0) throw new ArgumentOutOfRangeException(nameof(seed), $"sampler seed must be >= 0 (NumPy seeds are non-negative), got {seed}.");
        BatchMaxLength = batchMaxLength;
        WorldSize = worldSize;
        Rank = rank;
        Seed = seed;
        TruncateLongSamples = truncateLongSamples;
        _clipped = new int[lengths.Count];
        var valid = new List<int>(lengths.Count);
        int longCount = 0;
        for (int i = 0; i < lengths.Count; i++)
        {
            int len = lengths[i];
            if (len < 0) throw new SpeculatorsException($"sample {i}: negative length {len} (expected the token count of the row).");
            if (len > batchMaxLength)
            {
                longCount++;
                if (!truncateLongSamples) continue;
                len = batchMaxLength;
            }
            _clipped[i] = len;
            valid.Add(i);
        }
        _valid = valid.ToArray();
        LongSampleCount = longCount;
        if (longCount > 0 && rank == 0)
            Log.Warn(truncateLongSamples
                ? $"{longCount}/{lengths.Count} samples are longer than the packed row ({batchMaxLength} tokens); they will be truncated to it."
                : $"dropping {longCount}/{lengths.Count} samples longer than the packed row ({batchMaxLength} tokens).");
    }

    /// <summary>Number of dataset rows the sampler was built over.</summary>
    public int DatasetSize => _clipped.Length;

    /// <summary>Length of dataset row <paramref name="row"/> as packed (clipped to the budget).</summary>
    public int PackedLength(int row) => _clipped[row];

    /// <summary>Selects the epoch whose batches <see cref="Batches"/> and <see cref="Iterate"/> return.</summary>
    public void SetEpoch(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch), $"epoch must be >= 0, got {epoch}.");
        Epoch = epoch;
    }

    /// <summary>Steps in the current epoch (identical on every rank).</summary>
    public int Count => Plan(Epoch).StepCount;

    /// <summary>This rank's batches (dataset row indices, largest sample first) for the current epoch.</summary>
    public IReadOnlyList<int[]> Batches() => Plan(Epoch).RankBatches(Rank);

    /// <summary>
    /// This rank's batches for the current epoch starting after <paramref name="skip"/> completed steps
    /// (resume mid-epoch without re-reading the skipped samples).
    /// </summary>
    public IEnumerable<int[]> Iterate(int skip = 0)
    {
        var plan = Plan(Epoch);
        if (skip < 0 || skip > plan.StepCount)
            throw new SpeculatorsException(
                $"resume position: {skip} completed steps recorded for epoch {Epoch}, but the epoch has {plan.StepCount} steps " +
                "(were the dataset, --total-seq-len or the number of ranks changed since the checkpoint?).");
        for (int s = skip; s < plan.StepCount; s++) yield return plan.Batch(s, Rank);
    }

    /// <summary>The global packing of <paramref name="epoch"/> (all ranks' rows); cached for the last epoch asked.</summary>
    public MultipackPlan Plan(int epoch)
    {
        if (_cached != null && _cached.Epoch == epoch) return _cached;
        _cached = BuildPlan(epoch);
        return _cached;
    }

    MultipackPlan BuildPlan(int epoch)
    {
        if (epoch < 0) throw new ArgumentOutOfRangeException(nameof(epoch));
        var rng = new NumpyRandom(new System.Numerics.BigInteger(Seed) + epoch);
        int[] order = rng.Permutation<int>(_valid);
        int n = order.Length;
        int R = WorldSize;
        var lengths = new int[n];
        var csum = new long[n];
        long run = 0;
        for (int i = 0; i < n; i++)
        {
            lengths[i] = _clipped[order[i]];
            run += lengths[i];
            csum[i] = run;
        }

        var steps = new List<int[][]>();
        var lpt = new Lpt(R, BatchMaxLength);
        int ind = 0;
        long used = 0;
        long packedTokens = 0;
        while (n - ind >= R)
        {
            long target = used + (long)BatchMaxLength * R;
            int left = 1;
            int right = 1 + UpperBound(csum, ind, n, target) - ind;
            while (right - left > 1 && right > R)
            {
                int mid = (left + right) / 2;
                if (lpt.Pack(lengths, ind, mid, slots: null)) left = mid;
                else right = mid;
            }
            var slots = new List<int>[R];
            for (int r = 0; r < R; r++) slots[r] = new List<int>();
            if (!lpt.Pack(lengths, ind, left, slots))
                throw new InvalidOperationException($"multipack: a prefix of {left} samples at position {ind} did not pack (internal error).");
            int rot = steps.Count;
            var perRank = new int[R][];
            for (int rank = 0; rank < R; rank++)
            {
                int slot = ((rank - rot) % R + R) % R;
                perRank[rank] = slots[slot].Select(p => order[p]).ToArray();
            }
            steps.Add(perRank);
            for (int p = ind; p < ind + left; p++) packedTokens += lengths[p];
            ind += left;
            used = csum[ind - 1];
        }
        return new MultipackPlan(epoch, R, BatchMaxLength, steps, packedTokens, n - ind, _clipped.Length - n);
    }

    /// <summary>Index of the first element in csum[from..to) greater than target (NumPy searchsorted side="right").</summary>
    static int UpperBound(long[] csum, int from, int to, long target)
    {
        int lo = from, hi = to;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (csum[mid] <= target) lo = mid + 1;
            else hi = mid;
        }
        return lo;
    }

    /// <summary>LPT packing of a window of the shuffled lengths into R rows.</summary>
    sealed class Lpt
    {
        readonly int _rows;
        readonly int _budget;
        readonly PriorityQueue<int, (long Fill, int Slot)> _heap = new();
        int[] _order = Array.Empty<int>();

        public Lpt(int rows, int budget)
        {
            _rows = rows;
            _budget = budget;
        }

        /// <summary>
        /// Packs lengths[start .. start+count) (positions in shuffled order). Returns false as soon as a
        /// sample does not fit the least-filled row. When <paramref name="slots"/> is given, fills it
        /// with the positions each slot received, in placement order.
        /// </summary>
        public bool Pack(int[] lengths, int start, int count, List<int>[]? slots)
        {
            if (_order.Length < count) _order = new int[Math.Max(count, _order.Length * 2)];
            for (int i = 0; i < count; i++) _order[i] = start + i;
            // Decreasing length; equal lengths by decreasing position (a reversed stable argsort).
            Array.Sort(_order, 0, count, Comparer<int>.Create((a, b) =>
            {
                int c = lengths[b].CompareTo(lengths[a]);
                return c != 0 ? c : b.CompareTo(a);
            }));
            _heap.Clear();
            for (int s = 0; s < _rows; s++) _heap.Enqueue(s, (0L, s));
            for (int i = 0; i < count; i++)
            {
                int pos = _order[i];
                _heap.TryPeek(out int slot, out var key);
                long fill = key.Fill + lengths[pos];
                if (fill > _budget) return false;
                slots?[slot].Add(pos);
                _heap.DequeueEnqueue(slot, (fill, slot));
            }
            return true;
        }
    }
}

/// <summary>
/// One epoch's global packing: for every step, the dataset rows each rank trains on (after slot
/// rotation). Identical on every rank.
/// </summary>
public sealed class MultipackPlan
{
    readonly List<int[][]> _steps;

    internal MultipackPlan(int epoch, int worldSize, int batchMaxLength, List<int[][]> steps, long tokens, int leftover, int excluded)
    {
        Epoch = epoch;
        WorldSize = worldSize;
        BatchMaxLength = batchMaxLength;
        _steps = steps;
        Tokens = tokens;
        LeftoverSamples = leftover;
        ExcludedSamples = excluded;
    }

    public int Epoch { get; }
    public int WorldSize { get; }
    public int BatchMaxLength { get; }
    public int StepCount => _steps.Count;

    /// <summary>Tokens packed this epoch over all ranks (clipped lengths).</summary>
    public long Tokens { get; }

    /// <summary>Samples dropped at the end of the epoch because fewer than <see cref="WorldSize"/> remained.</summary>
    public int LeftoverSamples { get; }

    /// <summary>Samples excluded for the whole run (longer than the budget with truncation off).</summary>
    public int ExcludedSamples { get; }

    /// <summary>Samples packed this epoch over all ranks.</summary>
    public int Samples => _steps.Sum(s => s.Sum(b => b.Length));

    /// <summary>Packed tokens ÷ (steps × budget × world size): the fraction of the rows that holds real tokens.</summary>
    public double Efficiency => StepCount == 0 ? 0.0 : (double)Tokens / ((double)StepCount * BatchMaxLength * WorldSize);

    /// <summary>Dataset rows of <paramref name="rank"/>'s row at <paramref name="step"/>, largest sample first.</summary>
    public int[] Batch(int step, int rank) => _steps[step][rank];

    /// <summary>All batches of one rank, in step order.</summary>
    public IReadOnlyList<int[]> RankBatches(int rank) => _steps.Select(s => s[rank]).ToList();

    public override string ToString() =>
        $"epoch {Epoch}: {StepCount} steps × {WorldSize} rank(s) × {BatchMaxLength} tokens, {Samples} samples, " +
        $"packing efficiency {Efficiency:P1}" + (LeftoverSamples > 0 ? $", {LeftoverSamples} left over" : "");
}
