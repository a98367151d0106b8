namespace Speculators.Util;

/// <summary>
/// Human-facing log lines (stderr by default, so stdout stays clean for results a user may pipe).
/// Tests can redirect <see cref="Writer"/>.
/// </summary>
public static class Log
{
    public static TextWriter Writer { get; set; } = Console.Error;
    public static bool Quiet { get; set; }
    static readonly HashSet<string> WarnedOnce = new();
    static readonly object Gate = new();

    public static void Info(string message)
    {
        if (Quiet) return;
        lock (Gate) Writer.WriteLine(message);
    }

    public static void Warn(string message)
    {
        lock (Gate) Writer.WriteLine("warning: " + message);
    }

    /// <summary>Warns once per <paramref name="key"/> for the life of the process.</summary>
    public static void WarnOnce(string key, string message)
    {
        lock (Gate)
        {
            if (!WarnedOnce.Add(key)) return;
            Writer.WriteLine("warning: " + message);
        }
    }
}
