using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Data;
using Speculators.Modeling;
using TorchSharp;

namespace Speculators.Tests.Cli;

/// <summary><c>speculators evaluate</c> end to end on a tiny verifier (real tokenizer and ChatML template) and a random Eagle-3 draft.</summary>
public class EvaluateCommandTests
{
    public EvaluateCommandTests()
    {
        if (torch.get_num_threads() != 1) torch.set_num_threads(1);
    }

    static TinyModelOptions Verifier(int hidden = 32) => new() { NumLayers = 4, HiddenSize = hidden, IntermediateSize = 64, VocabSize = 320, MaxPositionEmbeddings = 256, Seed = 5, InitStd = 0.2 };

    /// <summary>A tiny verifier in dir/verifier and a random Eagle-3 draft (Vd = 64, d2t mapping) in dir/ckpt naming it "verifier".</summary>
    static (string Verifier, string Checkpoint) Setup(TempDir dir)
    {
        string v = TinyModelFactory.Create(dir.File("verifier"), Verifier());
        using var weights = Eagle3VerifierWeights.FromDirectory(v);
        var counts = Enumerable.Range(0, 320).Select(i => new KeyValuePair<long, long>(i, (i * 37) % 101)).ToList();
        var mapping = VocabMapping.Build(counts, 64, 320);
        using var draft = Eagle3Builder.FromVerifier(weights, Eagle3DraftOptions.HeadDefaults with { SpeculativeTokens = 2, Seed = 1 }, mapping, "verifier");
        Eagle3Checkpoint.Save(draft, dir.File("ckpt"), TorchSharp.torch.ScalarType.Float32);
        return (v, dir.File("ckpt"));
    }

    [Fact]
    public void EvaluatesPromptsOfEveryKindAndWritesTheReportAndPlot()
    {
        using var dir = new TempDir();
        var (_, ckpt) = Setup(dir);
        File.WriteAllLines(dir.File("prompts.jsonl"),
        [
            """{"turns": ["Name three colors.", "Now two."]}""",
            """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]}""",
            """{"input_ids": [5, 9, 33, 200, 17]}""",
        ]);
        string old = Directory.GetCurrentDirectory();
        CliRunner.Result r;
        try
        {
            // The checkpoint names its verifier "verifier": relative to the current directory, as vLLM resolves it.
            Directory.SetCurrentDirectory(dir.Path);
            r = CliRunner.Ok("evaluate", "--speculator", "ckpt", "--prompts", "prompts.jsonl", "--all-turns", "--max-new-tokens", "7",
                "--output", "out/report.json", "--plot", "out/acceptance.png");
        }
        finally
        {
            Directory.SetCurrentDirectory(old);
        }
        Assert.Contains("acceptance length", r.Stdout);
        Assert.Contains("lossless", r.Stdout);
        var report = JsonNode.Parse(File.ReadAllText(dir.File("out", "report.json")))!.AsObject();
        Assert.True(report["lossless"]!.GetValue<bool>(), report.ToJsonString());
        Assert.Equal(0, report["near_tie_divergences"]!.GetValue<int>());
        Assert.Equal(4, report["num_generations"]!.GetValue<int>()); // 2 turns + 1 + 1
        Assert.Equal(2, report["num_speculative_tokens"]!.GetValue<int>()); // K defaults to the checkpoint's speculative_tokens
        Assert.Equal(2, report["per_position_acceptance"]!.AsArray().Count);
        long drafts = report["num_drafts"]!.GetValue<long>();
        Assert.Equal(2 * drafts, report["num_draft_tokens"]!.GetValue<long>());
        Assert.Equal(1 + report["num_accepted_tokens"]!.GetValue<double>() / drafts, report["acceptance_length"]!.GetValue<double>(), 12);
        foreach (var key in new[] { "draft_acceptance_rate", "tokens_per_second_speculative", "tokens_per_second_baseline", "speedup", "command", "versions", "verifier_path", "speculator_path" })
            Assert.True(report.ContainsKey(key), key);
        Assert.StartsWith("speculators evaluate --speculator ckpt", report["command"]!.GetValue<string>());
        Assert.Equal(Path.GetFullPath(dir.File("verifier")), report["verifier_path"]!.GetValue<string>());
        var png = File.ReadAllBytes(dir.File("out", "acceptance.png"));
        Assert.Equal((byte)'P', png[1]);
    }

