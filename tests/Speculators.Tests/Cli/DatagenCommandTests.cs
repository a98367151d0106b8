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
    /// in padded batches, dump runs one unpadded prompt, so the two differ by floating-point reduction order only:
    /// fp32 within 1e-5 relative; bf16 stored from an fp32 verifier within bf16 rounding of the fp32 dump
    /// (|a − b| ≤ 2⁻⁸·|b| per element, plus the fp32 noise); bf16 computed in bf16 within a few bf16 ulps of a bf16 dump.
    /// </summary>
    [Theory]
    [InlineData("float32", "float32", "float32")]
    [InlineData("bfloat16", "float32", "float32")]
    [InlineData("bfloat16", "bfloat16", "bfloat16")]
    public void DatagenEqualsDumpHiddenStatesForTheSameIds(string dtype, string compute, string dumpDtype)
    {
        using var dir = new TempDir();
        string store = dir.File("store");
        var r = CliRunner.Ok("datagen", "--model", HsFixtures.ModelDir, "--data-path", HsFixtures.DataDir, "--output", store,
            "--layer-ids", "1,3", "--dtype", dtype, "--compute-dtype", compute, "--batch-tokens", "128", "--max-samples", "6");
        Assert.Contains("wrote 6 files", r.Stdout);
        Assert.Contains("bytes/token", r.Stdout);
        Assert.Contains($"computing in {compute}", r.Stderr);
        Assert.Contains("disk:", r.Stderr);
        Assert.Contains("rows:", r.Stderr);
        Assert.Equal(new[] { 1, 3, 4 }, HiddenStateStoreMetadata.Load(store)!.LayerIds);

        foreach (int row in new[] { 2, 3, 5 })
        {
            var ids = HsFixtures.RowIds(row);
            string dump = dir.File($"dump{row}.safetensors");
            CliRunner.Ok("dump-hidden-states", "--model", HsFixtures.ModelDir, "--input-ids", string.Join(",", ids),
                "--layer-ids", "1,3,4", "--dtype", dumpDtype, "--output", dump);
            using var scope = NewDisposeScope();
            using var a = SafeTensorsFile.Open(HiddenStateFile.PathFor(store, row));
            using var b = SafeTensorsFile.Open(dump);
            Assert.Equal(new[] { "hidden_states", "token_ids" }, a.Keys.Order(StringComparer.Ordinal));
            var ha = a.Load("hidden_states");
            var hb = b.Load("hidden_states");
            Assert.Equal(dtype == "float32" ? ScalarType.Float32 : ScalarType.BFloat16, ha.dtype);
            Assert.Equal(hb.shape, ha.shape);
            Assert.Equal(b.Load("token_ids").data<long>().ToArray(), a.Load("token_ids").data<long>().ToArray());
            var a64 = ha.to(ScalarType.Float64);
            var b64 = hb.to(ScalarType.Float64);
            double scale = b64.abs().max().item<double>();
            if (dtype == "float32" || compute == "float32")
            {
                // Per element: the bf16 rounding of the fp32 value (≤ 2^-8 relative) plus fp32 batching noise.
                double rounding = dtype == "bfloat16" ? Math.Pow(2, -8) : 0;
                var excess = a64.sub(b64).abs().sub(b64.abs().mul(rounding)).max().item<double>();
                Assert.True(excess <= 1e-5 * scale, $"row {row}: {excess / scale:G3} of max|x| beyond the allowed rounding");
            }
            else
            {
                double err = HsFixtures.RelativeError(ha, hb);
                Assert.True(err <= 1.0 / 64, $"row {row}: relative difference {err:G3}");
            }
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
