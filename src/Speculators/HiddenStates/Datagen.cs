using System.Diagnostics;
using System.Globalization;
using System.Threading.Channels;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Util;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>Settings of an offline generation run (<c>speculators datagen</c>).</summary>
public sealed record DatagenOptions
{
    /// <summary>The verifier's local directory (already resolved).</summary>
    public required string ModelDirectory { get; init; }
    /// <summary>Name recorded in metadata.json (the model argument as given); default: the directory.</summary>
    public string? VerifierName { get; init; }
    /// <summary>The prepared dataset directory.</summary>
    public required string DataPath { get; init; }
    /// <summary>Store directory; default <c>{DataPath}/hidden_states</c>.</summary>
    public string? OutputDirectory { get; init; }
    /// <summary>Aux layer ids (never N); default Eagle-3's <c>[2, N//2, N−3]</c>.</summary>
    public IReadOnlyList<int>? AuxLayerIds { get; init; }
    /// <summary>Use only the first rows of the dataset (before the rank split).</summary>
    public int? MaxSamples { get; init; }
    /// <summary>Padded tokens per prefill.</summary>
    public long BatchTokens { get; init; } = 16384;
    /// <summary>Store dtype of <c>hidden_states</c> (bfloat16 default, float32).</summary>
    public ScalarType DType { get; init; } = ScalarType.BFloat16;
    /// <summary>Verifier compute dtype; null = <see cref="ComputeDType.Resolve"/> (the store dtype where the device computes it natively, else float32).</summary>
    public ScalarType? ComputeDType { get; init; }
    public Device? Device { get; init; }
    public int WorldSize { get; init; } = 1;
    public int Rank { get; init; }
    /// <summary>Fully validate existing files (including NaN/Inf) and re-read every written file.</summary>
    public bool Validate { get; init; }
    /// <summary>Longest row to run; default the verifier's max_position_embeddings.</summary>
    public int? MaxTokens { get; init; }
    public TooLongPolicy TooLong { get; init; } = TooLongPolicy.Skip;
    /// <summary>Start even when the disk seems too small for the estimate.</summary>
    public bool IgnoreDiskSpace { get; init; }

    /// <summary>Tests: free bytes to assume instead of asking the file system.</summary>
    internal long? FreeBytesOverride { get; init; }
    /// <summary>Tests: called after each file is renamed into place (row index); may throw to simulate a kill.</summary>
    internal Action<int>? AfterFileWritten { get; init; }
}

/// <summary>What a run will do, decided before the model is loaded.</summary>
public sealed record DatagenPlan
{
    public required string DataPath { get; init; }
    public required string OutputDirectory { get; init; }
    public required HiddenStateSpec Spec { get; init; }
    public required VerifierIdentity Verifier { get; init; }
    /// <summary>The dtype the verifier runs in.</summary>
    public required ScalarType ComputeDType { get; init; }
    public required Device Device { get; init; }
    /// <summary>This rank's share of the rows.</summary>
    public required RowRange Range { get; init; }
    /// <summary>Rows of the dataset considered (after --max-samples), over all ranks.</summary>
    public required int TargetRows { get; init; }
    /// <summary>Rows to run and the tokens each runs (after truncation), in row order. Token ids are read per batch.</summary>
    public required IReadOnlyList<PlannedRow> ToRun { get; init; }
    /// <summary>Rows of this rank whose valid file already exists.</summary>
    public required int AlreadyPresent { get; init; }
    /// <summary>Rows with a file under the final name that failed validation (regenerated).</summary>
    public required int InvalidExisting { get; init; }
    public required int TooLongSkipped { get; init; }
    public required int TooLongTruncated { get; init; }
    /// <summary>Leftover <c>.tmp</c> files of a killed run that were removed.</summary>
    public required int StaleTemporariesRemoved { get; init; }
    public long TokensToRun => ToRun.Sum(r => (long)r.Tokens);
    /// <summary>Disk space the new files take: T × (A+1) × H × bytes + T × 8 for token_ids + a header per file.</summary>
    public long BytesNeeded => TokensToRun * Spec.FileBytesPerToken + ToRun.Count * (long)HeaderBytesPerFile;
    public required long FreeBytes { get; init; }

    /// <summary>Upper bound of a file's safetensors header (JSON for two tensors, padded).</summary>
    public const int HeaderBytesPerFile = 256;

