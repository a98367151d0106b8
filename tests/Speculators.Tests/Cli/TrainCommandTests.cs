using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Algorithms.CausalLm;
using Speculators.Training;
using TorchSharp;

namespace Speculators.Tests.Cli;

/// <summary><c>speculators train</c> end to end on a tiny causal LM, configuration precedence, dry run, input errors.</summary>
public class TrainCommandTests
{
    static string[] Base(TempDir dir, params string[] extra) =>
    [
        "train", "--speculator-type", "causal_lm",
        "--data-path", Path.Exists(dir.File("data")) ? dir.File("data") : CausalLmTestData.WriteDataset(dir.File("data")),
        "--model-config", Path.Exists(dir.File("cfg")) ? dir.File("cfg") : CausalLmTestData.WriteConfig(dir.File("cfg")),
        "--save-path", dir.File("ckpt"), "--total-seq-len", "96", "--num-threads", "1", "--lr", "3e-3",
        .. extra,
    ];

    [Fact]
    public void CausalLmTrainsSavesValidatesAndLogsToTensorBoard()
    {
        using var dir = new TempDir();
        var r = CliRunner.Ok(Base(dir, "--epochs", "4", "--lr", "1e-2", "--logger", "tensorboard", "--log-dir", dir.File("logs"), "--run-name", "run-{rank}",
            "--scheduler-type", "cosine", "--tokenizer", WriteTokenizerFiles(dir.File("tok"))));
        Assert.Contains("training complete", r.Stdout);
        Assert.Contains("best checkpoint:", r.Stdout);

        string ckpt = dir.File("ckpt");
        Assert.Equal(new[] { 3, 2, 1, 0 }, new CheckpointStore(ckpt).Epochs());
        foreach (var f in new[] { "config.json", "model.safetensors", CheckpointStore.MasterWeightsFile, CheckpointStore.OptimizerStateFile,
                                  CheckpointStore.SchedulerStateFile, TrainingState.FileName, CheckpointStore.TrainCommandFile })
            Assert.True(File.Exists(Path.Combine(ckpt, "3", f)), f);
        string runYaml = File.ReadAllText(Path.Combine(ckpt, "run.yaml"));
        Assert.Contains("  speculator_type: \"causal_lm\"", runYaml);
        Assert.Contains("  epochs: 4", runYaml);
        Assert.Contains("  lr: 0.01\n", runYaml); // the repeated flag: the last one wins
        Assert.DoesNotContain("seed:", runYaml); // defaults are not repeated
        Assert.StartsWith("speculators train --speculator-type causal_lm", File.ReadAllText(Path.Combine(ckpt, "train_command.txt")));

        // checkpoint_best is a relative link to the epoch with the lowest val loss, and it is a loadable HF model.
        var best = new CheckpointStore(ckpt).BestEpoch()!.Value;
        Assert.Equal(best.ToString(), new FileInfo(Path.Combine(ckpt, "checkpoint_best")).LinkTarget);
        using (var m = CausalLM.LoadFromDirectory(Path.Combine(ckpt, "checkpoint_best"), torch.ScalarType.Float32, torch.CPU))
            Assert.Equal(CausalLmTestData.Vocab, m.Config.VocabSize);
        Assert.Equal("{\"model_max_length\": 96}", File.ReadAllText(Path.Combine(ckpt, "checkpoint_best", "tokenizer_config.json")));

        // TensorBoard: valid records (CRC-32C), Unix wall times, the flat keys, hparams; the loss falls.
        var files = Directory.GetFiles(dir.File("logs", "run-0"), "events.out.tfevents.*");
        Assert.NotEmpty(files);
        var scalars = files.SelectMany(ReadScalars).ToList();
        var tags = scalars.Select(s => s.Tag).ToHashSet();
        foreach (var t in new[] { "train/loss", "train/acc", "train/grad_norm", "lr", "epoch", "val/loss_epoch", "val/acc_epoch", "val/perplexity_epoch",
                                  "profile/tokens_per_s", "profile/fwd_ms", "profile/bwd_ms", "profile/opt_ms", "profile/fetch_ms", "profile/packing_efficiency" })
            Assert.Contains(t, tags);
        double now = (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds;
        Assert.All(scalars, s => Assert.InRange(s.WallTime, now - 3600, now + 60));
        var val = scalars.Where(s => s.Tag == "val/loss_epoch").OrderBy(s => s.Step).Select(s => s.Value).ToList();
        Assert.Equal(4, val.Count);
        Assert.True(val[^1] < 0.75 * val[0], $"val loss {string.Join(", ", val)}; stderr: {r.Stderr}");
        var train = scalars.Where(s => s.Tag == "train/loss").OrderBy(s => s.Step).Select(s => s.Value).ToList();
        Assert.True(train.TakeLast(3).Average() < train.Take(3).Average());
        Assert.Contains(files, f => File.ReadAllBytes(f).AsSpan().IndexOf("_hparams_/session_start_info"u8) >= 0);
    }

    [Fact]
    public void RunStoppedMidEpochAndResumedEndsWithBitwiseTheSameWeights()
    {
        using var straight = new TempDir();
        CliRunner.Ok(Base(straight, "--epochs", "2", "--optimizer", "muon", "--scheduler-total-steps", "40"));
        using var resumed = new TempDir();
        // Stop inside epoch 0 (as a kill after a save would), then rerun the same command: it resumes mid-epoch.
        // (--max-steps shortens the default schedule, so all runs fix its length.)
        var first = CliRunner.Ok(Base(resumed, "--epochs", "2", "--optimizer", "muon", "--scheduler-total-steps", "40", "--max-steps", "3"));
        Assert.Contains("stopped at --max-steps: global step 3", first.Stdout);
        var mid = TrainingState.Parse(File.ReadAllText(resumed.File("ckpt", "0", TrainingState.FileName)), "s");
        Assert.Equal((0, 3), (mid.Epoch, mid.LocalStep));
        var second = CliRunner.Ok(Base(resumed, "--epochs", "2", "--optimizer", "muon", "--scheduler-total-steps", "40"));
        Assert.Contains("resuming from", second.Stderr);

        using var a = SafeTensorsFile.Open(straight.File("ckpt", "1", CheckpointStore.MasterWeightsFile));
        using var b = SafeTensorsFile.Open(resumed.File("ckpt", "1", CheckpointStore.MasterWeightsFile));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var k in a.Keys) Assert.True(a.ReadBytes(k).AsSpan().SequenceEqual(b.ReadBytes(k)), k);
        using var oa = SafeTensorsFile.Open(straight.File("ckpt", "1", CheckpointStore.OptimizerStateFile));
        using var ob = SafeTensorsFile.Open(resumed.File("ckpt", "1", CheckpointStore.OptimizerStateFile));
        foreach (var k in oa.Keys) Assert.True(oa.ReadBytes(k).AsSpan().SequenceEqual(ob.ReadBytes(k)), k);
    }

