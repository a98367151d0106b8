using Apache.Arrow;

namespace Speculators.Data;

/// <summary>One training row: token ids and the 0/1 loss mask (same length).</summary>
public readonly record struct PreparedRow(long[] InputIds, long[] LossMask)
{
    public int Length => InputIds.Length;
}

/// <summary>
/// A prepared dataset directory in HF <c>datasets</c> <c>save_to_disk</c> layout, written by us or
/// by Python speculators: rows are the concatenation of the shards listed in <c>state.json</c>
/// (<c>_data_files</c>), each an Arrow IPC stream. Columns <c>input_ids</c> and <c>loss_mask</c> are
/// <c>list&lt;int64&gt;</c> (other integer widths and <c>large_list</c> also read); other columns
/// (<c>seq_len</c>, <c>messages</c>, …) are ignored, and so is <c>_format_type</c>.
/// <para>
/// Opening maps the shards and reads only message headers and list offsets, so <see cref="Count"/>
/// and <see cref="SeqLens"/> are available at once; <see cref="GetRow"/> copies one row out of
/// the mapping. Safe to read from several threads. Dispose to unmap.
/// </para>
/// </summary>
public sealed class PreparedDataset : IDisposable
{
    readonly List<ArrowShard> _shards = new();
    readonly long[] _shardStarts;
    readonly int[] _seqLens;
    readonly int[] _idsColumn;   // per shard: column index of input_ids
    readonly int[] _maskColumn;  // per shard: column index of loss_mask

    public string Directory { get; }
    /// <summary>Shard file paths in row order.</summary>
    public IReadOnlyList<string> ShardPaths { get; }
    /// <summary><c>_format_type</c> of state.json (<c>"torch"</c> for speculators data, or null).</summary>
    public string? FormatType { get; }
    public long Count => _seqLens.LongLength;
    /// <summary>Token count of every row (from the <c>input_ids</c> list offsets).</summary>
    public IReadOnlyList<int> SeqLens => _seqLens;
    public long TotalTokens { get; }

    PreparedDataset(string dir, List<string> shardPaths, string? formatType)
    {
        Directory = dir;
        ShardPaths = shardPaths;
        FormatType = formatType;
        _idsColumn = new int[shardPaths.Count];
        _maskColumn = new int[shardPaths.Count];
        try
        {
            for (int s = 0; s < shardPaths.Count; s++)
            {
                var shard = new ArrowShard(shardPaths[s]);
                _shards.Add(shard);
                _idsColumn[s] = FindIntListColumn(shard, "input_ids");
                _maskColumn[s] = FindIntListColumn(shard, "loss_mask");
            }
            _shardStarts = new long[_shards.Count + 1];
            for (int s = 0; s < _shards.Count; s++) _shardStarts[s + 1] = _shardStarts[s] + _shards[s].RowCount;
            long total = _shardStarts[^1];
            if (total > int.MaxValue) throw new SpeculatorsException($"{dir}: {total} rows exceed the supported 2^31-1.");
            _seqLens = new int[total];
            long tokens = 0;
            for (int s = 0; s < _shards.Count; s++)
            {
                var shard = _shards[s];
                for (int b = 0; b < shard.Batches.Count; b++)
                {
                    var batch = shard.Batches[b];
                    var ids = batch.Column(_idsColumn[s]);
                    var mask = batch.Column(_maskColumn[s]);
                    long first = _shardStarts[s] + shard.BatchStart(b);
                    for (int r = 0; r < batch.Length; r++)
                    {
                        int n = ArrowIntLists.Length(ids, r);
                        int m = ArrowIntLists.Length(mask, r);
                        long rowInShard = shard.BatchStart(b) + r;
                        if (n < 0) throw new SpeculatorsException($"{shard.Path}: row {rowInShard} has a null input_ids.");
                        if (m < 0) throw new SpeculatorsException($"{shard.Path}: row {rowInShard} has a null loss_mask.");
                        if (n != m) throw new SpeculatorsException($"{shard.Path}: row {rowInShard} has {n} input_ids but {m} loss_mask values; they must be equal.");
                        _seqLens[first + r] = n;
                        tokens += n;
                    }
                }
            }
            TotalTokens = tokens;
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    static int FindIntListColumn(ArrowShard shard, string name)
    {
        int idx = shard.Schema.GetFieldIndex(name);
        if (idx < 0)
            throw new SpeculatorsException($"{shard.Path}: no '{name}' column (columns: {string.Join(", ", shard.Schema.FieldsList.Select(f => f.Name))}); a prepared dataset needs input_ids and loss_mask.");
        var type = shard.Schema.GetFieldByIndex(idx).DataType;
        if (!ArrowIntLists.IsIntList(type, out string child))
            throw new SpeculatorsException($"{shard.Path}: column '{name}' is {type.Name}<{child}>; expected list<int64>.");
        return idx;
    }

    /// <summary>
    /// Opens a prepared dataset directory (must hold <c>state.json</c>; a <c>DatasetDict</c>
    /// directory is rejected with its split names).
    /// </summary>
    public static PreparedDataset Open(string dir)
    {
        if (!System.IO.Directory.Exists(dir)) throw new SpeculatorsException($"{dir}: prepared dataset directory not found.");
        string state = Path.Combine(dir, HfDatasetLayout.StateFile);
        if (!File.Exists(state))
        {
            string dd = Path.Combine(dir, HfDatasetLayout.DatasetDictFile);
            if (File.Exists(dd))
            {
                var splits = HfDatasetLayout.ReadSplits(dd);
                throw new SpeculatorsException($"{dir}: is a DatasetDict (splits: {string.Join(", ", splits)}); pass one split's directory, e.g. {Path.Combine(dir, splits.FirstOrDefault() ?? "train")}.");
            }
            throw new SpeculatorsException($"{dir}: no {HfDatasetLayout.StateFile}; not a dataset saved with save_to_disk (run prepare-data first).");
        }
        var (files, format) = HfDatasetLayout.ReadState(state);
        if (files.Count == 0) throw new SpeculatorsException($"{state}: \"_data_files\" is empty; the dataset has no shards.");
        var paths = files.Select(f => Path.Combine(dir, f)).ToList();
        foreach (var p in paths)
            if (!File.Exists(p)) throw new SpeculatorsException($"{state} lists {Path.GetFileName(p)}, but {p} does not exist.");
        return new PreparedDataset(Path.GetFullPath(dir), paths, format);
    }

    (int Shard, int Batch, int Row) Locate(long index)
    {
        if ((ulong)index >= (ulong)Count) throw new ArgumentOutOfRangeException(nameof(index), $"row {index} is outside [0, {Count}).");
        int lo = 0, hi = _shards.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_shardStarts[mid] <= index) lo = mid; else hi = mid - 1;
        }
        var (batch, row) = _shards[lo].Locate(index - _shardStarts[lo]);
        return (lo, batch, row);
    }

