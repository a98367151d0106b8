using System.Runtime.InteropServices;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Speculators.Util;

namespace Speculators.Data;

public sealed record PreparedDatasetWriterOptions
{
    /// <summary><c>save_to_disk</c>'s <c>max_shard_size</c> (decimal bytes; default "500MB").</summary>
    public long MaxShardBytes { get; init; } = HfDatasetLayout.DefaultMaxShardBytes;
    /// <summary>Rows per Arrow record batch (datasets' <c>DEFAULT_MAX_BATCH_SIZE</c>).</summary>
    public int BatchRows { get; init; } = 1000;
    /// <summary><c>_format_type</c> in state.json; speculators writes "torch".</summary>
    public string? FormatType { get; init; } = "torch";
    /// <summary>Replace the dataset files (shards, state.json, dataset_info.json) of an existing dataset in the directory.</summary>
    public bool Overwrite { get; init; }
    /// <summary><c>_fingerprint</c>; random 16 hex digits when null.</summary>
    public string? Fingerprint { get; init; }
}

/// <summary>What <see cref="PreparedDatasetWriter.Complete"/> wrote.</summary>
public sealed record PreparedDatasetSummary(string Directory, long Rows, long Tokens, IReadOnlyList<string> ShardFiles);

/// <summary>
/// Streams rows into a prepared dataset in HF <c>datasets</c> <c>save_to_disk</c> layout
/// (hf_formats.md §1): Arrow IPC stream shards of <c>input_ids: list&lt;int64&gt;</c>,
/// <c>loss_mask: list&lt;int64&gt;</c>, <c>seq_len: int64</c> with the <c>huggingface</c> schema
/// metadata, record batches of 1000 rows, <c>dataset_info.json</c> and <c>state.json</c>, so Python's
/// <c>datasets.load_from_disk</c> (and speculators' trainer) read it.
/// <para>
/// Rows are appended to a spool stream in a private staging directory; <see cref="Complete"/>
/// counts the shards with datasets' size rule (<c>int(nbytes / max_shard_size) + 1</c>, contiguous
/// equal-row splits), writes them, and publishes: a new directory appears by one rename; in an
/// existing directory the shards and <c>dataset_info.json</c> move in first and <c>state.json</c>
/// last. Files the writer did not create are never deleted. Disposing without Complete discards
/// the staging directory. <see cref="Append"/> may be called from several threads.
/// </para>
/// </summary>
public sealed class PreparedDatasetWriter : IDisposable
{
    readonly string _outputDir;
    readonly PreparedDatasetWriterOptions _options;
    readonly string _stagingDir;
    readonly bool _outputExisted;
    readonly object _gate = new();
    readonly Schema _schema;
    FileStream? _spoolStream;
    ArrowStreamWriter? _spoolWriter;
    readonly string _spoolPath;

    // Current batch.
    readonly List<long[]> _pendingIds = new();
    readonly List<long[]> _pendingMask = new();
    long _pendingTokens;

    long _rows;
    long _tokens;
    long _nbytes;
    bool _completed;
    bool _disposed;

    public long Count { get { lock (_gate) return _rows; } }
    public long TotalTokens { get { lock (_gate) return _tokens; } }

    public PreparedDatasetWriter(string outputDir, PreparedDatasetWriterOptions? options = null)
    {
        _options = options ?? new PreparedDatasetWriterOptions();
        if (_options.BatchRows <= 0) throw new ArgumentOutOfRangeException(nameof(options), "BatchRows must be positive");
        if (_options.MaxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(options), "MaxShardBytes must be positive");
        _outputDir = Path.GetFullPath(outputDir);
        string tag = Guid.NewGuid().ToString("N")[..10];
        _outputExisted = Directory.Exists(_outputDir);
        if (_outputExisted)
        {
            var existing = ExistingDatasetFiles(_outputDir);
            if (existing.Count > 0 && !_options.Overwrite)
                throw new SpeculatorsException(
                    $"{_outputDir} already holds a dataset ({string.Join(", ", existing.Take(4))}{(existing.Count > 4 ? ", …" : "")}); " +
                    "choose another output directory or pass --overwrite.");
            _stagingDir = Path.Combine(_outputDir, ".speculators-staging-" + tag);
            var stale = Directory.GetDirectories(_outputDir, ".speculators-staging-*");
            if (stale.Length > 0)
                Log.Warn($"{_outputDir}: {stale.Length} staging folder(s) of an interrupted earlier write ({Path.GetFileName(stale[0])}); they are not part of any dataset and may be deleted.");
        }
        else
        {
            if (File.Exists(_outputDir)) throw new SpeculatorsException($"{_outputDir} is a file; expected a directory for the prepared dataset.");
            string parent = Path.GetDirectoryName(_outputDir) ?? ".";
            Directory.CreateDirectory(parent);
            _stagingDir = Path.Combine(parent, "." + Path.GetFileName(_outputDir) + ".staging-" + tag);
        }
        Directory.CreateDirectory(_stagingDir);
        _schema = BuildSchema();
        _spoolPath = Path.Combine(_stagingDir, "spool.arrow");
        _spoolStream = new FileStream(_spoolPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        _spoolWriter = new ArrowStreamWriter(_spoolStream, _schema, leaveOpen: true);
        _spoolWriter.WriteStart();
    }

    static List<string> ExistingDatasetFiles(string dir)
    {
        var found = new List<string>();
        foreach (var name in new[] { HfDatasetLayout.StateFile, HfDatasetLayout.DatasetInfoFile, HfDatasetLayout.DatasetDictFile })
            if (File.Exists(Path.Combine(dir, name))) found.Add(name);
        found.AddRange(Directory.EnumerateFiles(dir, "data-*-of-*.arrow").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal));
        return found;
    }

