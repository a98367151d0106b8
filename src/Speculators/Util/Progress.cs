using System.Diagnostics;

namespace Speculators.Util;

/// <summary>
/// Progress for long work. On an interactive terminal it redraws one line (carriage return);
/// when output is redirected (CI, files) it prints a plain line at most every
/// <see cref="PlainInterval"/>, so logs show progress without flooding.
/// Shows done/total, rate (in <c>unit</c>/s) and ETA.
/// </summary>
public sealed class Progress : IDisposable
{
    public static TimeSpan PlainInterval { get; set; } = TimeSpan.FromSeconds(10);
    static readonly bool Interactive = !Console.IsErrorRedirected;

    readonly string _label;
    readonly string _unit;
    readonly Stopwatch _clock = Stopwatch.StartNew();
    readonly TextWriter _out;
    TimeSpan _lastPrint = TimeSpan.MinValue;
    bool _printedInteractive;
    long _done;
    string _extra = "";

    public long Total { get; set; }
    public long Done => Interlocked.Read(ref _done);
    public TimeSpan Elapsed => _clock.Elapsed;

    public Progress(string label, long total, string unit = "items", TextWriter? output = null)
    {
        _label = label;
        _unit = unit;
        Total = total;
        _out = output ?? Log.Writer;
    }

    /// <summary>Extra text shown after the counters (e.g. "loss 2.31").</summary>
    public void SetStatus(string extra) { _extra = extra; }

    public void Advance(long n = 1)
    {
        Interlocked.Add(ref _done, n);
        MaybePrint(false);
    }

    public void Report(long done)
    {
        Interlocked.Exchange(ref _done, done);
        MaybePrint(false);
    }

    void MaybePrint(bool final)
    {
        if (Log.Quiet) return;
        var now = _clock.Elapsed;
        var minGap = Interactive ? TimeSpan.FromMilliseconds(200) : PlainInterval;
        if (!final && _lastPrint != TimeSpan.MinValue && now - _lastPrint < minGap) return;
        if (!final && _lastPrint == TimeSpan.MinValue && !Interactive && now < TimeSpan.FromSeconds(2)) return;
        _lastPrint = now;
        string line = Format(now);
        lock (_out)
        {
            if (Interactive)
            {
                _out.Write("\r" + line.PadRight(Math.Min(120, Math.Max(line.Length, 80))));
                _printedInteractive = true;
                if (final) _out.WriteLine();
            }
            else
            {
                _out.WriteLine(line);
            }
        }
    }

    string Format(TimeSpan now)
    {
        long done = Done;
        double secs = Math.Max(now.TotalSeconds, 1e-9);
        double rate = done / secs;
        string counts = Total > 0 ? $"{done}/{Total} ({100.0 * done / Total:F1}%)" : $"{done}";
        string eta = Total > 0 && rate > 0 && done < Total ? $", ETA {FormatTime(TimeSpan.FromSeconds((Total - done) / rate))}" : "";
        string extra = _extra.Length > 0 ? " | " + _extra : "";
        return $"{_label}: {counts}, {FormatRate(rate)} {_unit}/s, {FormatTime(now)} elapsed{eta}{extra}";
    }

    static string FormatRate(double r) => r >= 100 ? r.ToString("F0") : r >= 10 ? r.ToString("F1") : r.ToString("F2");

    public static string FormatTime(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}m{t.Seconds:D2}s" : $"{t.TotalSeconds:F1}s";

    public void Dispose()
    {
        if (_printedInteractive || !Interactive || Done > 0) MaybePrint(true);
    }
}
