namespace Speculators.HiddenStates;

/// <summary>One batch handed out by <see cref="HiddenStatePrefetcher"/>. Disposing it disposes every sample it still holds.</summary>
public sealed class PrefetchedBatch : IDisposable
{
    internal PrefetchedBatch(int index, IReadOnlyList<int> rows, HiddenStateSample?[] samples)
    {
        Index = index;
        Rows = rows;
        Samples = samples;
    }

    /// <summary>Position of this batch in the schedule (0, 1, 2, …).</summary>
    public int Index { get; }
    /// <summary>The requested rows.</summary>
    public IReadOnlyList<int> Rows { get; }
    /// <summary>One entry per row in <see cref="Rows"/>: the sample, or null when the row was skipped.</summary>
    public HiddenStateSample?[] Samples { get; }

    public void Dispose()
    {
        foreach (var s in Samples) s?.Dispose();
    }
}

/// <summary>
/// Runs a provider ahead of the trainer: given the schedule of row batches (e.g. one epoch of the multipack
/// sampler), it keeps up to <c>maxInFlight</c> future batches being fetched while the caller works on the
/// current one, and hands batches out strictly in schedule order. Bounded: at most <c>maxInFlight</c> provider
/// calls run at once and at most <c>maxInFlight</c> batches are fetched or waiting, so memory stays at
/// (maxInFlight + 1) batches of hidden states (the one the caller holds included).
/// <para>
/// Usage: <c>await using var p = new HiddenStatePrefetcher(provider, batches, 2);
/// while (await p.NextAsync() is { } batch) { using (batch) { … } }</c>. Samples inside a batch belong to the
/// caller (dispose the batch, or take samples out and dispose them). Disposing the prefetcher cancels what is
/// in flight and disposes batches nobody took. One consumer at a time.
/// </para>
/// </summary>
public sealed class HiddenStatePrefetcher : IDisposable, IAsyncDisposable
{
    readonly IHiddenStateProvider _provider;
    readonly IEnumerator<IReadOnlyList<int>> _schedule;
    readonly int _maxInFlight;
    readonly CancellationTokenSource _cts;
    readonly Queue<(int Index, IReadOnlyList<int> Rows, Task<HiddenStateSample?[]> Fetch)> _pending = new();
    int _next;
    bool _exhausted, _disposed;

    public HiddenStatePrefetcher(IHiddenStateProvider provider, IEnumerable<IReadOnlyList<int>> batches, int maxInFlight = 2,
        CancellationToken cancellation = default)
    {
        if (maxInFlight < 1) throw new ArgumentOutOfRangeException(nameof(maxInFlight), "at least one batch must be in flight");
        _provider = provider;
        _schedule = batches.GetEnumerator();
        _maxInFlight = maxInFlight;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
    }

    /// <summary>Batches being fetched or fetched and not yet taken.</summary>
    public int InFlight => _pending.Count;

    void Fill()
    {
        while (!_exhausted && _pending.Count < _maxInFlight)
        {
            if (!_schedule.MoveNext())
            {
                _exhausted = true;
                break;
            }
            var rows = _schedule.Current.ToArray();
            var token = _cts.Token;
            _pending.Enqueue((_next++, rows, Task.Run(() => _provider.GetAsync(rows, token).AsTask(), token)));
        }
    }

    /// <summary>The next batch in schedule order, or null when the schedule is done.</summary>
    public async ValueTask<PrefetchedBatch?> NextAsync()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Fill();
        if (_pending.Count == 0) return null;
        var (index, rows, fetch) = _pending.Dequeue();
        HiddenStateSample?[] samples;
        try
        {
            samples = await fetch.ConfigureAwait(false);
        }
        finally
        {
            Fill(); // keep maxInFlight batches going while the caller works on this one
        }
        return new PrefetchedBatch(index, rows, samples);
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        _cts.Cancel();
        while (_pending.Count > 0)
        {
            var (_, _, fetch) = _pending.Dequeue();
            try
            {
                foreach (var s in await fetch.ConfigureAwait(false)) s?.Dispose();
            }
            catch (Exception)
            {
                // Cancelled or failed fetches have already released their samples.
            }
        }
        _schedule.Dispose();
        _cts.Dispose();
    }

    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();
}
