using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Speculators.Logging;

/// <summary>
/// One compact line per logged step on a text writer (stderr by default, via <see cref="Util.Log.Writer"/>):
/// <c>step 120 | train/loss 2.341 | train/full_acc_0 0.5123 | lr 1.00e-04</c>. Keys keep the order they
/// were logged in; <paramref name="include"/> filters them (e.g. hide <c>profile/</c>).
/// </summary>
public sealed class ConsoleSink : IMetricSink
{
    readonly TextWriter? _writer;
    readonly Func<string, bool> _include;
    readonly object _gate = new();
    bool _finished;

    /// <param name="writer">Where lines go; null means <see cref="Util.Log.Writer"/> at each call.</param>
    /// <param name="include">Which keys to print (all when null).</param>
    public ConsoleSink(TextWriter? writer = null, Func<string, bool>? include = null)
    {
        _writer = writer;
        _include = include ?? (_ => true);
    }

    TextWriter Out => _writer ?? Util.Log.Writer;

    /// <summary>Formats a value compactly: 4 significant digits, scientific notation outside [1e-3, 1e5).</summary>
    public static string Format(double v)
    {
        if (double.IsNaN(v)) return "nan";
        if (double.IsPositiveInfinity(v)) return "inf";
        if (double.IsNegativeInfinity(v)) return "-inf";
        if (v == Math.Floor(v) && Math.Abs(v) < 1e9) return v.ToString("0", CultureInfo.InvariantCulture);
        double a = Math.Abs(v);
        if (a >= 1e-3 && a < 1e5) return v.ToString("G4", CultureInfo.InvariantCulture);
        return v.ToString("0.00e+00", CultureInfo.InvariantCulture);
    }

    public void LogHyperparameters(IReadOnlyDictionary<string, object?> hyperparameters)
    {
        var sb = new StringBuilder("config:");
        foreach (var (k, v) in hyperparameters)
            sb.Append(' ').Append(k).Append('=').Append(v switch
            {
                null => "null",
                string s => s,
                bool b => b ? "true" : "false",
                double d => Format(d),
                float f => Format(f),
                IFormattable n => n.ToString(null, CultureInfo.InvariantCulture),
                _ => JsonSerializer.Serialize(v),
            });
        Write(sb.ToString());
    }

    public void Log(IReadOnlyDictionary<string, double> metrics, long step)
    {
        var sb = new StringBuilder();
        sb.Append("step ").Append(step.ToString(CultureInfo.InvariantCulture));
        foreach (var (k, v) in metrics)
        {
            if (!_include(k)) continue;
            sb.Append(" | ").Append(k).Append(' ').Append(Format(v));
        }
        Write(sb.ToString());
    }

    public void LogText(string tag, string text, long step) => Write($"step {step} | {tag}: {text}");

    public void Flush()
    {
        lock (_gate) Out.Flush();
    }

    public void Finish(RunOutcome outcome)
    {
        lock (_gate)
        {
            if (_finished) return;
            _finished = true;
        }
        Flush();
    }

    void Write(string line)
    {
        lock (_gate) Out.WriteLine(line);
    }

    public void Dispose() => Finish(RunOutcome.Unknown);
}
