using System.Runtime.InteropServices;
using Speculators.Util;

namespace Speculators.Training;

/// <summary>
/// Turns SIGINT (Ctrl-C) and SIGTERM into a stop request for <see cref="Trainer.Run"/>: the trainer finishes the
/// current step, writes a normal resumable checkpoint and returns. A second signal is not intercepted, so it
/// terminates the process at once (the atomic checkpoint protocol keeps the last good checkpoint intact).
/// </summary>
public sealed class TrainingSignals : IDisposable
{
    readonly CancellationTokenSource _cts = new();
    readonly List<PosixSignalRegistration> _registrations = new();
    int _signals;

    TrainingSignals() { }

    /// <summary>Cancelled on the first SIGINT/SIGTERM.</summary>
    public CancellationToken Token => _cts.Token;

    /// <summary>The signal that requested the stop, if any.</summary>
    public PosixSignal? Received { get; private set; }

    /// <summary>Registers the handlers (where the platform supports them) until disposed.</summary>
    public static TrainingSignals Register()
    {
        var s = new TrainingSignals();
        foreach (var sig in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
        {
            try
            {
                s._registrations.Add(PosixSignalRegistration.Create(sig, s.Handle));
            }
            catch (PlatformNotSupportedException)
            {
            }
        }
        return s;
    }

    /// <summary>Requests a stop as a signal would (for embedding applications and tests).</summary>
    public void Request() => Trigger(null);

    void Handle(PosixSignalContext context)
    {
        if (Interlocked.Increment(ref _signals) > 1)
        {
            context.Cancel = false; // second signal: default action (terminate)
            return;
        }
        context.Cancel = true;
        Trigger(context.Signal);
    }

    void Trigger(PosixSignal? signal)
    {
        Received = signal;
        Log.Warn($"{(signal is PosixSignal s ? s.ToString() : "stop requested")}: finishing the current step, then writing a resumable checkpoint " +
                 "(send the signal again to exit at once; the last complete checkpoint stays intact).");
        _cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in _registrations) r.Dispose();
        _registrations.Clear();
        _cts.Dispose();
    }
}
