namespace Speculators.Bench;

/// <summary>Where the project's fixtures (<c>shared/data</c>) are, for the benchmarks that read real templates and tokenizers.</summary>
static class SharedData
{
    /// <summary>
    /// <c>SPECULATORS_SHARED_DATA</c>, else the first <c>shared/data</c> above the current directory or the benchmark's
    /// own folder.
    /// </summary>
    public static string Find()
    {
        var env = Environment.GetEnvironmentVariable("SPECULATORS_SHARED_DATA");
        if (!string.IsNullOrEmpty(env)) return env;
        foreach (var start in new[] { Directory.GetCurrentDirectory(), AppContext.BaseDirectory })
            for (var d = new DirectoryInfo(start); d != null; d = d.Parent)
            {
                var candidate = Path.Combine(d.FullName, "shared", "data");
                if (Directory.Exists(candidate)) return candidate;
            }
        throw new DirectoryNotFoundException("shared/data not found above the current directory or " + AppContext.BaseDirectory +
                                             "; set SPECULATORS_SHARED_DATA (or pass --data DIR where the benchmark has it).");
    }
}
