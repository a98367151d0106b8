namespace Speculators.Tests;

/// <summary>
/// Locates the shared fixtures (../shared/data beside the checkout). Walks up from the test
/// binary looking for an ancestor that has shared/data; SPECULATORS_SHARED_DATA overrides.
/// </summary>
public static class TestPaths
{
    static readonly Lazy<string> Shared = new(Find);

    public static string SharedData => Shared.Value;

    public static string Data(params string[] parts) => Path.Combine([SharedData, .. parts]);

    /// <summary>The repository root (the directory holding Speculators.slnx).</summary>
    public static string RepoRoot
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "Speculators.slnx"))) return d.FullName;
            throw new DirectoryNotFoundException("Speculators.slnx not found above " + AppContext.BaseDirectory);
        }
    }

    static string Find()
    {
        var env = Environment.GetEnvironmentVariable("SPECULATORS_SHARED_DATA");
        if (!string.IsNullOrEmpty(env))
        {
            if (!Directory.Exists(env)) throw new DirectoryNotFoundException($"SPECULATORS_SHARED_DATA={env} does not exist");
            return env;
        }
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            var candidate = Path.Combine(d.FullName, "shared", "data");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException(
            "shared/data not found in any ancestor of " + AppContext.BaseDirectory + "; set SPECULATORS_SHARED_DATA.");
    }
}

/// <summary>A temporary directory deleted at dispose.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "spec-test-" + Guid.NewGuid().ToString("N")[..12]);
    public TempDir() { Directory.CreateDirectory(Path); }
    public string File(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);
    public void Dispose() { try { Directory.Delete(Path, true); } catch (IOException) { } }
}
