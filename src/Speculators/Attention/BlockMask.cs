using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Attention;

/// <summary>
/// Block-sparse description of a <see cref="MaskMod"/> over q_len × kv_len: for every block of
/// <see cref="QBlockSize"/> queries, the blocks of <see cref="KvBlockSize"/> keys that are fully
/// visible (no element mask needed) and those that are partially visible (with their element
/// mask, [QBlockSize, KvBlockSize] bool each). Every other block is skipped. The same idea as
/// flex_attention's BlockMask (full_kv_indices / kv_indices), built without evaluating the mask
/// on every element: <see cref="MaskMod.Classify"/> decides most blocks from interval bounds and
/// only undecided blocks are evaluated element-wise (and reclassified exactly).
/// <para>
/// Lengths need not be multiples of the block sizes: the last blocks are padded, padded keys are
/// always masked out, padded query rows are ignored. Rows that see no key at all (possible with
/// custom or DFlash masks) get an output of 0 and zero gradients.
/// </para>
/// <para>
/// The mask owns tensors on <see cref="Device"/> (partial element masks and gather indices) that
/// live outside dispose scopes; dispose it after the backward pass that used it.
/// </para>
/// </summary>
public sealed class BlockMask : IDisposable
{
    /// <summary>Default block size (flex_attention's).</summary>
    public const int DefaultBlockSize = 128;

    /// <summary>Default cap on keys gathered per attention call (see <see cref="MaxKvTokensPerCall"/>).</summary>
    public const int DefaultMaxKvTokensPerCall = 16384;

    readonly int[][] _full;        // per q block: fully visible kv blocks, ascending
    readonly int[][] _partial;     // per q block: partially visible kv blocks, ascending
    readonly int[] _partialOffset; // per q block: index of its first partial block in _partialMasks
    Tensor? _partialMasks;         // [P, QBlockSize, KvBlockSize] bool (true = attend), P = PartialBlockCount
    Tensor? _emptyRows;            // [NumQBlocks, QBlockSize] bool: rows of computed q blocks that must be zeroed
    readonly bool[] _hasEmptyRows; // per q block
    ExecutionPlan? _plan;
    readonly object _planLock = new();
    bool _disposed;

    /// <summary>The mask function this block mask describes.</summary>
    public MaskMod Mod { get; }
    public long QLen { get; }
    public long KvLen { get; }
    public int QBlockSize { get; }
    public int KvBlockSize { get; }
    public int NumQBlocks { get; }
    public int NumKvBlocks { get; }
    public Device Device { get; }

    /// <summary>
    /// At most this many keys are gathered for one fused attention call; q blocks with the same
    /// number of visible kv blocks are batched up to it. Bounds the transient memory of a call.
    /// </summary>
    public int MaxKvTokensPerCall { get; }

    public long FullBlockCount { get; }
    public long PartialBlockCount { get; }

    /// <summary>How many undecided blocks had to be evaluated element-wise while building.</summary>
    public long EvaluatedBlockCount { get; }

    /// <summary>Visited blocks ÷ all blocks of the q_len × kv_len grid.</summary>
    public double Density => (double)(FullBlockCount + PartialBlockCount) / ((double)NumQBlocks * NumKvBlocks);

    BlockMask(MaskMod mod, long qLen, long kvLen, int qBlock, int kvBlock, Device device, int maxKvTokens,
        int[][] full, int[][] partial, Tensor? partialMasks, long evaluated)
    {
        Mod = mod;
        QLen = qLen;
        KvLen = kvLen;
        QBlockSize = qBlock;
        KvBlockSize = kvBlock;
        NumQBlocks = full.Length;
        NumKvBlocks = (int)((kvLen + kvBlock - 1) / kvBlock);
        Device = device;
        MaxKvTokensPerCall = maxKvTokens;
        _full = full;
        _partial = partial;
        _partialMasks = partialMasks;
        EvaluatedBlockCount = evaluated;
        _partialOffset = new int[NumQBlocks];
        int off = 0;
        for (int i = 0; i < NumQBlocks; i++)
        {
            _partialOffset[i] = off;
            off += partial[i].Length;
            FullBlockCount += full[i].Length;
        }
        PartialBlockCount = off;
        _hasEmptyRows = new bool[NumQBlocks];
        _emptyRows = ComputeEmptyRows();
    }

