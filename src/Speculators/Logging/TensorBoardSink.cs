using System.Globalization;

namespace Speculators.Logging;

/// <summary>How <see cref="TensorBoardSink"/> writes hyper-parameters.</summary>
public enum HParamsStyle
{
    /// <summary>
    /// <c>session_start_info</c> at start and <c>session_end_info</c> (with the real outcome) at finish,
    /// in the run's event file, no <c>experiment</c>: TensorBoard then infers the table and shows every
    /// logged scalar as a metric column. Default.
    /// </summary>
    Session,
    /// <summary>
    /// Exactly what torch's <c>add_hparams(hparams, {}, run_name=".")</c> writes (the Python tool's output):
    /// a second event file in the run directory with <c>experiment</c> (no metric columns),
    /// <c>session_start_info</c> and <c>session_end_info</c> = SUCCESS, all at step 0; booleans as numbers.
    /// </summary>
    TorchAddHparams,
}

/// <summary>Options of <see cref="TensorBoardSink"/>.</summary>
public sealed record TensorBoardOptions
{
    public HParamsStyle HParams { get; init; } = HParamsStyle.Session;

    /// <summary>Flush the file after every event (live viewing while training). Default true.</summary>
    public bool FlushEveryEvent { get; init; } = true;

    /// <summary>When resuming at this step, writes a <c>session_log START</c> event so the Python loader drops stale later events.</summary>
    public long? ResumeStep { get; init; }

    /// <summary>Unix time in seconds (tests substitute a fixed clock).</summary>
    public Func<double> Clock { get; init; } = UnixNow;

    public static double UnixNow() => (DateTime.UtcNow - DateTime.UnixEpoch).Ticks / (double)TimeSpan.TicksPerSecond;
}

/// <summary>
/// Writes TensorBoard event files ourselves (no TensorFlow, no TorchSharp writer): one file
/// <c>events.out.tfevents.{unix seconds:D10}.{host}.{pid}.{n}</c> per sink in the run directory
/// (<c>{log_dir}/{run_name}</c>), first record <c>file_version = "brain.Event:2"</c>, Unix wall times,
/// scalars as <c>simple_value</c> (float32) one event per key as torch's <c>add_scalar</c>, text as
/// <c>{tag}/text_summary</c>, hyper-parameters through the hparams plugin (see <see cref="HParamsStyle"/>).
/// A resumed run opens a new file in the same directory.
/// </summary>
public sealed class TensorBoardSink : IMetricSink
{
    static int _fileCounter = -1;

    readonly TensorBoardOptions _options;
    readonly FileStream _stream;
    readonly object _gate = new();
    bool _finished;
    bool _disposed;
    bool _sessionStarted;

    public string RunDirectory { get; }

    /// <summary>The event file this sink writes.</summary>
    public string FilePath { get; }

    /// <summary>Extra files written (the torch-style hparams file).</summary>
    public IReadOnlyList<string> ExtraFiles => _extraFiles;
    readonly List<string> _extraFiles = new();

    public TensorBoardSink(string runDirectory, TensorBoardOptions? options = null)
    {
        _options = options ?? new TensorBoardOptions();
        RunDirectory = Path.GetFullPath(runDirectory);
        try
        {
            Directory.CreateDirectory(RunDirectory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SpeculatorsException($"--log-dir: cannot create the TensorBoard run directory {RunDirectory}: {e.Message}", e);
        }
        double now = _options.Clock();
        FilePath = Path.Combine(RunDirectory, NewFileName(now));
        _stream = new FileStream(FilePath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
        WriteRecord(_stream, TensorBoardEvents.FileVersion(now));
        if (_options.ResumeStep is long resume) WriteRecord(_stream, TensorBoardEvents.SessionStart(now, resume));
        _stream.Flush();
    }

    /// <summary>torch / tensorboard naming: <c>events.out.tfevents.{int(time):010d}.{hostname}.{pid}.{n}</c>, n a process-wide counter.</summary>
    static string NewFileName(double unixTime)
    {
        int n = Interlocked.Increment(ref _fileCounter);
        string host = HostName();
        long secs = (long)Math.Floor(unixTime);
        return string.Create(CultureInfo.InvariantCulture, $"events.out.tfevents.{secs:D10}.{host}.{Environment.ProcessId}.{n}");
    }

    static string HostName()
    {
        string host;
        try { host = System.Net.Dns.GetHostName(); }
        catch (System.Net.Sockets.SocketException) { host = Environment.MachineName; }
        // Keep the name a single path component.
        return string.Concat(host.Select(c => c == '/' || c == '\\' || char.IsControl(c) ? '_' : c));
    }

    void WriteRecord(Stream stream, byte[] eventBytes) => stream.Write(TfRecord.Frame(eventBytes));

    void Append(byte[] eventBytes)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            WriteRecord(_stream, eventBytes);
            if (_options.FlushEveryEvent) _stream.Flush();
        }
    }

    public void LogHyperparameters(IReadOnlyDictionary<string, object?> hyperparameters)
    {
        bool torchStyle = _options.HParams == HParamsStyle.TorchAddHparams;
        var list = new List<(string, TensorBoardEvents.HParamType, object)>();
        foreach (var (k, v) in hyperparameters)
            if (TensorBoardEvents.ConvertHParam(v, boolAsNumber: torchStyle) is { } c) list.Add((k, c.Type, c.Value));
        double now = _options.Clock();
        if (torchStyle)
        {
            // A second writer on the same directory, as torch's add_hparams(run_name=".") does.
            string path = Path.Combine(RunDirectory, NewFileName(now));
            using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read))
            {
                WriteRecord(fs, TensorBoardEvents.FileVersion(now));
                WriteRecord(fs, TensorBoardEvents.Experiment(now, 0, list, Array.Empty<string>()));
                WriteRecord(fs, TensorBoardEvents.SessionStartInfo(now, 0, list, startTimeSecs: null));
                WriteRecord(fs, TensorBoardEvents.SessionEndInfo(now, 0, status: 1, endTimeSecs: null));
            }
            lock (_gate) _extraFiles.Add(path);
        }
        else
        {
            Append(TensorBoardEvents.SessionStartInfo(now, 0, list, startTimeSecs: now));
            lock (_gate) _sessionStarted = true;
        }
    }

    public void Log(IReadOnlyDictionary<string, double> metrics, long step)
    {
        foreach (var (k, v) in metrics)
            Append(TensorBoardEvents.Scalar(_options.Clock(), step, k, v));
    }

    public void LogText(string tag, string text, long step) =>
        Append(TensorBoardEvents.Text(_options.Clock(), step, tag, text));

    public void Flush()
    {
        lock (_gate)
        {
            if (!_disposed) _stream.Flush(flushToDisk: true);
        }
    }

    public void Finish(RunOutcome outcome)
    {
        bool writeEnd;
        lock (_gate)
        {
            if (_finished || _disposed) return;
            _finished = true;
            writeEnd = _sessionStarted;
        }
        if (writeEnd)
        {
            double now = _options.Clock();
            int status = outcome switch
            {
                RunOutcome.Success => 1,
                RunOutcome.Failure => 2,
                _ => 0, // UNKNOWN (interrupted runs are resumable; TensorBoard has no better status)
            };
            Append(TensorBoardEvents.SessionEndInfo(now, 0, status, now));
        }
        Flush();
    }

    public void Dispose()
    {
        Finish(RunOutcome.Unknown);
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _stream.Dispose();
        }
    }
}
