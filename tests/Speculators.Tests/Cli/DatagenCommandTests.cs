using Speculators.Formats;
using Speculators.HiddenStates;
using Speculators.Tests.HiddenStates;
using static TorchSharp.torch;

namespace Speculators.Tests.Cli;

public class DatagenCommandTests
{
    public DatagenCommandTests() => HsFixtures.SingleThreaded();

    /// <summary>
    /// The store must hold what <c>dump-hidden-states</c> gives for the same row and ids (aux + N). datagen runs rows
    /// in padded batches, dump runs one unpadded prompt, so the two differ only by floating-point reduction order.
    /// </summary>
    [Theory]
    [InlineData("float32", 1e-5)]
    [InlineData("bfloat16", 1.0 / 64)] // bf16 keeps 8 significant bits: within its rounding after upcasting
    public void DatagenEqualsDumpHiddenStatesForTheSameIds(string dtype, double tolerance)
    {
        using var dir = new TempDir();
        string store = dir.File("store");
        var r = CliRunner.Ok("datagen", "--model", HsFixtures.ModelDir, "--data-path", HsFixtures.DataDir, "--output", store,
            "--layer-ids", "1,3", "--dtype", dtype, "--batch-tokens", "128", "--max-samples", "6");
        Assert.Contains("wrote 6 files", r.Stdout);
        Assert.Contains("bytes/token", r.Stdout);
        Assert.Contains("disk:", r.Stderr);
        Assert.Contains("rows:", r.Stderr);
        Assert.Equal(new[] { 1, 3, 4 }, HiddenStateStoreMetadata.Load(store)!.LayerIds);

        foreach (int row in new[] { 2, 3, 5 })
        {
            var ids = HsFixtures.RowIds(row);
            string dump = dir.File($"dump{row}.safetensors");
            CliRunner.Ok("dump-hidden-states", "--model", HsFixtures.ModelDir, "--input-ids", string.Join(",", ids),
                "--layer-ids", "1,3,4", "--dtype", dtype, "--output", dump);
            using var scope = NewDisposeScope();
            using var a = SafeTensorsFile.Open(HiddenStateFile.PathFor(store, row));
            using var b = SafeTensorsFile.Open(dump);
            Assert.Equal(new[] { "hidden_states", "token_ids" }, a.Keys.Order(StringComparer.Ordinal));
            var ha = a.Load("hidden_states");
            var hb = b.Load("hidden_states");
            Assert.Equal(hb.dtype, ha.dtype);
            Assert.Equal(hb.shape, ha.shape);
            Assert.Equal(b.Load("token_ids").data<long>().ToArray(), a.Load("token_ids").data<long>().ToArray());
            double err = HsFixtures.RelativeError(ha, hb);
            Assert.True(err <= tolerance, $"row {row}: relative difference {err:G3} > {tolerance:G3}");
        }
    }

    [Theory]
    [InlineData("--layer-ids", "1,4", "final layer")]
    [InlineData("--layer-ids", "3,1", "ascending")]
    [InlineData("--dtype", "float16", "float16")]
    [InlineData("--world-size", "2", "--rank")]
    public void BadArgumentsFailWithAMessage(string flag, string value, string expected)
    {
        using var dir = new TempDir();
        var args = new List<string> { "datagen", "--model", HsFixtures.ModelDir, "--data-path", HsFixtures.DataDir, "--output", dir.File("o"), flag, value };
        if (flag == "--world-size") args.AddRange(["--rank", "2"]);
        var r = CliRunner.Run([.. args]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.Empty(Directory.EnumerateFiles(dir.Path, "hs_*", SearchOption.AllDirectories));
    }
}