    /// <summary>
    /// Builds the block mask of <paramref name="mod"/> over <paramref name="qLen"/> queries and
    /// <paramref name="kvLen"/> keys: O(q_blocks · kv_blocks) classifications plus element
    /// evaluation of the undecided blocks only.
    /// </summary>
    public static BlockMask Create(MaskMod mod, long qLen, long kvLen, int qBlockSize = DefaultBlockSize,
        int kvBlockSize = DefaultBlockSize, Device? device = null, int maxKvTokensPerCall = DefaultMaxKvTokensPerCall)
    {
        ArgumentNullException.ThrowIfNull(mod);
        if (qLen < 1) throw new ArgumentOutOfRangeException(nameof(qLen), qLen, "q_len must be >= 1");
        if (kvLen < 1) throw new ArgumentOutOfRangeException(nameof(kvLen), kvLen, "kv_len must be >= 1");
        if (qBlockSize < 1) throw new ArgumentOutOfRangeException(nameof(qBlockSize), qBlockSize, "block size must be >= 1");
        if (kvBlockSize < 1) throw new ArgumentOutOfRangeException(nameof(kvBlockSize), kvBlockSize, "block size must be >= 1");
        if (maxKvTokensPerCall < 1) throw new ArgumentOutOfRangeException(nameof(maxKvTokensPerCall), maxKvTokensPerCall, "must be >= 1");
        return Build(mod, qLen, kvLen, qBlockSize, kvBlockSize, device ?? CPU, maxKvTokensPerCall, previous: null);
    }