    public string Describe()
    {
        var w = new System.Text.StringBuilder();
        w.AppendLine(
            $"verifier: {Verifier.Name} (N={Verifier.NumHiddenLayers}, H={Verifier.HiddenSize}, vocab {Verifier.VocabSize}), " +
            $"computing in {HiddenStateSpec.DTypeName(ComputeDType)} on {Device}");
        w.AppendLine(CultureInfo.InvariantCulture, $"store:    {OutputDirectory} ({Spec})");
        w.AppendLine($"rows:     {Range} of {TargetRows}; {ToRun.Count} to run, {AlreadyPresent} already present" +
            (InvalidExisting > 0 ? $", {InvalidExisting} invalid (regenerated)" : "") +
            (TooLongSkipped > 0 ? $", {TooLongSkipped} too long (skipped)" : "") +
            (TooLongTruncated > 0 ? $", {TooLongTruncated} too long (truncated to {Spec.MaxTokens})" : ""));
        w.Append(
            $"disk:     {TokensToRun:N0} tokens × {Spec.LayerCount} layers × {Spec.HiddenSize} × {Spec.ElementBytes} B ≈ {Bytes(BytesNeeded)} " +
            $"({Spec.FileBytesPerToken:N0} B/token); {Bytes(FreeBytes)} free");
        return w.ToString();
    }

    public static string Bytes(double b) =>
        b >= 1L << 40 ? $"{b / (1L << 40):F2} TiB" : b >= 1 << 30 ? $"{b / (1 << 30):F2} GiB" : b >= 1 << 20 ? $"{b / (1 << 20):F1} MiB" : $"{b / 1024:F1} KiB";
}

/// <summary>A row a run will generate: its index and how many tokens run (the row, or its truncated prefix).</summary>
public readonly record struct PlannedRow(int Row, int Tokens);

/// <summary>Outcome of a run.</summary>
public sealed record DatagenSummary
{
    public required DatagenPlan Plan { get; init; }
    public required int RowsWritten { get; init; }
    public required long TokensWritten { get; init; }
    public required long BytesWritten { get; init; }
    public required long Prefills { get; init; }
    public required long PaddedTokens { get; init; }
    public required TimeSpan Elapsed { get; init; }
    public double TokensPerSecond => Elapsed.TotalSeconds > 0 ? TokensWritten / Elapsed.TotalSeconds : 0;
    public double BytesPerToken => TokensWritten > 0 ? (double)BytesWritten / TokensWritten : Plan.Spec.FileBytesPerToken;

    public string Describe() =>
        (
            $"wrote {RowsWritten} files ({TokensWritten:N0} tokens, {DatagenPlan.Bytes(BytesWritten)}) to {Plan.OutputDirectory} in {Progress.FormatTime(Elapsed)}: " +
            $"{TokensPerSecond:F0} tokens/s, {BytesPerToken:F0} bytes/token ({HiddenStateSpec.DTypeName(Plan.Spec.DType)}), " +
            $"{Prefills} prefills, padding {(PaddedTokens > 0 ? 100.0 * (PaddedTokens - TokensWritten) / PaddedTokens : 0):F1}%; " +
            $"{Plan.AlreadyPresent} already present" +
            (Plan.TooLongSkipped > 0 ? $", {Plan.TooLongSkipped} skipped as too long" : "") +
            (Plan.TooLongTruncated > 0 ? $", {Plan.TooLongTruncated} truncated" : "") + ".");
}

