using System.Collections.Concurrent;
using Speculators.Data;
using Speculators.Util;

namespace Speculators.HiddenStates;

/// <summary>speculators' <c>--on-missing</c>: what to do when a row has no file in the store.</summary>
public enum OnMissing
{
    /// <summary>Run the verifier for it (needs a <see cref="HiddenStateGenerator"/>).</summary>
    Generate,
    /// <summary>Skip the row silently (counted).</summary>
    Skip,
    /// <summary>Skip the row with a warning (counted).</summary>
    Warn,
    /// <summary>Stop with an error naming the file.</summary>
    Raise,
}

/// <summary>speculators' <c>--on-generate</c>: what happens to states generated for a missing row.</summary>
public enum OnGenerate
{
    /// <summary>Use them and forget them: nothing is written (online mode).</summary>
    Delete,
    /// <summary>Also write them to the store as <c>hs_{i}.safetensors</c>, so later epochs read the file (hybrid mode).</summary>
    Cache,
}

public sealed record HiddenStateProviderOptions
{
    /// <summary>The store directory (<c>hs_{i}.safetensors</c> + <c>metadata.json</c>); null = no store (pure online generation).</summary>
    public string? StoreDirectory { get; init; }
    public OnMissing OnMissing { get; init; } = OnMissing.Raise;
    public OnGenerate OnGenerate { get; init; } = OnGenerate.Delete;
    /// <summary>Files read at the same time within one request (thread-pool workers).</summary>
    public int MaxConcurrentReads { get; init; } = 4;
    /// <summary>Reject files with NaN/Inf (costs one pass over each file's data).</summary>
    public bool CheckFinite { get; init; } = true;
    /// <summary>The verifier, recorded in <c>metadata.json</c> when generated rows are cached into a store without one.</summary>
    public VerifierIdentity? Verifier { get; init; }
    /// <summary>Individual warnings for bad or missing files before they are only counted.</summary>
    public int MaxWarnings { get; init; } = 20;
}

/// <summary>
/// Hidden states for prepared rows, from the store, from the verifier, or both:
/// <list type="bullet">
/// <item><b>file</b> (offline): <c>OnMissing = Raise|Skip|Warn</c>, no generator;</item>
/// <item><b>generate</b> (online): <c>StoreDirectory = null</c> (or a store to read first), <c>OnMissing = Generate</c>,
/// <c>OnGenerate = Delete</c>: nothing is ever written;</item>
/// <item><b>hybrid</b>: <c>OnMissing = Generate</c>, <c>OnGenerate = Cache</c>: rows without a file are generated and
/// written to the store (atomically), so the first epoch fills it and later epochs read it.</item>
/// </list>
/// For every row the prepared <c>input_ids</c> decide what is expected (<see cref="HiddenStateSpec.ExpectedTokens"/>): a row
/// longer than the store's context is skipped (<see cref="HiddenStateSkipReason.TooLong"/>) or compared with its truncated prefix.
/// A file that exists but is invalid (unreadable, wrong keys/dtype/shape, token ids differing from the row, NaN/Inf) is
/// reported with its path and the row is skipped and counted — it is not regenerated, as in speculators. Missing files
/// in one request that are generated share prefills (batched by the generator's token budget).
/// <para>Thread-safe; overlapping <see cref="GetAsync"/> calls are fine (prefills run one at a time).</para>
/// </summary>
public sealed class HiddenStateProvider : IHiddenStateProvider
{
    readonly PreparedDataset _data;
    readonly HiddenStateProviderOptions _options;
    readonly HiddenStateGenerator? _generator;
    readonly bool _ownsGenerator;
    readonly SemaphoreSlim _reads;
    readonly ConcurrentDictionary<int, byte> _writing = new();
    readonly object _metadataGate = new();
    bool _metadataReady;
    int _warnings;

    public HiddenStateSpec Spec { get; }
    public HiddenStateProviderStats Stats { get; } = new();

    /// <param name="data">the prepared dataset (row i ↔ hs_i)</param>
    /// <param name="spec">the store layout (<see cref="HiddenStateStore.ResolveSpec"/>)</param>
    /// <param name="options">store directory and policies</param>
    /// <param name="generator">required for <see cref="OnMissing.Generate"/>; its spec must equal <paramref name="spec"/></param>
    /// <param name="ownsGenerator">dispose the generator (and its model, if it owns it) with this provider</param>
    public HiddenStateProvider(PreparedDataset data, HiddenStateSpec spec, HiddenStateProviderOptions options,
        HiddenStateGenerator? generator = null, bool ownsGenerator = false)
    {
        if (options.OnMissing == OnMissing.Generate && generator == null)
            throw new SpeculatorsException("--on-missing generate needs a verifier to generate with (none was given).");
        if (options.OnMissing != OnMissing.Generate && options.StoreDirectory == null)
            throw new SpeculatorsException($"--on-missing {options.OnMissing.ToString().ToLowerInvariant()} needs a hidden-state store directory.");
        if (options.OnGenerate == OnGenerate.Cache && options.StoreDirectory == null)
            throw new SpeculatorsException("--on-generate cache needs a hidden-state store directory to cache into.");
        if (options.OnGenerate == OnGenerate.Cache && options.OnMissing == OnMissing.Generate && options.Verifier == null)
            throw new SpeculatorsException("--on-generate cache needs the verifier identity to record in the store's metadata.json.");
        if (generator != null)
        {
            var g = generator.Spec;
            if (!g.LayerIds.SequenceEqual(spec.LayerIds) || g.HiddenSize != spec.HiddenSize || g.DType != spec.DType)
                throw new SpeculatorsException($"the generator produces {g}, but the store holds {spec}.");
        }
        if (options.MaxConcurrentReads < 1) throw new SpeculatorsException($"concurrent reads must be at least 1, found {options.MaxConcurrentReads}.");
        _data = data;
        Spec = spec;
        _options = options;
        _generator = generator;
        _ownsGenerator = ownsGenerator;
        _reads = new SemaphoreSlim(options.MaxConcurrentReads);
    }