    [Fact]
    public void CliOverridesYamlOverridesDefaultsAndDumpConfigRoundTrips()
    {
        using var dir = new TempDir();
        string yaml = dir.File("run.yaml");
        File.WriteAllText(yaml, """
            train:
              epochs: 3
              lr: 0.001
              logger: tensorboard
              target-layer-ids: [1, 2, 3]
              scheduler_warmup_steps: 7
              muon_lr: null
            """);
        var r = CliRunner.Ok("train", "--config", yaml, "--epochs", "5", "--save-best", "--dump-config");
        string dumped = r.Stdout;
        Assert.StartsWith("train:\n", dumped);
        Assert.Contains("\n  epochs: 5\n", dumped);          // flag beats YAML
        Assert.Contains("\n  lr: 0.001\n", dumped);          // YAML beats default
        Assert.Contains("\n  seed: 42\n", dumped);           // default
        Assert.Contains("\n  save_best: true\n", dumped);    // bare boolean flag
        Assert.Contains("\n  target_layer_ids: [1, 2, 3]\n", dumped);
        Assert.Contains("\n  logger: \"tensorboard\"\n", dumped);
        Assert.Contains("\n  muon_lr: null\n", dumped);

        File.WriteAllText(dir.File("dumped.yaml"), dumped);
        var back = RunConfig.Resolve(new Dictionary<string, object?>(), dir.File("dumped.yaml"));
        var direct = RunConfig.Resolve(new Dictionary<string, object?> { ["epochs"] = 5L, ["save_best"] = true }, yaml);
        Assert.Equal(direct.ToYaml(false), back.ToYaml(false));
        Assert.Equal(5, back.ToOptions().Epochs);
        Assert.Equal(new[] { 1, 2, 3 }, back.ToOptions().Eagle3.TargetLayerIds);
        Assert.Equal(7L, back.ToOptions().SchedulerWarmupSteps);
        Assert.Equal("cli", direct.SourceOf("epochs"));
        Assert.Equal(yaml, direct.SourceOf("lr"));
        Assert.Equal("default", direct.SourceOf("seed"));

        // The list flag takes space- or comma-separated ids; --model is the verifier flag's alias; --no-resume too.
        var r2 = CliRunner.Ok("train", "--target-layer-ids", "2", "5", "--model", "some/model", "--no-resume", "--dump-config");
        Assert.Contains("\n  target_layer_ids: [2, 5]\n", r2.Stdout);
        Assert.Contains("\n  verifier_name_or_path: \"some/model\"\n", r2.Stdout);
        Assert.Contains("\n  no_resume_from_checkpoint: true\n", r2.Stdout);
        Assert.Contains("\n  target_layer_ids: [4, 6]\n", CliRunner.Ok("train", "--target-layer-ids", "4,6", "--dump-config").Stdout);
    }