/// <summary>
/// Offline hidden-state generation with the in-process verifier: the .NET counterpart of speculators'
/// data_generation_offline.py (speculators.md §1.2, §6.6). Everything that can be checked without the weights is
/// checked first (<see cref="PlanRun"/>): config, layer ids, store metadata, token ids against the vocabulary,
/// existing files, disk space. Then rows run in token-budget prefills and each row's file is written atomically by a
/// writer task while the next prefill runs. Resumable: rows with a valid file are skipped; leftover <c>.tmp</c> files
/// of a killed run (this rank's rows only) are removed.
/// </summary>
public static class HiddenStateDatagen
{
    /// <summary>Decides what to do; reads config.json and the data but not the weights. Throws on any mismatch.</summary>
    public static DatagenPlan PlanRun(DatagenOptions o)
    {
        string output = o.OutputDirectory ?? Path.Combine(o.DataPath, "hidden_states");
        var config = HfConfig.Load(o.ModelDirectory).ToDecoderConfig();
        var verifier = VerifierIdentity.FromConfig(config, o.VerifierName ?? o.ModelDirectory, VerifierIdentity.ComputeFingerprint(o.ModelDirectory));
        var aux = o.AuxLayerIds ?? Modeling.AuxLayerIds.Default(config.NumLayers);
        int maxTokens = o.MaxTokens ?? config.MaxPositionEmbeddings;
        if (o.MaxTokens is int m && m > config.MaxPositionEmbeddings)
            throw new SpeculatorsException(
                $"--max-tokens {m} exceeds the verifier's max_position_embeddings ({config.MaxPositionEmbeddings}); " +
                "its hidden states past that length would not be meaningful.");
        var spec = HiddenStateSpec.ForVerifier(aux, config.NumLayers, config.HiddenSize, o.DType, maxTokens, o.TooLong);

        var existing = Directory.Exists(output) ? HiddenStateStoreMetadata.Load(output) : null;
        if (existing != null)
        {
            var problems = existing.Mismatches(spec, verifier);
            if (problems.Count > 0)
                throw new SpeculatorsException(
                    $"{HiddenStateStoreMetadata.PathIn(output)} describes a different store than this run would write:\n  " +
                    string.Join("\n  ", problems) + "\nUse another --output directory, or delete this one to start over.");
        }

        using var data = PreparedDataset.Open(o.DataPath);
        if (o.MaxSamples is < 0) throw new SpeculatorsException($"--max-samples must be non-negative, found {o.MaxSamples}.");
        int target = (int)Math.Min(data.Count, o.MaxSamples ?? long.MaxValue);
        var range = RowRange.ForRank(target, o.WorldSize, o.Rank);

        // Token ids must fit the verifier's vocabulary: a mismatch means the data was prepared for another model.
        // Rows are streamed (one at a time), so planning needs memory for the longest row only.
        int stale = HiddenStateFile.DeleteStaleTemporaries(output, range.Start, range.Count);
        var toRun = new List<PlannedRow>();
        int present = 0, invalid = 0, tooLongSkipped = 0, truncated = 0;
        for (int row = range.Start; row < range.End; row++)
        {
            var ids = new long[data.SeqLens[row]];
            data.CopyInputIds(row, ids);
            foreach (long t in ids)
                if (t < 0 || t >= config.VocabSize)
                    throw new SpeculatorsException(
                        $"{o.DataPath}: row {row} has token id {t}, outside the vocabulary [0, {config.VocabSize}) of {verifier.Name}; " +
                        "the data was prepared with another tokenizer than this verifier's.");
            var expected = spec.ExpectedTokens(ids);
            if (expected == null)
            {
                tooLongSkipped++;
                continue;
            }
            if (expected.Length < ids.Length) truncated++;
            if (expected.Length == 0) continue;
            string path = HiddenStateFile.PathFor(output, row);
            if (File.Exists(path))
            {
                var check = HiddenStateFile.Check(path, expected, spec, checkFinite: o.Validate);
                if (check.Ok)
                {
                    present++;
                    continue;
                }
                invalid++;
                Log.Warn(check.Message + " It will be regenerated.");
            }
            toRun.Add(new PlannedRow(row, expected.Length));
        }

        return new DatagenPlan
        {
            DataPath = o.DataPath,
            OutputDirectory = output,
            Spec = spec,
            Verifier = verifier,
            ComputeDType = HiddenStates.ComputeDType.Resolve(o.DType, o.ComputeDType, o.Device ?? TorchSharp.torch.CPU),
            Device = o.Device ?? TorchSharp.torch.CPU,
            Range = range,
            TargetRows = target,
            ToRun = toRun,
            AlreadyPresent = present,
            InvalidExisting = invalid,
            TooLongSkipped = tooLongSkipped,
            TooLongTruncated = truncated,
            StaleTemporariesRemoved = stale,
            FreeBytes = o.FreeBytesOverride ?? FreeSpace(output),
        };
    }

    /// <summary>Free bytes on the file system that holds <paramref name="path"/> (or its nearest existing ancestor).</summary>
    public static long FreeSpace(string path)
    {
        var dir = new DirectoryInfo(Path.GetFullPath(path));
        while (dir != null && !dir.Exists) dir = dir.Parent;
        if (dir == null) return long.MaxValue;
        try
        {
            return new DriveInfo(dir.FullName).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return long.MaxValue;
        }
    }

