using Speculators.Data;
using Speculators.Formats;
using Speculators.Tests.Data;

namespace Speculators.Tests.Cli;

public class BuildVocabMappingCommandTests
{
    [Fact]
    public void BuildsTheWorkedExampleFromAPythonTokenFreqFile()
    {
        using var dir = new TempDir();
        var r = CliRunner.Ok("build-vocab-mapping", "--token-freq", DataFixtures.Path("py_token_freq.pt"),
            "--draft-vocab-size", "3", "--target-vocab-size", "10", "--output", dir.File("out"));
        Assert.Equal(new long[] { 2, 4, 5 }, Npy.Read(dir.File("out", "d2t.npy")).ToInt64());
        Assert.Equal(new[] { false, false, true, false, false, true, false, true, false, false }, Npy.Read(dir.File("out", "t2d.npy")).ToBool());
        Assert.Equal(File.ReadAllBytes(dir.File("out", "d2t.npy")), File.ReadAllBytes(dir.File("out", "d2t-3.npy")));
        Assert.Equal(File.ReadAllBytes(dir.File("out", "t2d.npy")), File.ReadAllBytes(dir.File("out", "t2d-10.npy")));
        // 50 + 50 + 10 of 111 supervised tokens are kept.
        Assert.Contains("99.10%", r.Stdout);
    }

    [Fact]
    public void ReadsVocabSizeFromModelConfigAndJsonFrequencies()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("model"));
        File.WriteAllText(dir.File("model", "config.json"), """{"model_type": "qwen3_vl", "text_config": {"vocab_size": 16}}""");
        var f = new TokenFrequencies();
        f.AddRow([15, 15, 3, 8, 8, 8], [1, 1, 1, 1, 1, 1]);
        f.SaveJson(dir.File("token_freq.json"));
        var r = CliRunner.Ok("build-vocab-mapping", "--token-freq", dir.File("token_freq.json"),
            "--draft-vocab-size", "4", "--model", dir.File("model"), "--output", dir.File("out"));
        Assert.Equal(new long[] { 0, 3, 8, 15 }, VocabMapping.Load(dir.File("out", "d2t.npy"), dir.File("out", "t2d.npy")).SelectedTargetIds());
        Assert.True(File.Exists(dir.File("out", "t2d-16.npy")));
        Assert.Contains("padded with 1", r.Stdout);
    }

    [Fact]
    public void ArgumentErrorsAreReported()
    {
        using var dir = new TempDir();
        var both = CliRunner.Run("build-vocab-mapping", "--token-freq", DataFixtures.Path("py_token_freq.pt"),
            "--draft-vocab-size", "3", "--target-vocab-size", "10", "--model", dir.Path, "--output", dir.File("o"));
        Assert.NotEqual(0, both.ExitCode);
        Assert.Contains("not both", both.Stdout + both.Stderr);
        var neither = CliRunner.Run("build-vocab-mapping", "--token-freq", DataFixtures.Path("py_token_freq.pt"),
            "--draft-vocab-size", "3", "--output", dir.File("o"));
        Assert.NotEqual(0, neither.ExitCode);
        Assert.Contains("--target-vocab-size", neither.Stdout + neither.Stderr);
        var tooBig = CliRunner.Run("build-vocab-mapping", "--token-freq", DataFixtures.Path("py_token_freq.pt"),
            "--draft-vocab-size", "11", "--target-vocab-size", "10", "--output", dir.File("o"));
        Assert.Equal(1, tooBig.ExitCode);
        Assert.Contains("--draft-vocab-size 11", tooBig.Stderr);
        var outside = CliRunner.Run("build-vocab-mapping", "--token-freq", DataFixtures.Path("py_token_freq.pt"),
            "--draft-vocab-size", "3", "--target-vocab-size", "8", "--output", dir.File("o"));
        Assert.Equal(1, outside.ExitCode);
        Assert.Contains("token id 9", outside.Stderr);
        Assert.Contains("py_token_freq.pt", outside.Stderr);
        Assert.False(Directory.Exists(dir.File("o")));
    }
}
