namespace Speculators.HiddenStates;

/// <summary>
/// The trainer's source of hidden states. Implementations: <see cref="HiddenStateProvider"/> (store files,
/// in-process generation, or both with speculators' <c>--on-missing</c> / <c>--on-generate</c> semantics);
/// <see cref="HiddenStatePrefetcher"/> runs any provider ahead of the consumer.
/// <para>
/// Contract: <see cref="GetAsync"/> returns one entry per requested row, in request order: a sample the caller
/// owns and must dispose, or null when the row is skipped (the reason is counted in <see cref="Stats"/>).
/// Calls may overlap (several batches in flight); implementations are thread-safe.
/// </para>
/// </summary>
public interface IHiddenStateProvider : IDisposable
{
    /// <summary>The layout every returned sample has.</summary>
    HiddenStateSpec Spec { get; }

    HiddenStateProviderStats Stats { get; }

    ValueTask<HiddenStateSample?[]> GetAsync(IReadOnlyList<int> rowIndices, CancellationToken cancellation = default);
}

/// <summary>Thread-safe counters of a provider: samples read, generated, cached, and skipped rows per reason.</summary>
public sealed class HiddenStateProviderStats
{
    long _loaded, _generated, _cached;
    readonly long[] _skipped = new long[Enum.GetValues<HiddenStateSkipReason>().Length];

    /// <summary>Samples read from store files.</summary>
    public long Loaded => Interlocked.Read(ref _loaded);
    /// <summary>Samples computed by the verifier.</summary>
    public long Generated => Interlocked.Read(ref _generated);
    /// <summary>Generated samples written to the store (<c>--on-generate cache</c>).</summary>
    public long Cached => Interlocked.Read(ref _cached);
    public long Skipped(HiddenStateSkipReason reason) => Interlocked.Read(ref _skipped[(int)reason]);
    public long SkippedTotal => Enum.GetValues<HiddenStateSkipReason>().Sum(Skipped);

    internal void AddLoaded() => Interlocked.Increment(ref _loaded);
    internal void AddGenerated(long n) => Interlocked.Add(ref _generated, n);
    internal void AddCached() => Interlocked.Increment(ref _cached);
    internal void AddSkipped(HiddenStateSkipReason reason) => Interlocked.Increment(ref _skipped[(int)reason]);

    /// <summary>e.g. "loaded 120, generated 8 (cached 8), skipped 2 (token mismatch 1, too long 1)".</summary>
    public string Summary()
    {
        var reasons = Enum.GetValues<HiddenStateSkipReason>().Where(r => Skipped(r) > 0).Select(r => $"{Describe(r)} {Skipped(r)}").ToList();
        return $"loaded {Loaded}, generated {Generated}" + (Cached > 0 ? $" (cached {Cached})" : "") +
               $", skipped {SkippedTotal}" + (reasons.Count > 0 ? $" ({string.Join(", ", reasons)})" : "");
    }

    public static string Describe(HiddenStateSkipReason r) => r switch
    {
        HiddenStateSkipReason.Missing => "missing",
        HiddenStateSkipReason.Unreadable => "unreadable",
        HiddenStateSkipReason.WrongKeys => "wrong keys",
        HiddenStateSkipReason.WrongDType => "wrong dtype",
        HiddenStateSkipReason.WrongShape => "wrong shape",
        HiddenStateSkipReason.TokenMismatch => "token mismatch",
        HiddenStateSkipReason.NonFinite => "NaN/Inf",
        HiddenStateSkipReason.TooLong => "too long",
        _ => r.ToString(),
    };
}
