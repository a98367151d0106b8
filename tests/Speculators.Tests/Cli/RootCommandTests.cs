namespace Speculators.Tests.Cli;

public class RootCommandTests
{
    [Fact]
    public void VersionPrintsProductVersion()
    {
        var r = CliRunner.Ok("--version");
        Assert.Equal(Speculators.ProductInfo.Version, r.Stdout.Trim());
    }

    [Fact]
    public void UnknownVerbFailsWithMessage()
    {
        var r = CliRunner.Run("definitely-not-a-verb");
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("definitely-not-a-verb", r.Stdout + r.Stderr);
    }
}