    public async ValueTask<HiddenStateSample?[]> GetAsync(IReadOnlyList<int> rowIndices, CancellationToken cancellation = default)
    {
        var results = new HiddenStateSample?[rowIndices.Count];
        try
        {
            var expected = new long[]?[rowIndices.Count];
            var reads = new List<Task<(int Slot, HiddenStateSample? Sample, HiddenStateFileCheck Check)>>();
            var missing = new List<int>();
            for (int k = 0; k < rowIndices.Count; k++)
            {
                int row = rowIndices[k];
                if (row < 0 || row >= _data.Count)
                    throw new SpeculatorsException($"row {row} is outside the prepared dataset {_data.Directory} ({_data.Count} rows).");
                var ids = new long[_data.SeqLens[row]];
                _data.CopyInputIds(row, ids);
                expected[k] = Spec.ExpectedTokens(ids);
                if (expected[k] == null)
                {
                    Stats.AddSkipped(HiddenStateSkipReason.TooLong);
                    continue;
                }
                if (_options.StoreDirectory == null)
                {
                    missing.Add(k);
                    continue;
                }
                int slot = k;
                reads.Add(ReadAsync(slot, row, expected[k]!, cancellation));
            }

            foreach (var (slot, sample, check) in await Task.WhenAll(reads).ConfigureAwait(false))
            {
                if (sample != null)
                {
                    results[slot] = sample;
                    Stats.AddLoaded();
                }
                else if (check.Problem == HiddenStateSkipReason.Missing) missing.Add(slot);
                else
                {
                    Stats.AddSkipped(check.Problem!.Value);
                    Report(check.Message!);
                }
            }

            var toGenerate = new List<GenerationRequest>();
            foreach (int k in missing)
            {
                int row = rowIndices[k];
                string where = _options.StoreDirectory != null ? HiddenStateFile.PathFor(_options.StoreDirectory, row) : $"row {row}";
                switch (_options.OnMissing)
                {
                    case OnMissing.Raise:
                        throw new SpeculatorsException(
                            $"{where}: no hidden states for row {row} (--on-missing raise). Generate the store with `speculators datagen`, " +
                            "or train with --on-missing generate|skip|warn.");
                    case OnMissing.Skip:
                        Stats.AddSkipped(HiddenStateSkipReason.Missing);
                        break;
                    case OnMissing.Warn:
                        Stats.AddSkipped(HiddenStateSkipReason.Missing);
                        Report($"{where}: no hidden states for row {row}; skipped (--on-missing warn).");
                        break;
                    case OnMissing.Generate:
                        toGenerate.Add(new GenerationRequest(row, expected[k]!));
                        break;
                }
            }
            if (toGenerate.Count > 0)
            {
                var generated = await Task.Run(() => _generator!.Generate(toGenerate, cancellation), cancellation).ConfigureAwait(false);
                Stats.AddGenerated(generated.Length);
                // toGenerate was built from `missing` in order, so the k-th generated sample belongs to missing[k].
                for (int g = 0; g < generated.Length; g++) results[missing[g]] = generated[g];
                if (_options.OnGenerate == OnGenerate.Cache)
                    await Task.Run(() => Cache(generated), cancellation).ConfigureAwait(false);
            }
            return results;
        }
        catch
        {
            foreach (var s in results) s?.Dispose();
            throw;
        }
    }

    async Task<(int, HiddenStateSample?, HiddenStateFileCheck)> ReadAsync(int slot, int row, long[] expected, CancellationToken cancellation)
    {
        await _reads.WaitAsync(cancellation).ConfigureAwait(false);
        try
        {
            return await Task.Run(() =>
            {
                var (sample, check) = HiddenStateFile.Read(HiddenStateFile.PathFor(_options.StoreDirectory!, row), row, expected, Spec, _options.CheckFinite);
                return (slot, sample, check);
            }, cancellation).ConfigureAwait(false);
        }
        finally
        {
            _reads.Release();
        }
    }

    void Cache(HiddenStateSample[] samples)
    {
        string dir = _options.StoreDirectory!;
        lock (_metadataGate)
        {
            if (!_metadataReady)
            {
                HiddenStateStore.EnsureMetadata(dir, Spec, _options.Verifier!);
                _metadataReady = true;
            }
        }
        foreach (var s in samples)
        {
            if (!_writing.TryAdd(s.Row, 0)) continue; // another request is writing the same row
            try
            {
                string path = HiddenStateFile.PathFor(dir, s.Row);
                if (!File.Exists(path))
                {
                    HiddenStateFile.Write(path, s.Hidden, s.TokenIds, Spec);
                    Stats.AddCached();
                }
            }
            finally
            {
                _writing.TryRemove(s.Row, out _);
            }
        }
    }

    void Report(string message)
    {
        int n = Interlocked.Increment(ref _warnings);
        if (n <= _options.MaxWarnings) Log.Warn(message);
        else if (n == _options.MaxWarnings + 1)
            Log.Warn($"more hidden-state problems follow; they are counted, not printed (the provider's stats summarize them).");
    }

    public void Dispose()
    {
        _reads.Dispose();
        if (_ownsGenerator) _generator?.Dispose();
    }
}
