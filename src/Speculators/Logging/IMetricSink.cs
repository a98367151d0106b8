namespace Speculators.Logging;

/// <summary>How a run ended, for backends that record it (TensorBoard hparams session status, W&amp;B exit code).</summary>
public enum RunOutcome
{
    Unknown = 0,
    Success = 1,
    Failure = 2,
    /// <summary>Stopped by SIGINT/SIGTERM after writing a resumable checkpoint.</summary>
    Interrupted = 3,
}

/// <summary>
/// Where training metrics go. Only the main rank logs. Keys are flat, <c>/</c>-separated
/// (<c>train/loss</c>, <c>val/cond_acc_1_epoch</c>, <c>lr/Muon</c>); <paramref name="step"/> is the global
/// optimizer step. The calls map onto every backend we target:
/// <list type="bullet">
/// <item>TensorBoard: scalars per key, text summaries, the hparams plugin.</item>
/// <item>W&amp;B (later): run config ← <see cref="LogHyperparameters"/>, history rows ← <see cref="Log"/>
/// (same-step calls merged by the sink), summary = last value per key, exit code ← <see cref="Finish"/>.</item>
/// <item>TrackIO (later): a config row and one JSON metrics row per <see cref="Log"/>.</item>
/// </list>
/// Implementations must not throw for a non-finite value (NaN, ±Inf): they record it as the backend allows.
/// </summary>
public interface IMetricSink : IDisposable
{
    /// <summary>
    /// The run's resolved configuration, once at start. Values are strings, booleans, numbers, null
    /// (skipped by backends that cannot store it), or anything else (stored as its JSON text).
    /// </summary>
    void LogHyperparameters(IReadOnlyDictionary<string, object?> hyperparameters);

    /// <summary>One record of scalar metrics at <paramref name="step"/>.</summary>
    void Log(IReadOnlyDictionary<string, double> metrics, long step);

    /// <summary>A text (markdown) entry, e.g. the command line or a non-numeric value.</summary>
    void LogText(string tag, string text, long step);

    /// <summary>Pushes buffered records to storage (called at checkpoints and at the end).</summary>
    void Flush();

    /// <summary>Marks the run finished with <paramref name="outcome"/> and flushes. Idempotent; <see cref="IDisposable.Dispose"/> calls it with <see cref="RunOutcome.Unknown"/> if it was not called.</summary>
    void Finish(RunOutcome outcome);
}

/// <summary>Fans every call out to several sinks (the <c>--logger tensorboard,console</c> list).</summary>
public sealed class CompositeSink : IMetricSink
{
    readonly IReadOnlyList<IMetricSink> _sinks;

    public CompositeSink(IEnumerable<IMetricSink> sinks) { _sinks = sinks.ToList(); }

    public CompositeSink(params IMetricSink[] sinks) : this((IEnumerable<IMetricSink>)sinks) { }

    public IReadOnlyList<IMetricSink> Sinks => _sinks;

    public void LogHyperparameters(IReadOnlyDictionary<string, object?> hyperparameters) => Each(s => s.LogHyperparameters(hyperparameters));
    public void Log(IReadOnlyDictionary<string, double> metrics, long step) => Each(s => s.Log(metrics, step));
    public void LogText(string tag, string text, long step) => Each(s => s.LogText(tag, text, step));
    public void Flush() => Each(s => s.Flush());
    public void Finish(RunOutcome outcome) => Each(s => s.Finish(outcome));
    public void Dispose() => Each(s => s.Dispose());

    /// <summary>Calls every sink even if one fails, then rethrows the failures.</summary>
    void Each(Action<IMetricSink> action)
    {
        List<Exception>? errors = null;
        foreach (var s in _sinks)
        {
            try { action(s); }
            catch (Exception e) { (errors ??= new()).Add(e); }
        }
        if (errors is { Count: 1 }) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(errors[0]).Throw();
        if (errors != null) throw new AggregateException("several metric sinks failed", errors);
    }
}

/// <summary>A sink that drops everything (non-main ranks, <c>--logger</c> empty).</summary>
public sealed class NullSink : IMetricSink
{
    public static NullSink Instance { get; } = new();
    public void LogHyperparameters(IReadOnlyDictionary<string, object?> hyperparameters) { }
    public void Log(IReadOnlyDictionary<string, double> metrics, long step) { }
    public void LogText(string tag, string text, long step) { }
    public void Flush() { }
    public void Finish(RunOutcome outcome) { }
    public void Dispose() { }
}