    /// <summary>
    /// The same mask function over a longer key axis (e.g. the next TTT step, kv_len = (k+1)·L).
    /// Blocks lying wholly inside the old key range keep their classification and element masks
    /// (a mask function does not depend on kv_len); only the new key blocks, and the old last
    /// block if it was padded, are classified.
    /// </summary>
    public BlockMask ExtendKv(long newKvLen)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (newKvLen < KvLen)
            throw new ArgumentOutOfRangeException(nameof(newKvLen), newKvLen, $"must be >= the current kv_len {KvLen}");
        return Build(Mod, QLen, newKvLen, QBlockSize, KvBlockSize, Device, MaxKvTokensPerCall, previous: this);
    }

    static BlockMask Build(MaskMod mod, long qLen, long kvLen, int bq, int bkv, Device device, int maxKvTokens, BlockMask? previous)
    {
        using var scope = NewDisposeScope();
        int nQ = (int)((qLen + bq - 1) / bq), nKv = (int)((kvLen + bkv - 1) / bkv);
        // Blocks below keepKv are copied from the previous mask: they lie wholly inside its key range.
        int keepKv = previous == null ? 0 : (int)(previous.KvLen / bkv);

        var full = new List<int>[nQ];
        var partial = new List<int>[nQ];
        var candQ = new List<int>();
        var candKv = new List<int>();
        var keptPartial = new List<long>();   // indices into previous._partialMasks, in (q block, kv block) order
        var keptPos = new List<(int q, int kv)>();
        for (int qb = 0; qb < nQ; qb++)
        {
            full[qb] = [];
            partial[qb] = [];
            long q0 = (long)qb * bq, q1 = Math.Min(q0 + bq, qLen);
            if (previous != null)
            {
                foreach (var kb in previous._full[qb]) if (kb < keepKv) full[qb].Add(kb);
                var pp = previous._partial[qb];
                for (int j = 0; j < pp.Length; j++)
                    if (pp[j] < keepKv)
                    {
                        keptPartial.Add(previous._partialOffset[qb] + j);
                        keptPos.Add((qb, pp[j]));
                    }
            }
            for (int kb = keepKv; kb < nKv; kb++)
            {
                long kv0 = (long)kb * bkv, kv1 = Math.Min(kv0 + bkv, kvLen);
                var c = mod.Classify(q0, q1, kv0, kv1);
                if (c == BlockKind.Empty) continue;
                if (c == BlockKind.Full && kv0 + bkv <= kvLen) { full[qb].Add(kb); continue; }
                candQ.Add(qb);                                 // undecided, or full but padded on the key side
                candKv.Add(kb);
            }
        }

        // Evaluate the undecided blocks element-wise, a bounded number of blocks at a time.
        var newPos = new List<(int q, int kv)>();
        var newMasks = new List<Tensor>();
        int chunk = Math.Max(1, (1 << 22) / (bq * bkv));
        var qOff = arange(bq, dtype: ScalarType.Int64, device: device).view(1, bq, 1);
        var kvOff = arange(bkv, dtype: ScalarType.Int64, device: device).view(1, 1, bkv);
        for (int s = 0; s < candQ.Count; s += chunk)
        {
            using var inner = NewDisposeScope();
            int c = Math.Min(chunk, candQ.Count - s);
            var qbs = candQ.GetRange(s, c).Select(x => (long)x * bq).ToArray();
            var kbs = candKv.GetRange(s, c).Select(x => (long)x * bkv).ToArray();
            var qIdx = tensor(qbs, dtype: ScalarType.Int64, device: device).view(c, 1, 1) + qOff;
            var kvIdx = tensor(kbs, dtype: ScalarType.Int64, device: device).view(c, 1, 1) + kvOff;
            var qValid = qIdx.lt(qLen);
            var kvValid = kvIdx.lt(kvLen);
            var m = mod.Evaluate(qIdx.clamp_max(qLen - 1), kvIdx.clamp_max(kvLen - 1))
                .expand(c, bq, bkv).logical_and(kvValid);
            var anyTrue = m.logical_and(qValid).any(2).any(1).cpu().data<bool>().ToArray();
            var allTrue = m.logical_or(qValid.logical_not()).all(2).all(1).cpu().data<bool>().ToArray();
            var keep = new List<long>();
            for (int i = 0; i < c; i++)
            {
                int qb = candQ[s + i], kb = candKv[s + i];
                if (!anyTrue[i]) continue;
                if (allTrue[i] && (long)(kb + 1) * bkv <= kvLen) { full[qb].Add(kb); continue; }
                keep.Add(i);
                newPos.Add((qb, kb));
            }
            if (keep.Count > 0)
                newMasks.Add(m.index_select(0, tensor(keep.ToArray(), dtype: ScalarType.Int64, device: device)).MoveToOuterDisposeScope());
        }

        // Merge kept and new partial blocks in (q block, kv block) order.
        var all = new List<(int q, int kv, int src)>(keptPos.Count + newPos.Count);
        for (int i = 0; i < keptPos.Count; i++) all.Add((keptPos[i].q, keptPos[i].kv, i));
        for (int i = 0; i < newPos.Count; i++) all.Add((newPos[i].q, newPos[i].kv, keptPos.Count + i));
        all.Sort((a, b) => a.q != b.q ? a.q.CompareTo(b.q) : a.kv.CompareTo(b.kv));
        Tensor? masks = null;
        if (all.Count > 0)
        {
            var parts = new List<Tensor>();
            if (keptPartial.Count > 0)
                parts.Add(previous!._partialMasks!.index_select(0, tensor(keptPartial.ToArray(), dtype: ScalarType.Int64, device: device)));
            parts.AddRange(newMasks);
            var stacked = parts.Count == 1 ? parts[0] : cat(parts, 0);
            var order = all.Select(x => (long)x.src).ToArray();
            bool identity = order.Select((v, i) => v == i).All(b => b);
            masks = (identity ? stacked : stacked.index_select(0, tensor(order, dtype: ScalarType.Int64, device: device))).contiguous();
        }
        foreach (var (q, kv, _) in all) partial[q].Add(kv);
        var fullArr = full.Select(l => { l.Sort(); return l.ToArray(); }).ToArray();
        var partialArr = partial.Select(l => l.ToArray()).ToArray();
        masks?.DetachFromDisposeScope();
        return new BlockMask(mod, qLen, kvLen, bq, bkv, device, maxKvTokens, fullArr, partialArr, masks, candQ.Count);
    }

    Tensor? ComputeEmptyRows()
    {
        // Only q blocks without any full block can have rows that see nothing. Padded rows of such
        // blocks count as empty too, so that a fused kernel never sees a fully masked row.
        using var scope = NewDisposeScope();
        var candidates = Enumerable.Range(0, NumQBlocks).Where(i => _full[i].Length == 0 && _partial[i].Length > 0).ToArray();
        if (candidates.Length == 0) return null;
        var rows = zeros(NumQBlocks, QBlockSize, dtype: ScalarType.Int32, device: Device);
        var blockOwner = new long[PartialBlockCount];
        for (int i = 0; i < NumQBlocks; i++)
            for (int j = 0; j < _partial[i].Length; j++) blockOwner[_partialOffset[i] + j] = i;
        rows.index_add_(0, tensor(blockOwner, dtype: ScalarType.Int64, device: Device), _partialMasks!.any(2).to(ScalarType.Int32), 1);
        var empty = rows.eq(0);
        var qValid = (arange(NumQBlocks, dtype: ScalarType.Int64, device: Device).view(-1, 1) * QBlockSize
            + arange(QBlockSize, dtype: ScalarType.Int64, device: Device).view(1, -1)).lt(QLen);
        var computedBlock = new bool[NumQBlocks];
        foreach (var i in candidates) computedBlock[i] = true;
        empty = empty.logical_or(qValid.logical_not())
            .logical_and(tensor(computedBlock, device: Device).view(-1, 1));
        var perBlock = empty.any(1).cpu().data<bool>().ToArray();
        Array.Copy(perBlock, _hasEmptyRows, NumQBlocks);
        if (!perBlock.Any(b => b)) return null;
        return empty.contiguous().DetachFromDisposeScope();
    }

    // ------------------------------------------------------------------ inspection

    /// <summary>Fully visible kv blocks of q block <paramref name="qBlock"/> (ascending).</summary>
    public IReadOnlyList<int> FullKvBlocks(int qBlock) => _full[qBlock];

    /// <summary>Partially visible kv blocks of q block <paramref name="qBlock"/> (ascending).</summary>
    public IReadOnlyList<int> PartialKvBlocks(int qBlock) => _partial[qBlock];

    /// <summary>Element mask [QBlockSize, KvBlockSize] (bool, a view) of the j-th partial block of a q block.</summary>
    public Tensor PartialElementMask(int qBlock, int j)
    {
        if (j < 0 || j >= _partial[qBlock].Length) throw new ArgumentOutOfRangeException(nameof(j));
        return _partialMasks![_partialOffset[qBlock] + j];
    }

    /// <summary>
    /// The flex_attention layout: (kv_num_blocks [nQ], kv_indices [nQ, nKv], full_kv_num_blocks,
    /// full_kv_indices) as int32 on <see cref="Device"/>; kv_* list the partial blocks, rows padded with 0.
    /// </summary>
    public (Tensor kvNumBlocks, Tensor kvIndices, Tensor fullKvNumBlocks, Tensor fullKvIndices) ToFlexLayout()
    {
        static (Tensor, Tensor) Pack(int[][] lists, int width, Device device)
        {
            var counts = lists.Select(l => l.Length).ToArray();
            var idx = new int[lists.Length * width];
            for (int i = 0; i < lists.Length; i++) Array.Copy(lists[i], 0, idx, i * width, lists[i].Length);
            return (tensor(counts, device: device), tensor(idx, device: device).view(lists.Length, width));
        }
        var (kn, ki) = Pack(_partial, NumKvBlocks, Device);
        var (fn, fi) = Pack(_full, NumKvBlocks, Device);
        return (kn, ki, fn, fi);
    }

    /// <summary>
    /// The mask as dense bool [QLen, KvLen], reconstructed from the block metadata (tests and
    /// debugging only: this is the L×L tensor the block mask exists to avoid).
    /// </summary>
    public Tensor ToDense()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var scope = NewDisposeScope();
        var d = zeros(NumQBlocks * (long)QBlockSize, NumKvBlocks * (long)KvBlockSize, dtype: ScalarType.Bool, device: Device);
        for (int i = 0; i < NumQBlocks; i++)
        {
            var rows = d.narrow(0, (long)i * QBlockSize, QBlockSize);
            foreach (var kb in _full[i]) rows.narrow(1, (long)kb * KvBlockSize, KvBlockSize).fill_(true);
            for (int j = 0; j < _partial[i].Length; j++)
                rows.narrow(1, (long)_partial[i][j] * KvBlockSize, KvBlockSize).copy_(_partialMasks![_partialOffset[i] + j]);
        }
        return d.narrow(0, 0, QLen).narrow(1, 0, KvLen).contiguous().MoveToOuterDisposeScope();
    }

    public override string ToString() =>
        $"BlockMask(q_len={QLen}, kv_len={KvLen}, blocks={QBlockSize}x{KvBlockSize}, grid={NumQBlocks}x{NumKvBlocks}, " +
        $"full={FullBlockCount}, partial={PartialBlockCount}, density={Density:P1}, mask={Mod})";

    // ------------------------------------------------------------------ execution plan

    /// <summary>
    /// One fused attention call: <see cref="QBlocks"/> (all with the same number of full and
    /// partial kv blocks) against their gathered keys.
    /// </summary>
    internal sealed class Group
    {
        public required int[] QBlocks;
        public required int NumFull;
        public required int NumPartial;
        public required long RowStart;            // >= 0: one unpadded q block, rows [RowStart, RowStart + Bq)
        public required Tensor? RowIndex;         // else: [g · Bq] query rows (clamped to q_len − 1)
        public required Tensor? ValidPos;         // positions of RowIndex below q_len, or null when all are
        public required Tensor? ValidRows;        // RowIndex at ValidPos
        public required long KvStart;             // >= 0: keys are the contiguous range [KvStart, KvStart + n·Bkv)
        public required Tensor? KvIndex;          // else: [g · n · Bkv] key indices (clamped to kv_len − 1)
        public required Tensor? PartialBlocked;   // [g, Bq, NumPartial · Bkv] bool, true = masked out, or null
        public required Tensor? EmptyRows;        // [g, Bq] rows that see no key (incl. padded rows of such blocks), or null
        public required Tensor? ZeroRows;         // [g, Bq] rows whose output and output gradient are 0 (empty or padded), or null
        public int NumKvBlocks => NumFull + NumPartial;

        public IEnumerable<Tensor> Tensors() =>
            new[] { RowIndex, ValidPos, ValidRows, KvIndex, PartialBlocked, EmptyRows, ZeroRows }.OfType<Tensor>();
    }

    internal sealed class ExecutionPlan
    {
        public required List<Group> Groups;
    }

    /// <summary>
    /// Builds the execution plan (q-block groups, gather indices, group element masks) now rather
    /// than on the first attention call, e.g. to time it or to keep it off the critical path.
    /// </summary>
    public BlockMask Prepare()
    {
        _ = Plan;
        return this;
    }

    internal ExecutionPlan Plan
    {
        get
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            lock (_planLock) return _plan ??= BuildPlan();
        }
    }

    ExecutionPlan BuildPlan()
    {
        using var scope = NewDisposeScope();
        var bySignature = new SortedDictionary<(int full, int partial), List<int>>();
        for (int i = 0; i < NumQBlocks; i++)
        {
            var key = (_full[i].Length, _partial[i].Length);
            if (key.Item1 + key.Item2 == 0) continue;        // sees nothing: output stays 0
            if (!bySignature.TryGetValue(key, out var l)) bySignature[key] = l = [];
            l.Add(i);
        }
        var groups = new List<Group>();
        foreach (var ((nFull, nPart), qbs) in bySignature)
        {
            int n = nFull + nPart;
            int per = Math.Max(1, MaxKvTokensPerCall / (n * KvBlockSize));
            for (int s = 0; s < qbs.Count; s += per)
            {
                var members = qbs.GetRange(s, Math.Min(per, qbs.Count - s)).ToArray();
                groups.Add(MakeGroup(members, nFull, nPart));
            }
        }
        foreach (var g in groups)
            foreach (var t in g.Tensors()) t.DetachFromDisposeScope();
        return new ExecutionPlan { Groups = groups };
    }

    Group MakeGroup(int[] members, int nFull, int nPart)
    {
        int g = members.Length, n = nFull + nPart;
        long kvStart = -1;
        Tensor? kvIndex = null;
        int[] Blocks(int qb) => [.. _full[qb], .. _partial[qb]];
        var first = Blocks(members[0]);
        bool contiguous = g == 1 && first.Select((kb, j) => kb == first[0] + j).All(b => b)
            && (long)(first[^1] + 1) * KvBlockSize <= KvLen;
        if (contiguous) kvStart = (long)first[0] * KvBlockSize;
        else
        {
            var tok = new long[(long)g * n * KvBlockSize];
            long p = 0;
            foreach (var qb in members)
                foreach (var kb in Blocks(qb))
                    for (int t = 0; t < KvBlockSize; t++)
                        tok[p++] = Math.Min((long)kb * KvBlockSize + t, KvLen - 1);
            kvIndex = tensor(tok, dtype: ScalarType.Int64, device: Device);
        }
        Tensor? partialBlocked = null;
        if (nPart > 0)
        {
            var idx = members.SelectMany(qb => Enumerable.Range(_partialOffset[qb], nPart).Select(x => (long)x)).ToArray();
            partialBlocked = _partialMasks!.index_select(0, tensor(idx, dtype: ScalarType.Int64, device: Device))
                .view(g, nPart, QBlockSize, KvBlockSize).permute(0, 2, 1, 3)
                .reshape(g, QBlockSize, (long)nPart * KvBlockSize).logical_not();
        }
        Tensor? emptyRows = null;
        Tensor? Select(Tensor? perBlock) => perBlock?.index_select(0, tensor(members.Select(x => (long)x).ToArray(), dtype: ScalarType.Int64, device: Device));
        if (_emptyRows is not null && members.Any(qb => _hasEmptyRows[qb]))
            emptyRows = Select(_emptyRows);

        // Query rows: one contiguous unpadded block is a narrow; otherwise gather (padded rows clamped).
        long rowStart = -1;
        Tensor? rowIndex = null, validPos = null, validRows = null;
        bool padded = members.Any(qb => (long)(qb + 1) * QBlockSize > QLen);
        if (g == 1 && !padded) rowStart = (long)members[0] * QBlockSize;
        else
        {
            var rows = members.SelectMany(qb => Enumerable.Range(0, QBlockSize).Select(t => (long)qb * QBlockSize + t)).ToArray();
            rowIndex = tensor(rows.Select(r => Math.Min(r, QLen - 1)).ToArray(), dtype: ScalarType.Int64, device: Device);
            if (padded)
            {
                var pos = Enumerable.Range(0, rows.Length).Where(i => rows[i] < QLen).Select(i => (long)i).ToArray();
                validPos = tensor(pos, dtype: ScalarType.Int64, device: Device);
                validRows = tensor(pos.Select(i => rows[i]).ToArray(), dtype: ScalarType.Int64, device: Device);
            }
        }
        Tensor? zeroRows = emptyRows;
        if (padded)
        {
            var pad = members.SelectMany(qb => Enumerable.Range(0, QBlockSize).Select(t => (long)qb * QBlockSize + t >= QLen)).ToArray();
            var padT = tensor(pad, device: Device).view(g, QBlockSize);
            zeroRows = zeroRows is null ? padT : zeroRows.logical_or(padT);
        }
        return new Group
        {
            QBlocks = members,
            NumFull = nFull,
            NumPartial = nPart,
            RowStart = rowStart,
            RowIndex = rowIndex,
            ValidPos = validPos,
            ValidRows = validRows,
            KvStart = kvStart,
            KvIndex = kvIndex,
            PartialBlocked = partialBlocked,
            EmptyRows = emptyRows,
            ZeroRows = zeroRows,
        };
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _partialMasks?.Dispose();
        _partialMasks = null;
        _emptyRows?.Dispose();
        _emptyRows = null;
        if (_plan is not null)
            foreach (var g in _plan.Groups)
                foreach (var t in new HashSet<Tensor>(g.Tensors(), ReferenceEqualityComparer.Instance)) t.Dispose();
        _plan = null;
    }
}