    [Fact]
    public void LibraryCallsWithAPromptList()
    {
        using var dir = new TempDir();
        var (v, ckpt) = Setup(dir);
        using (var pair = Speculators.Inference.EvaluationRunner.LoadPair(ckpt, v, TorchSharp.torch.ScalarType.Float32, null, torch.CPU))
        {
            Assert.Equal("eagle3", pair.ModelType);
            Assert.Equal(2, pair.Draft.DefaultNumSpeculativeTokens);
            Assert.Equal(Path.GetFullPath(v), pair.VerifierDirectory);
        }
        var outcome = Speculators.Inference.EvaluationRunner.Run(new Speculators.Inference.EvaluationRequest
        {
            Speculator = ckpt,
            Verifier = v,
            PromptList =
            [
                Speculators.Inference.PromptSpec.FromTokens([5, 6, 7]),
                Speculators.Inference.PromptSpec.FromMessages(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "Hello" })),
            ],
            MaxNewTokens = 5,
            NumSpeculativeTokens = 3,
        });
        Assert.Equal(2, outcome.Result.Pairs.Count);
        Assert.True(outcome.Result.Lossless!.Lossless);
        Assert.Equal(3, outcome.Report["num_speculative_tokens"]!.GetValue<int>());
        Assert.Null(outcome.Report["prompts_path"]);
    }

    [Fact]
    public void BadInputIsReportedBeforeDecoding()
    {
        using var dir = new TempDir();
        var (v, ckpt) = Setup(dir);

        // A prompt longer than the verifier's context (256).
        File.WriteAllText(dir.File("long.jsonl"), "{\"input_ids\": [1, 2]}\n{\"input_ids\": [" + string.Join(", ", Enumerable.Repeat(7, 300)) + "]}\n");
        var tooLong = CliRunner.Run("evaluate", "--speculator", ckpt, "--verifier", v, "--prompts", dir.File("long.jsonl"));
        Assert.Equal(1, tooLong.ExitCode);
        Assert.Contains("long.jsonl:2", tooLong.Stderr);
        Assert.Contains("300 tokens, longer than the verifier's context of 256", tooLong.Stderr);

        File.WriteAllText(dir.File("ok.jsonl"), "{\"input_ids\": [1, 2, 3]}\n");
        // A verifier whose hidden size does not fit the checkpoint.
        string other = TinyModelFactory.Create(dir.File("other"), Verifier(hidden: 48));
        var misfit = CliRunner.Run("evaluate", "--speculator", ckpt, "--verifier", other, "--prompts", dir.File("ok.jsonl"));
        Assert.Equal(1, misfit.ExitCode);
        Assert.Contains("does not pass `speculators validate`", misfit.Stderr);
        Assert.Contains("hidden_size 48", misfit.Stderr);

        // A checkpoint that fails validation (no speculative_tokens).
        string broken = dir.File("broken");
        Directory.CreateDirectory(broken);
        File.Copy(Path.Combine(ckpt, "model.safetensors"), Path.Combine(broken, "model.safetensors"));
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt, "config.json")))!.AsObject();
        cfg["speculators_config"]!["proposal_methods"] = new JsonArray();
        File.WriteAllText(Path.Combine(broken, "config.json"), cfg.ToJsonString());
        var invalid = CliRunner.Run("evaluate", "--speculator", broken, "--verifier", v, "--prompts", dir.File("ok.jsonl"));
        Assert.Equal(1, invalid.ExitCode);
        Assert.Contains("proposal_methods", invalid.Stderr);

        // The checkpoint's relative verifier does not exist from here.
        var unresolved = CliRunner.Run("evaluate", "--speculator", ckpt, "--prompts", dir.File("ok.jsonl"));
        Assert.Equal(1, unresolved.ExitCode);
        Assert.Contains("Pass --verifier", unresolved.Stderr);
    }
}
