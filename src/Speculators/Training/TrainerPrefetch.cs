using System.Diagnostics;
using System.Threading.Channels;

namespace Speculators.Training;

/// <summary>One batch to load: dataset rows and where it sits in the run.</summary>
internal readonly record struct BatchWork(IReadOnlyList<int> Rows, BatchContext Context);

/// <summary>
/// Loads batches ahead of the training loop on a background task through a bounded channel (depth
/// <c>--prefetch-factor</c>), so data loading overlaps compute; depth 0 loads on the calling thread. Batches
/// come out in order. Dispose stops the producer and disposes batches never taken.
/// </summary>
internal sealed class BatchPrefetcher : IDisposable
{
    readonly ITrainingAlgorithm _algorithm;
    readonly IEnumerator<BatchWork>? _syncWork;
    readonly Channel<ITrainingBatch>? _channel;
    readonly Task? _producer;
    readonly CancellationTokenSource _cts = new();

    public BatchPrefetcher(ITrainingAlgorithm algorithm, IEnumerable<BatchWork> work, int depth)
    {
        _algorithm = algorithm;
        if (depth <= 0)
        {
            _syncWork = work.GetEnumerator();
            return;
        }
        _channel = Channel.CreateBounded<ITrainingBatch>(new BoundedChannelOptions(depth)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        var writer = _channel.Writer;
        var token = _cts.Token;
        _producer = Task.Run(async () =>
        {
            Exception? error = null;
            try
            {
                foreach (var w in work)
                {
                    token.ThrowIfCancellationRequested();
                    var batch = await algorithm.LoadBatchAsync(w.Rows, w.Context, token).ConfigureAwait(false);
                    try
                    {
                        await writer.WriteAsync(batch, token).ConfigureAwait(false);
                    }
                    catch
                    {
                        batch.Dispose();
                        throw;
                    }
                }
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                error = e;
            }
            writer.TryComplete(error);
        });
    }

    /// <summary>Time the consumer spent waiting for batches (the profile's <c>fetch_ms</c>).</summary>
    public TimeSpan Waited { get; private set; }

    /// <summary>The next batch (owned by the caller), or false when the work is done. Loader errors surface here.</summary>
    public bool TryTake(out ITrainingBatch? batch)
    {
        var sw = Stopwatch.StartNew();
        try
        {
            if (_syncWork != null)
            {
                if (!_syncWork.MoveNext())
                {
                    batch = null;
                    return false;
                }
                var w = _syncWork.Current;
                batch = _algorithm.LoadBatchAsync(w.Rows, w.Context, CancellationToken.None).AsTask().GetAwaiter().GetResult();
                return true;
            }
            var reader = _channel!.Reader;
            while (true)
            {
                if (reader.TryRead(out var b))
                {
                    batch = b;
                    return true;
                }
                if (!reader.WaitToReadAsync().AsTask().GetAwaiter().GetResult())
                {
                    // Completed: rethrow a loader failure.
                    if (reader.Completion.IsFaulted) reader.Completion.GetAwaiter().GetResult();
                    batch = null;
                    return false;
                }
            }
        }
        finally
        {
            Waited += sw.Elapsed;
        }
    }

    public void Dispose()
    {
        _cts.Cancel();
        if (_producer != null)
        {
            // Unblock a producer waiting on a full channel, then drain.
            while (_channel!.Reader.TryRead(out var b)) b.Dispose();
            try { _producer.Wait(); } catch (AggregateException) { }
            while (_channel.Reader.TryRead(out var b)) b.Dispose();
        }
        _syncWork?.Dispose();
        _cts.Dispose();
    }
}
