namespace Speculators.Tests.Data;

/// <summary>Small files made with independent implementations (see Fixtures/README.md), found in the source tree.</summary>
public static class DataFixtures
{
    public static string Path(params string[] parts) =>
        System.IO.Path.Combine([TestPaths.RepoRoot, "tests", "Speculators.Tests", "Data", "Fixtures", .. parts]);
}