    /// <summary>Copies row <paramref name="index"/> (0-based, over all shards in order).</summary>
    public PreparedRow GetRow(long index)
    {
        var (s, b, r) = Locate(index);
        int n = _seqLens[index];
        var ids = new long[n];
        var mask = new long[n];
        Copy(s, b, r, _idsColumn[s], ids, "input_ids", index);
        Copy(s, b, r, _maskColumn[s], mask, "loss_mask", index);
        return new PreparedRow(ids, mask);
    }

    /// <summary>Copies only the token ids of row <paramref name="index"/> into <paramref name="dest"/> (length <c>SeqLens[index]</c>).</summary>
    public void CopyInputIds(long index, Span<long> dest)
    {
        var (s, b, r) = Locate(index);
        if (dest.Length != _seqLens[index]) throw new ArgumentException($"destination has {dest.Length} slots; row {index} has {_seqLens[index]} tokens.");
        Copy(s, b, r, _idsColumn[s], dest, "input_ids", index);
    }

    /// <summary>Copies only the loss mask of row <paramref name="index"/> into <paramref name="dest"/>.</summary>
    public void CopyLossMask(long index, Span<long> dest)
    {
        var (s, b, r) = Locate(index);
        if (dest.Length != _seqLens[index]) throw new ArgumentException($"destination has {dest.Length} slots; row {index} has {_seqLens[index]} tokens.");
        Copy(s, b, r, _maskColumn[s], dest, "loss_mask", index);
    }

    void Copy(int s, int b, int r, int column, Span<long> dest, string name, long index)
    {
        IArrowArray col = _shards[s].Batches[b].Column(column);
        var range = ArrowIntLists.Range(col, r)!.Value;
        if (!ArrowIntLists.CopyValues(ArrowIntLists.Values(col), range.Start, dest))
            throw new SpeculatorsException($"{_shards[s].Path}: row {index - _shardStarts[s]} has null values in {name}.");
    }

    /// <summary>All rows in order (streams; each row is a fresh copy).</summary>
    public IEnumerable<PreparedRow> Rows()
    {
        for (long i = 0; i < Count; i++) yield return GetRow(i);
    }

    /// <summary>Counts <c>input_ids[loss_mask == 1]</c> over all rows (speculators.md §5.1).</summary>
    public TokenFrequencies CountTokenFrequencies()
    {
        var freq = new TokenFrequencies();
        for (long i = 0; i < Count; i++)
        {
            var row = GetRow(i);
            freq.AddRow(row.InputIds, row.LossMask);
        }
        return freq;
    }

    public void Dispose()
    {
        foreach (var s in _shards) s.Dispose();
        _shards.Clear();
    }
}
