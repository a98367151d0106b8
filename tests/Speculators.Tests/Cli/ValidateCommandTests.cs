using System.Text.Json.Nodes;
using Speculators.Tests.Algorithms.Eagle3;

namespace Speculators.Tests.Cli;

/// <summary><c>speculators validate</c> end to end: exit codes, printed problems, newer-vLLM notes, JSON.</summary>
public class ValidateCommandTests
{
    [Fact]
    public void GoodCheckpointExitsZeroAndListsNewerVllmSettings()
    {
        var r = CliRunner.Ok("validate", Eagle3Fixtures.DraftDir(Eagle3Fixtures.HeadDefaults), "--verifier", Eagle3Fixtures.VerifierDir);
        Assert.Contains("OK: vLLM's loader rules are met and the checkpoint fits the verifier", r.Stdout);
        Assert.Contains("needs a newer vLLM: norm_output=true", r.Stdout);
        Assert.DoesNotContain("problem:", r.Stdout);
    }

    [Fact]
    public void BrokenCheckpointExitsOneAndPrintsEachProblem()
    {
        using var dir = new TempDir();
        string ckpt = Eagle3Fixtures.CopyCheckpoint(Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic), dir.File("bad"),
            t => { t["fc.weight"] = t["fc.weight"].narrow(1, 0, 96).clone(); return t; },
            c => { c["model_type"] = "llama"; c.Remove("norm_before_residual"); });
        var r = CliRunner.Run("validate", ckpt);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("problem: config.json: model_type: top-level model_type \"llama\" must not be present", r.Stdout);
        Assert.Contains("problem: config.json: norm_before_residual: missing", r.Stdout);
        Assert.Contains("problem: model.safetensors: fc.weight: shape [48, 96], expected [48, 144]", r.Stdout);
        Assert.Contains("INVALID: 3 problems", r.Stdout);

        var j = CliRunner.Run("validate", ckpt, "--json");
        Assert.Equal(1, j.ExitCode);
        var json = JsonNode.Parse(j.Stdout)!.AsObject();
        Assert.False(json["valid"]!.GetValue<bool>());
        Assert.Equal(3, json["problems"]!.AsArray().Count);
    }

    [Fact]
    public void MissingDirectoryIsAnErrorWithTheName()
    {
        var r = CliRunner.Run("validate", "/nonexistent/ckpt-dir");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("/nonexistent/ckpt-dir", r.Stderr + r.Stdout);
    }
}

/// <summary><c>speculators inspect</c> on a speculator checkpoint prints the draft's summary.</summary>
public class InspectSpeculatorTests
{
    [Fact]
    public void InspectShowsAlgorithmVerifierKVocabularyFlagsAndParameterCounts()
    {
        var r = CliRunner.Ok("inspect", Eagle3Fixtures.DraftDir(Eagle3Fixtures.HeadDefaults));
        Assert.Contains("algorithm               eagle3", r.Stdout);
        Assert.Contains("verifier                ../reference_models/llama_default [LlamaForCausalLM]", r.Stdout);
        Assert.Contains("speculative tokens (k)  3", r.Stdout);
        Assert.Contains("draft vocabulary        64 of 257 target tokens (d2t/t2d)", r.Stdout);
        Assert.Contains("norm_before_residual=true, norm_before_fc=true, fc_norm=false, norm_output=true", r.Stdout);
        // fc 48×144 + input_norm 144 + layer 0 (4·48 norms… ) from the file headers; embed 257×48 and lm_head 64×48 frozen.
        Assert.Contains($"{257 * 48 + 64 * 48:N0} frozen", r.Stdout);
        var j = CliRunner.Ok("inspect", Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic), "--json");
        var json = JsonNode.Parse(j.Stdout)!.AsObject();
        Assert.Equal("eagle3", json["algorithm"]!.GetValue<string>());
        Assert.Equal(new[] { 2, 3, 4 }, json["aux_layer_ids"]!.AsArray().Select(x => x!.GetValue<int>()));
        Assert.False(json["norm_output"]!.GetValue<bool>());
        long fc = 48 * 144, layer = 3 * 48 + 48 * 96 + 2 * 24 * 96 + 48 * 48 + 3 * 96 * 48;
        Assert.Equal(fc + layer + 48, json["trainable_parameter_count"]!.GetValue<long>());
    }
}
