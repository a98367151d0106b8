using System.Diagnostics;
using System.Globalization;

namespace Speculators.Quickstart;

/// <summary>
/// Wall time and this process's CPU time (user + system, all threads), so a stage's cost can be reported
/// honestly on a shared machine: wall time grows with other people's load, CPU time much less.
/// </summary>
public readonly record struct CpuClock(double WallSeconds, double CpuSeconds)
{
    static readonly Stopwatch Wall = Stopwatch.StartNew();

    /// <summary>Now: wall seconds since process start of this class, and process CPU seconds.</summary>
    public static CpuClock Now() => new(Wall.Elapsed.TotalSeconds, ProcessCpuSeconds());

    public CpuClock Since(CpuClock start) => new(WallSeconds - start.WallSeconds, CpuSeconds - start.CpuSeconds);

    /// <summary>
    /// utime + stime of <c>/proc/self/stat</c> (clock ticks of 1/100 s on Linux) where available, otherwise
    /// <see cref="Process.TotalProcessorTime"/>.
    /// </summary>
    public static double ProcessCpuSeconds()
    {
        try
        {
            if (OperatingSystem.IsLinux())
            {
                string stat = File.ReadAllText("/proc/self/stat");
                // The command name (field 2) is parenthesized and may contain spaces: fields resume after the last ')'.
                int close = stat.LastIndexOf(')');
                var f = stat[(close + 2)..].Split(' ');
                // After ')': state(3) ppid(4) ... utime is field 14, stime 15 → indices 11 and 12 here.
                long utime = long.Parse(f[11], CultureInfo.InvariantCulture), stime = long.Parse(f[12], CultureInfo.InvariantCulture);
                return (utime + stime) / 100.0;
            }
        }
        catch (IOException) { }
        catch (FormatException) { }
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }
}