    /// <summary>Plans, prints the plan, checks disk space, then generates and writes the files.</summary>
    public static DatagenSummary Run(DatagenOptions o, CancellationToken cancellation = default)
    {
        var plan = PlanRun(o);
        Log.Info(plan.Describe());
        if (plan.StaleTemporariesRemoved > 0)
            Log.Info($"removed {plan.StaleTemporariesRemoved} partial file(s) (*.tmp) left by an interrupted run.");
        if (plan.BytesNeeded > plan.FreeBytes && !o.IgnoreDiskSpace)
            throw new SpeculatorsException(
                $"{plan.OutputDirectory}: this run needs about {DatagenPlan.Bytes(plan.BytesNeeded)} but only {DatagenPlan.Bytes(plan.FreeBytes)} is free. " +
                "Free space, use --max-samples or --world-size/--rank to do part of the rows, --dtype bfloat16 to halve it, " +
                "or pass --ignore-disk-space to start anyway.");

        HiddenStateStore.EnsureMetadata(plan.OutputDirectory, plan.Spec, plan.Verifier);
        var clock = Stopwatch.StartNew();
        if (plan.ToRun.Count == 0)
            return new DatagenSummary { Plan = plan, RowsWritten = 0, TokensWritten = 0, BytesWritten = 0, Prefills = 0, PaddedTokens = 0, Elapsed = clock.Elapsed };

        Log.Info($"loading the verifier from {o.ModelDirectory} ({HiddenStateSpec.DTypeName(plan.ComputeDType)}, {plan.Device})");
        using var model = CausalLM.LoadFromDirectory(o.ModelDirectory, plan.ComputeDType, plan.Device);
        using var generator = new HiddenStateGenerator(model, plan.Spec, o.BatchTokens);
        clock.Restart();
        var (rows, tokens, bytes) = GenerateAndWrite(plan, generator, o, cancellation);
        return new DatagenSummary
        {
            Plan = plan,
            RowsWritten = rows,
            TokensWritten = tokens,
            BytesWritten = bytes,
            Prefills = generator.Prefills,
            PaddedTokens = generator.PaddedTokensRun,
            Elapsed = clock.Elapsed,
        };
    }

    static (int Rows, long Tokens, long Bytes) GenerateAndWrite(DatagenPlan plan, HiddenStateGenerator generator, DatagenOptions o, CancellationToken cancellation)
    {
        using var progress = new Progress("datagen", plan.TokensToRun, "tokens");
        // Prefills run on this thread; one writer task saves files meanwhile. Two batches may wait (bounded memory).
        var queue = Channel.CreateBounded<HiddenStateSample[]>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
        int rows = 0;
        long tokens = 0, bytes = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        var writer = Task.Run(async () =>
        {
            try
            {
                await foreach (var batch in queue.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                {
                    try
                    {
                        foreach (var s in batch)
                        {
                            stop.Token.ThrowIfCancellationRequested();
                            string path = HiddenStateFile.PathFor(plan.OutputDirectory, s.Row);
                            HiddenStateFile.Write(path, s.Hidden, s.TokenIds, plan.Spec);
                            if (o.Validate)
                            {
                                var check = HiddenStateFile.Check(path, s.TokenIds, plan.Spec, checkFinite: true);
                                if (!check.Ok)
                                    throw new SpeculatorsException($"{check.Message} (re-read right after writing; the verifier produced an invalid result).");
                            }
                            rows++;
                            tokens += s.Length;
                            bytes += new FileInfo(path).Length;
                            progress.SetStatus($"{rows}/{plan.ToRun.Count} rows");
                            progress.Advance(s.Length);
                            o.AfterFileWritten?.Invoke(s.Row);
                        }
                    }
                    finally
                    {
                        foreach (var s in batch) s.Dispose();
                    }
                }
            }
            catch
            {
                stop.Cancel(); // unblock the producer waiting on a full queue
                throw;
            }
        });
        Exception? generationFailure = null, writerFailure = null;
        try
        {
            using var data = PreparedDataset.Open(plan.DataPath);
            var lengths = plan.ToRun.Select(r => r.Tokens).ToArray();
            foreach (var positions in TokenBudgetBatcher.Plan(lengths, generator.BatchTokens))
            {
                stop.Token.ThrowIfCancellationRequested();
                var requests = positions.Select(k =>
                {
                    var (row, n) = plan.ToRun[k];
                    var ids = new long[data.SeqLens[row]];
                    data.CopyInputIds(row, ids);
                    return new GenerationRequest(row, n == ids.Length ? ids : ids[..n]);
                }).ToList();
                HiddenStateSample[] batch;
                // The writer task allocates while this thread prefills: keep GCs out of the native calls (TorchGcFence).
                using (TorchGcFence.Enter()) batch = generator.RunBatch(requests);
                try
                {
                    queue.Writer.WriteAsync(batch, stop.Token).AsTask().GetAwaiter().GetResult();
                }
                catch
                {
                    foreach (var s in batch) s.Dispose();
                    throw;
                }
            }
        }
        catch (Exception e)
        {
            generationFailure = e;
            stop.Cancel();
        }
        queue.Writer.TryComplete();
        try
        {
            writer.GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            writerFailure = e;
        }
        while (queue.Reader.TryRead(out var left))
            foreach (var s in left) s.Dispose();
        // The root cause first: a writer error (disk full) cancels the producer, and a generation error cancels the writer.
        var failure = generationFailure switch
        {
            null => writerFailure,
            OperationCanceledException when writerFailure != null => writerFailure,
            _ => generationFailure,
        };
        if (failure != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        return (rows, tokens, bytes);
    }
}
