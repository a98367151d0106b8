namespace Speculators.Jinja.Tests;

/// <summary>Locates ../shared/data (see the torch test project's TestPaths for the rules).</summary>
public static class TestPaths
{
    static readonly Lazy<string> Shared = new(Find);
    public static string SharedData => Shared.Value;
    public static string Data(params string[] parts) => Path.Combine([SharedData, .. parts]);

    static string Find()
    {
        var env = Environment.GetEnvironmentVariable("SPECULATORS_SHARED_DATA");
        if (!string.IsNullOrEmpty(env)) return env;
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "shared", "data");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("shared/data not found above " + AppContext.BaseDirectory + "; set SPECULATORS_SHARED_DATA.");
    }
}