    internal static Schema BuildSchema()
    {
        var list = new ListType(new Field("item", Int64Type.Default, nullable: true));
        return new Schema.Builder()
            .Field(new Field("input_ids", list, nullable: true))
            .Field(new Field("loss_mask", list, nullable: true))
            .Field(new Field("seq_len", Int64Type.Default, nullable: true))
            .Metadata(HfDatasetLayout.SchemaMetadataKey, HfDatasetLayout.PreparedSchemaMetadata)
            .Build();
    }

    /// <summary>Appends one row. <paramref name="lossMask"/> values should be 0 or 1.</summary>
    public void Append(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> lossMask)
    {
        if (inputIds.Length != lossMask.Length)
            throw new ArgumentException($"input_ids has {inputIds.Length} tokens but loss_mask has {lossMask.Length}.");
        var ids = inputIds.ToArray();
        var mask = lossMask.ToArray();
        lock (_gate)
        {
            ThrowIfClosed();
            if ((long)_pendingTokens + ids.Length > int.MaxValue) FlushBatch();
            _pendingIds.Add(ids);
            _pendingMask.Add(mask);
            _pendingTokens += ids.Length;
            _rows++;
            _tokens += ids.Length;
            if (_pendingIds.Count >= _options.BatchRows) FlushBatch();
        }
    }

    public void Append(PreparedRow row) => Append(row.InputIds, row.LossMask);