    [Fact]
    public void BadConfigurationIsRejectedNamingTheKey()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.yaml"), "train:\n  epoch: 3\n");
        var e1 = CliRunner.Run("train", "--config", dir.File("a.yaml"), "--dump-config");
        Assert.Equal(1, e1.ExitCode);
        Assert.Contains("train.epoch: unknown option (did you mean 'epochs'?)", e1.Stderr);

        File.WriteAllText(dir.File("b.yaml"), "train:\n  lr: fast\n");
        var e2 = CliRunner.Run("train", "--config", dir.File("b.yaml"), "--dump-config");
        Assert.Contains("train.lr: expected a number, got 'fast'", e2.Stderr);

        var e3 = CliRunner.Run("train", "--epochs", "two", "--dump-config");
        Assert.Contains("--epochs: expected an integer, got 'two'", e3.Stderr);

        var e4 = CliRunner.Run(Base(dir, "--checkpoint-freq", "1.5"));
        Assert.Contains("--checkpoint-freq: values above 1 must be whole epochs, got 1.5", e4.Stderr);

        var e5 = CliRunner.Run(Base(dir, "--logger", "wandb"));
        Assert.Contains("--logger wandb: not available in this build", e5.Stderr);

        var e6 = CliRunner.Run(Base(dir, "--speculator-type", "dflash"));
        Assert.Contains("--speculator-type: no training algorithm named 'dflash'", e6.Stderr);
        Assert.Contains("causal_lm", e6.Stderr);
    }

    [Fact]
    public void Eagle3VerifierMismatchesAreRejectedBeforeTraining()
    {
        using var dir = new TempDir();
        string verifier = TinyModelFactory.Create(dir.File("verifier"), new TinyModelOptions { NumLayers = 6, VocabSize = 300 });
        var e1 = CliRunner.Run("train", "--model", verifier, "--data-path", dir.File("nodata"), "--save-path", dir.File("ckpt"), "--target-layer-ids", "1", "3", "6");
        Assert.Equal(1, e1.ExitCode);
        Assert.Contains("--target-layer-ids", e1.Stderr);
        Assert.Contains("6 layers", e1.Stderr);

        var e2 = CliRunner.Run("train", "--model", verifier, "--data-path", dir.File("nodata"), "--draft-vocab-size", "400");
        Assert.Contains("--draft-vocab-size 400 must be in [1, 300]", e2.Stderr);

        var e3 = CliRunner.Run("train", "--data-path", dir.File("nodata"));
        Assert.Contains("--verifier-name-or-path (or --model) is required", e3.Stderr);

        var e4 = CliRunner.Run("train", "--model", verifier, "--vllm-compat", "classic", "--norm-output", "true");
        Assert.Contains("--vllm-compat classic needs --norm-output false", e4.Stderr);
    }

    [Fact]
    public void DryRunBuildsInitializesSavesAndExits()
    {
        using var dir = new TempDir();
        var r = CliRunner.Ok(Base(dir, "--dry-run"));
        Assert.Contains("dry run: model saved to", r.Stdout);
        string saved = dir.File("ckpt", "dry_run");
        using (var m = CausalLM.LoadFromDirectory(saved, torch.ScalarType.Float32, torch.CPU))
            Assert.Equal(2, m.Config.NumLayers);
        Assert.Empty(new CheckpointStore(dir.File("ckpt")).Epochs());
        Assert.True(File.Exists(dir.File("ckpt", "run.yaml")));
    }

    [Fact]
    public void HelpListsTheFlagsWithDefaults()
    {
        var r = CliRunner.Ok("train", "--help");
        foreach (var s in new[] { "--verifier-name-or-path", "--model", "--data-path", "--save-path", "--speculator-type", "--total-seq-len", "--epochs",
                                  "--lr", "--optimizer", "--scheduler-type", "--draft-vocab-size", "--d2t-path", "--t2d-path", "--ttt-steps", "--noise-std",
                                  "--hidden-states-path", "--on-missing", "--on-generate", "--logger", "--log-dir", "--run-name", "--vllm-compat",
                                  "--config", "--dump-config", "--no-resume", "--from-pretrained", "--dry-run", "--max-steps", "[default: 8192]" })
            Assert.Contains(s, r.Stdout);
    }

    static string WriteTokenizerFiles(string dir)
    {
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), "{\"model_max_length\": 96}");
        return dir;
    }

    // ---------- a minimal TensorBoard reader (CRC-checked records, scalar summaries) ----------

    sealed record Scalar(string Tag, long Step, double WallTime, float Value);

    static IEnumerable<Scalar> ReadScalars(string path)
    {
        var bytes = File.ReadAllBytes(path);
        int at = 0;
        while (at < bytes.Length)
        {
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at, 8));
            Assert.Equal(Speculators.Logging.TfRecord.MaskedCrc32C(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)));
            var data = bytes.AsSpan(at + 12, (int)len).ToArray();
            Assert.Equal(MaskedCrc(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len, 4)));
            at += 12 + (int)len + 4;
            double wall = 0;
            long step = 0;
            byte[]? summary = null;
            foreach (var (field, wire, num, b) in Fields(data))
            {
                if (field == 1 && wire == 1) wall = BitConverter.Int64BitsToDouble((long)num);
                else if (field == 2 && wire == 0) step = (long)num;
                else if (field == 5 && wire == 2) summary = b;
            }
            if (summary == null) continue;
            foreach (var (f, w, _, value) in Fields(summary))
            {
                if (f != 1 || w != 2) continue;
                string? tag = null;
                float? v = null;
                foreach (var (vf, vw, vn, vb) in Fields(value!))
                {
                    if (vf == 1 && vw == 2) tag = Encoding.UTF8.GetString(vb!);
                    else if (vf == 2 && vw == 5) v = BitConverter.Int32BitsToSingle((int)vn);
                }
                if (tag != null && v != null) yield return new Scalar(tag, step, wall, v.Value);
            }
        }
    }

    static uint MaskedCrc(byte[] data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        }
        c = ~c;
        return unchecked(((c >> 15) | (c << 17)) + 0xA282EAD8u);
    }

    static List<(int Field, int Wire, ulong Num, byte[]? Bytes)> Fields(byte[] b)
    {
        var list = new List<(int, int, ulong, byte[]?)>();
        int i = 0;
        ulong Varint()
        {
            ulong v = 0;
            for (int shift = 0; ; shift += 7)
            {
                byte x = b[i++];
                v |= (ulong)(x & 0x7F) << shift;
                if (x < 0x80) return v;
            }
        }
        while (i < b.Length)
        {
            ulong key = Varint();
            int field = (int)(key >> 3), wire = (int)(key & 7);
            switch (wire)
            {
                case 0: list.Add((field, 0, Varint(), null)); break;
                case 1: list.Add((field, 1, BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(i, 8)), null)); i += 8; break;
                case 5: list.Add((field, 5, BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(i, 4)), null)); i += 4; break;
                case 2:
                    int len = (int)Varint();
                    list.Add((field, 2, 0, b.AsSpan(i, len).ToArray()));
                    i += len;
                    break;
                default: throw new InvalidDataException($"wire type {wire}");
            }
        }
        return list;
    }
}
