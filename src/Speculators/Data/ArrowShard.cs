using Apache.Arrow;
using Apache.Arrow.Ipc;
using Speculators.Util;

namespace Speculators.Data;

/// <summary>
/// One Arrow IPC <b>stream</b> file (an HF <c>datasets</c> shard), opened for random access: the file
/// is memory-mapped and the record batches point into the mapping (no copy), so opening a shard
/// costs only its message headers. Shards over 2 GiB (not written by <c>save_to_disk</c>'s default
/// 500 MB sharding) are read into memory instead.
/// </summary>
internal sealed class ArrowShard : IDisposable
{
    readonly MappedFileMemory? _mapped;
    readonly List<RecordBatch> _batches = new();
    readonly long[] _batchStarts;

    public string Path { get; }
    public Schema Schema { get; }
    public IReadOnlyList<RecordBatch> Batches => _batches;
    public long RowCount { get; }

    static readonly byte[] FileMagic = "ARROW1"u8.ToArray();

    public ArrowShard(string path)
    {
        Path = path;
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: Arrow shard not found.");
        long size = new FileInfo(path).Length;
        if (size < 8) throw new SpeculatorsException($"{path}: {size} bytes is too short for an Arrow IPC stream (truncated or not Arrow).");
        try
        {
            if (size <= int.MaxValue)
            {
                _mapped = new MappedFileMemory(path);
                var span = _mapped.GetSpan();
                if (span[..6].SequenceEqual(FileMagic))
                    throw new SpeculatorsException($"{path}: this is an Arrow IPC *file* (Feather v2, starts with ARROW1); HF datasets shards are Arrow IPC *streams*.");
                bool hasEos = HasEndOfStream(span);
                using var reader = new ArrowStreamReader(_mapped.Memory);
                Schema = reader.Schema ?? throw new SpeculatorsException($"{path}: no Arrow schema message at the start of the file.");
                ReadAll(reader);
                if (!hasEos) Log.Warn($"{path}: no Arrow end-of-stream marker at the end of the file; it may be truncated.");
            }
            else
            {
                using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
                using var reader = new ArrowStreamReader(fs, leaveOpen: false);
                Schema = reader.Schema ?? throw new SpeculatorsException($"{path}: no Arrow schema message at the start of the file.");
                ReadAll(reader);
            }
        }
        catch (Exception e) when (e is not SpeculatorsException && e is not OutOfMemoryException)
        {
            Dispose();
            throw new SpeculatorsException($"{path}: unreadable Arrow IPC stream (truncated or corrupt?): {e.GetType().Name}: {e.Message}", e);
        }
        catch
        {
            Dispose();
            throw;
        }
        _batchStarts = new long[_batches.Count + 1];
        for (int i = 0; i < _batches.Count; i++) _batchStarts[i + 1] = _batchStarts[i] + _batches[i].Length;
        RowCount = _batchStarts[^1];
    }

    void ReadAll(ArrowStreamReader reader)
    {
        while (reader.ReadNextRecordBatch() is { } batch) _batches.Add(batch);
    }

    static bool HasEndOfStream(ReadOnlySpan<byte> s)
    {
        // 0xFFFFFFFF 0x00000000 (current) or 0x00000000 (pre-0.15 legacy).
        if (s.Length >= 8 && s[^8..^4].SequenceEqual((ReadOnlySpan<byte>)[0xFF, 0xFF, 0xFF, 0xFF]) && s[^4..].SequenceEqual((ReadOnlySpan<byte>)[0, 0, 0, 0])) return true;
        return s.Length >= 4 && s[^4..].SequenceEqual((ReadOnlySpan<byte>)[0, 0, 0, 0]);
    }

    /// <summary>Batch index and row within it for a shard-local row.</summary>
    public (int Batch, int Row) Locate(long row)
    {
        if ((ulong)row >= (ulong)RowCount) throw new ArgumentOutOfRangeException(nameof(row), $"row {row} is outside [0, {RowCount}).");
        int lo = 0, hi = _batches.Count - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (_batchStarts[mid] <= row) lo = mid; else hi = mid - 1;
        }
        return (lo, (int)(row - _batchStarts[lo]));
    }

    public long BatchStart(int batch) => _batchStarts[batch];

    public void Dispose()
    {
        foreach (var b in _batches) b.Dispose();
        _batches.Clear();
        ((IDisposable?)_mapped)?.Dispose();
    }
}
