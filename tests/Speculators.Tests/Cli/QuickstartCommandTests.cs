using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Quickstart;
using TorchSharp;

namespace Speculators.Tests.Cli;

/// <summary>
/// The shortened quickstart (the tiny profile: a smaller model and corpus through exactly the default's code path), end
/// to end through the CLI, then a second run that must find everything done.
/// </summary>
public class QuickstartCommandTests
{
    static JsonObject Json(string path) => JsonNode.Parse(File.ReadAllText(path))!.AsObject();

    static bool IsPng(string path) =>
        File.Exists(path) && File.ReadAllBytes(path).Take(8).SequenceEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A });

    [Fact]
    public void TinyRunProducesEveryArtifactAValidCheckpointAndALosslessSpeedupReportThenResumes()
    {
        using var dir = new TempDir();
        string root = dir.File("qs");
        int threads = torch.get_num_threads();
        try
        {
            var r = CliRunner.Ok("quickstart", "--profile", "tiny", "--output", root, "--threads", "1", "--seed", "7");
            var p = new QuickstartPipeline.Layout(root);
            var profile = QuickstartProfile.Tiny;

            // stage 1: corpus, held-out prompts, tokenizer + config of the model to train
            Assert.Equal(profile.TrainExamples, File.ReadLines(p.TrainJsonl).Count());
            Assert.Equal(profile.HeldOutExamples, File.ReadLines(p.HeldOutJsonl).Count());
            var init = HfConfig.Load(p.TargetInit);
            Assert.Equal(["LlamaForCausalLM"], init.Architectures);
            Assert.Contains("{% generation %}", Json(Path.Combine(p.TargetInit, "tokenizer_config.json"))["chat_template"]!.GetValue<string>());
            // stage 2-3: the prepared dataset and the trained target, a standard HF model directory
            using (var ds = PreparedDataset.Open(p.TargetData)) Assert.Equal(profile.TrainExamples, ds.Count);
            foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json" })
                Assert.True(File.Exists(Path.Combine(p.Target, f)), f);
            Assert.Equal(profile.TargetLayers, HfConfig.Load(p.Target).ToDecoderConfig().NumLayers);
            // stage 4: target quality
            var targetEval = Json(p.TargetEval);
            Assert.Equal(profile.HeldOutExamples, targetEval["prompts"]!.GetValue<int>());
            // stage 5-7: regenerated answers (from the target), the draft's dataset and its hidden states
            var regenerated = File.ReadAllLines(p.Regenerated);
            Assert.Equal(profile.RegenerateExamples, regenerated.Length);
            Assert.All(regenerated, l => Assert.Equal(p.Target, JsonNode.Parse(l)!["metadata"]!["model"]!.GetValue<string>()));
            int rows;
            using (var ds = PreparedDataset.Open(p.DraftPrepared)) rows = (int)ds.Count;
            Assert.Equal(profile.RegenerateExamples, rows);
            Assert.True(File.Exists(Path.Combine(p.HiddenStates, "metadata.json")));
            Assert.Equal(rows, Directory.GetFiles(p.HiddenStates, "hs_*.safetensors").Length);
            // stage 8-9: the checkpoint passes validate (the library call and the verb), with its verifier
            Assert.True(SpeculatorsCheckpoint.Validate(p.CheckpointBest, p.Target).IsValid);
            var v = CliRunner.Run("validate", p.CheckpointBest, "--verifier", p.Target);
            Assert.True(v.ExitCode == 0, v.ToString());
            var ckptConfig = Json(Path.Combine(p.CheckpointBest, "config.json"));
            Assert.Equal(p.Target, ckptConfig["speculators_config"]!["verifier"]!["name_or_path"]!.GetValue<string>());
            // stage 10 + report: acceptance > 1, lossless, plots, serve commands
            var report = Json(p.ReportJson);
            var draft = report["draft"]!;
            Assert.True(QuickstartReport.Num(draft["acceptance_length"]) > 1.0, draft.ToJsonString());
            Assert.Equal(profile.NumSpeculativeTokens, draft["per_position_acceptance"]!.AsArray().Count);
            Assert.True(draft["lossless"]!.GetValue<bool>(), draft.ToJsonString());
            Assert.True(IsPng(report["plots"]!["training_losses"]!.GetValue<string>()));
            Assert.True(IsPng(report["plots"]!["acceptance"]!.GetValue<string>()));
            Assert.Equal(10, report["stages"]!.AsArray().Count);
            Assert.All(report["stages"]!.AsArray(), s => Assert.False(s!["cached"]!.GetValue<bool>()));
            Assert.Contains($"vllm serve {p.CheckpointBest}", r.Stdout);
            // The printed evaluate command is a working command line.
            string evaluate = report["evaluate_command"]!.GetValue<string>();
            Assert.Contains(evaluate, r.Stdout);
            var e = CliRunner.Ok(evaluate.Split(' ').Skip(1).ToArray());
            Assert.Contains("acceptance length", e.Stdout);
            Assert.Contains("acceptance length", r.Stdout);
            Assert.Contains("mask strategy: generation", r.Stderr);

            // A second run finds every stage done: nothing is retrained, the report is the same.
            var modelBytes = File.ReadAllBytes(Path.Combine(p.Target, "model.safetensors"));
            var again = CliRunner.Ok("quickstart", "--profile", "tiny", "--output", root, "--threads", "1", "--seed", "7");
            var report2 = Json(p.ReportJson);
            Assert.All(report2["stages"]!.AsArray(), s => Assert.True(s!["cached"]!.GetValue<bool>()));
            Assert.Equal(draft.ToJsonString(), report2["draft"]!.ToJsonString());
            Assert.Equal(modelBytes, File.ReadAllBytes(Path.Combine(p.Target, "model.safetensors")));
            Assert.Contains("skipped", again.Stderr);
        }
        finally
        {
            torch.set_num_threads(threads);
        }
    }

    [Fact]
    public void BadOptionsAreNamed()
    {
        var r = CliRunner.Run("quickstart", "--profile", "huge", "--output", "/nonexistent/never-created");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--profile", r.Stderr);
        Assert.Contains("tiny", r.Stderr);
        r = CliRunner.Run("quickstart", "--set", "target_layerz=3", "--output", "/nonexistent/never-created");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("target_layers", r.Stderr);
        r = CliRunner.Run("quickstart", "--set", "target_layers=-3", "--output", "/nonexistent/never-created");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("target_layers=-3", r.Stderr);
    }
}