    void ThrowIfClosed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_completed) throw new InvalidOperationException("the dataset writer is already completed");
    }

    void FlushBatch()
    {
        if (_pendingIds.Count == 0) return;
        using var batch = BuildBatch(_schema, _pendingIds, _pendingMask);
        _spoolWriter!.WriteRecordBatch(batch);
        // pyarrow's Table.nbytes for this chunk: offsets (n+1)·4 per list column, values, seq_len; no validity bitmaps.
        int n = _pendingIds.Count;
        _nbytes += 2L * 4 * (n + 1) + 2L * 8 * _pendingTokens + 8L * n;
        _pendingIds.Clear();
        _pendingMask.Clear();
        _pendingTokens = 0;
    }

    internal static RecordBatch BuildBatch(Schema schema, IReadOnlyList<long[]> ids, IReadOnlyList<long[]> masks)
    {
        int n = ids.Count;
        // Fill the Arrow buffers' bytes directly (one copy of the token data).
        var offsetBytes = new byte[4 * (n + 1)];
        var offsets = MemoryMarshal.Cast<byte, int>(offsetBytes.AsSpan());
        var seqBytes = new byte[8 * n];
        var seqLens = MemoryMarshal.Cast<byte, long>(seqBytes.AsSpan());
        for (int i = 0; i < n; i++)
        {
            offsets[i + 1] = checked(offsets[i] + ids[i].Length);
            seqLens[i] = ids[i].Length;
        }
        int total = offsets[n];
        var idBytes = new byte[8L * total];
        var maskBytes = new byte[8L * total];
        var idValues = MemoryMarshal.Cast<byte, long>(idBytes.AsSpan());
        var maskValues = MemoryMarshal.Cast<byte, long>(maskBytes.AsSpan());
        for (int i = 0; i < n; i++)
        {
            ids[i].CopyTo(idValues[offsets[i]..]);
            masks[i].CopyTo(maskValues[offsets[i]..]);
        }
        var listType = (ListType)schema.GetFieldByName("input_ids").DataType;
        var offsetsBuffer = new ArrowBuffer(offsetBytes);
        var idArray = new Int64Array(new ArrowBuffer(idBytes), ArrowBuffer.Empty, total, 0, 0);
        var maskArray = new Int64Array(new ArrowBuffer(maskBytes), ArrowBuffer.Empty, total, 0, 0);
        var idsList = new ListArray(listType, n, offsetsBuffer, idArray, ArrowBuffer.Empty, 0, 0);
        var maskList = new ListArray(listType, n, offsetsBuffer, maskArray, ArrowBuffer.Empty, 0, 0);
        var seqLen = new Int64Array(new ArrowBuffer(seqBytes), ArrowBuffer.Empty, n, 0, 0);
        return new RecordBatch(schema, [idsList, maskList, seqLen], n);
    }

    /// <summary>Writes the shards and JSON files and publishes the dataset. Returns what was written.</summary>
    public PreparedDatasetSummary Complete()
    {
        lock (_gate)
        {
            ThrowIfClosed();
            FlushBatch();
            _spoolWriter!.WriteEnd();
            _spoolWriter.Dispose();
            _spoolWriter = null;
            _spoolStream!.Flush(flushToDisk: true);
            _spoolStream.Dispose();
            _spoolStream = null;

            int shards = HfDatasetLayout.ShardCount(_nbytes, _rows, _options.MaxShardBytes);
            var names = Enumerable.Range(0, shards).Select(i => HfDatasetLayout.ShardName(i, shards)).ToList();
            if (shards == 1)
            {
                File.Move(_spoolPath, Path.Combine(_stagingDir, names[0]));
            }
            else
            {
                Reshard(names);
                File.Delete(_spoolPath);
            }
            string fingerprint = _options.Fingerprint ?? HfDatasetLayout.RandomFingerprint();
            AtomicFile.WriteAllText(Path.Combine(_stagingDir, HfDatasetLayout.DatasetInfoFile), HfDatasetLayout.PreparedDatasetInfoJson());
            AtomicFile.WriteAllText(Path.Combine(_stagingDir, HfDatasetLayout.StateFile), HfDatasetLayout.StateJson(names, fingerprint, _options.FormatType));
            Publish(names);
            _completed = true;
            return new PreparedDatasetSummary(_outputDir, _rows, _tokens, names);
        }
    }

    void Reshard(List<string> names)
    {
        using var spool = new ArrowShard(_spoolPath);
        int shards = names.Count;
        var ids = new List<long[]>();
        var masks = new List<long[]>();
        long row = 0;
        for (int s = 0; s < shards; s++)
        {
            var (start, end) = HfDatasetLayout.ShardRange(_rows, shards, s);
            string path = Path.Combine(_stagingDir, names[s]);
            using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
            using (var writer = new ArrowStreamWriter(fs, _schema, leaveOpen: true))
            {
                writer.WriteStart();
                long pendingTokens = 0;
                for (; row < end; row++)
                {
                    var (b, r) = spool.Locate(row);
                    var batch = spool.Batches[b];
                    var idsCol = batch.Column(0);
                    var maskCol = batch.Column(1);
                    int n = ArrowIntLists.Length(idsCol, r);
                    var rangeIds = ArrowIntLists.Range(idsCol, r)!.Value;
                    var rangeMask = ArrowIntLists.Range(maskCol, r)!.Value;
                    var idRow = new long[n];
                    var maskRow = new long[n];
                    ArrowIntLists.CopyValues(ArrowIntLists.Values(idsCol), rangeIds.Start, idRow);
                    ArrowIntLists.CopyValues(ArrowIntLists.Values(maskCol), rangeMask.Start, maskRow);
                    if (pendingTokens + n > int.MaxValue) { WriteBatch(writer, ids, masks); pendingTokens = 0; }
                    ids.Add(idRow);
                    masks.Add(maskRow);
                    pendingTokens += n;
                    if (ids.Count >= _options.BatchRows) { WriteBatch(writer, ids, masks); pendingTokens = 0; }
                }
                WriteBatch(writer, ids, masks);
                writer.WriteEnd();
            }
            fs.Flush(flushToDisk: true);
            if (row != end || start > end) throw new InvalidOperationException("shard row ranges are inconsistent");
        }
    }

    void WriteBatch(ArrowStreamWriter writer, List<long[]> ids, List<long[]> masks)
    {
        if (ids.Count == 0) return;
        using var batch = BuildBatch(_schema, ids, masks);
        writer.WriteRecordBatch(batch);
        ids.Clear();
        masks.Clear();
    }

    void Publish(List<string> shardNames)
    {
        if (!_outputExisted && !Directory.Exists(_outputDir))
        {
            Directory.Move(_stagingDir, _outputDir);
            return;
        }
        // Existing directory: move our files in; state.json last (load_from_disk needs it and
        // dataset_info.json, so a reader never sees new state.json with old shards).
        foreach (var name in shardNames.Append(HfDatasetLayout.DatasetInfoFile).Append(HfDatasetLayout.StateFile))
            File.Move(Path.Combine(_stagingDir, name), Path.Combine(_outputDir, name), overwrite: true);
        Directory.Delete(_stagingDir, recursive: false);
        var stale = Directory.EnumerateFiles(_outputDir, "data-*-of-*.arrow").Select(Path.GetFileName).OfType<string>()
            .Where(n => !shardNames.Contains(n)).ToList();
        if (stale.Count > 0)
            Log.Warn($"{_outputDir}: left {stale.Count} shard file(s) of an earlier dataset in place ({string.Join(", ", stale.Take(3))}); state.json does not list them.");
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _spoolWriter?.Dispose();
            _spoolStream?.Dispose();
            if (!_completed)
            {
                try { if (Directory.Exists(_stagingDir)) Directory.Delete(_stagingDir, recursive: true); }
                catch (IOException e) { Log.Warn($"could not remove the staging directory {_stagingDir}: {e.Message}"); }
            }
        }
    }
}
