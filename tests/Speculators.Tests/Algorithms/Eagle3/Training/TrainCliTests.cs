using System.Globalization;
using System.Text.RegularExpressions;
using Speculators.Formats;
using Speculators.Tests.Cli;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary><c>speculators train --speculator-type eagle3</c> end to end on a tiny verifier and its datagen store.</summary>
public class TrainCliTests
{
    public TrainCliTests() => E3TrainFixtures.SingleThreaded();

    static List<double> Values(string log, string key) =>
        Regex.Matches(log, $@"\| {Regex.Escape(key)} ([-0-9.e+]+)").Select(m => double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();

    [Fact]
    public void TinyRunLearnsAndItsCheckpointValidates()
    {
        using var dir = new TempDir();
        string ckpt = dir.File("ckpt");
        var r = CliRunner.Ok("train", "--speculator-type", "eagle3", "--verifier-name-or-path", E3DiskFixture.ModelDir,
            "--data-path", E3DiskFixture.DataDir, "--save-path", ckpt, "--target-layer-ids", "1,2,3", "--on-missing", "raise",
            "--total-seq-len", "40", "--epochs", "5", "--optimizer", "adamw", "--lr", "3e-3", "--num-threads", "1",
            "--train-data-ratio", "0.75", "--logger", "console", "--draft-vocab-size", "48", "--d2t-path", WriteMapping(dir, out var t2d), "--t2d-path", t2d);
        Assert.Contains("training complete", r.Stdout);

        var val = Values(r.Stderr, "val/loss_epoch");
        Assert.Equal(5, val.Count);
        Assert.True(val[^1] < 0.95 * val[0], $"val loss {string.Join(", ", val)}");
        var train = Values(r.Stderr, "train/loss");
        Assert.True(train.TakeLast(3).Average() < 0.6 * train.Take(3).Average(), $"train loss {string.Join(", ", train)}");
        Assert.NotEmpty(Values(r.Stderr, "val/est_acceptance_length_epoch"));
        foreach (var key in new[] { "train/loss_0", "train/loss_2", "train/full_acc_1", "train/cond_acc_2", "val/cond_acc_0_epoch" })
            Assert.NotEmpty(Values(r.Stderr, key));

        string best = Path.Combine(ckpt, "checkpoint_best");
        var report = SpeculatorsCheckpoint.Validate(best, E3DiskFixture.ModelDir);
        Assert.True(report.IsValid, report.ToText());
        var v = CliRunner.Run("validate", best, "--verifier", E3DiskFixture.ModelDir);
        Assert.Equal(0, v.ExitCode);
    }

    [Fact]
    public void DryRunsWriteTheRequestedDraftShape()
    {
        using var dir = new TempDir();
        string[] Common(string save) =>
        [
            "train", "--speculator-type", "eagle3", "--verifier-name-or-path", E3DiskFixture.ModelDir, "--data-path", E3DiskFixture.DataDir,
            "--save-path", save, "--on-missing", "raise", "--total-seq-len", "40", "--num-threads", "1", "--dry-run",
        ];
        // --vllm-compat classic: every norm flag false, llama layers, 3 aux ids (the verifier's defaults for N = 4).
        CliRunner.Ok([.. Common(dir.File("classic")), "--vllm-compat", "classic", "--target-layer-ids", "1,2,3"]);
        var classic = SpeculatorModelConfig.Load<Speculators.Algorithms.Eagle3.Eagle3SpeculatorConfig>(dir.File("classic", "dry_run"));
        Assert.False(classic.NormBeforeResidual || classic.NormBeforeFc || classic.FcNorm || classic.NormOutput);
        Assert.Equal("llama", classic.TransformerLayerConfig!.ModelType);
        Assert.True(SpeculatorsCheckpoint.Validate(dir.File("classic", "dry_run"), E3DiskFixture.ModelDir).IsValid);
        // qwen3 layers, two of them, sliding windows, 2 TTT steps.
        CliRunner.Ok([.. Common(dir.File("qwen")), "--draft-arch", "qwen3", "--num-layers", "2", "--sliding-window", "16", "--ttt-steps", "2",
            "--target-layer-ids", "1,2,3"]);
        var qwen = SpeculatorModelConfig.Load<Speculators.Algorithms.Eagle3.Eagle3SpeculatorConfig>(dir.File("qwen", "dry_run"));
        Assert.Equal("qwen3", qwen.TransformerLayerConfig!.ModelType);
        Assert.True(qwen.NormBeforeResidual && qwen.NormBeforeFc && qwen.NormOutput && !qwen.FcNorm);
        var dc = qwen.ResolveDecoderConfig();
        Assert.Equal(2, dc.NumLayers);
        Assert.Equal(16, dc.SlidingWindowFor(1));
        Assert.Equal(2, qwen.SpeculativeTokens);
        // A mismatch stops the run before anything is built, naming the values.
        var bad = CliRunner.Run([.. Common(dir.File("bad")), "--target-layer-ids", "1,2,5"]);
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("5", bad.Stderr);
        Assert.False(Directory.Exists(dir.File("bad", "dry_run")));
    }

    static string WriteMapping(TempDir dir, out string t2dPath)
    {
        var m = E3TrainFixtures.Mapping();
        string d2t = dir.File("d2t.npy");
        t2dPath = dir.File("t2d.npy");
        Npy.Write(d2t, m.D2T);
        Npy.Write(t2dPath, m.T2D);
        return d2t;
    }
}
