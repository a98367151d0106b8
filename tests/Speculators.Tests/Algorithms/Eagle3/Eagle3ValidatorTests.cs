using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>
/// vLLM's loader rules: the reference drafts pass; deliberately broken copies of them are rejected with the
/// offending key and both values named.
/// </summary>
public class Eagle3ValidatorTests
{
    public Eagle3ValidatorTests() => TestTorch.SingleThreaded();

    [Theory]
    [InlineData(Eagle3Fixtures.Classic, new string[0])]
    [InlineData(Eagle3Fixtures.HeadDefaults, new[] { "norm_output=true" })]
    public void ReferenceDraftsPass(string name, string[] newer)
    {
        var report = SpeculatorsCheckpoint.Validate(Eagle3Fixtures.DraftDir(name), Eagle3Fixtures.VerifierDir);
        Assert.True(report.IsValid, report.ToText());
        Assert.Equal(newer, report.NewerVllm.Select(r => r.Setting));
    }

    public static TheoryData<string, string, string> Broken => new()
    {
        // case, expected problem key, text the message must contain
        { "extra tensor", "verifier_lm_head.weight", "unknown tensor (a training-only tensor that is never saved)" },
        { "fc bias", "fc.bias", "There is no module or parameter named" },
        { "int32 d2t", "d2t", "dtype I32, expected I64 (int64)" },
        { "top-level model_type", "model_type", "top-level model_type \"llama\" must not be present" },
        { "missing norm_before_residual", "norm_before_residual", "missing: vLLM defaults it to true" },
        { "wrong fc width", "fc.weight", "shape [48, 96], expected [48, 144] = [hidden_size 48, 3 aux states × 48]" },
        { "t2d disagrees with d2t", "t2d", "disagrees with d2t: draft id 0 maps to target id" },
        { "t2d count", "t2d", "has 65 true entries but draft_vocab_size is 64" },
        { "d2t out of range", "d2t", "d2t[63] = 1000 maps draft id 63 to target id 1063, outside the target vocabulary [0, 257)" },
        { "missing lm_head", "lm_head.weight", "missing ([64, 48]): vLLM does not report missing weights" },
        { "no verifier name", "speculators_config.verifier.name_or_path", "missing or null: vLLM requires it" },
        { "mistyped flag", "norm_output", "expected true or false, found \"true\"" },
        { "no speculative tokens", "speculators_config.proposal_methods[0].speculative_tokens", "missing: vLLM requires it" },
        { "input_norm without flag", "input_norm.weight", "present but norm_before_fc is false" },
        { "aux id outside verifier", "eagle_aux_hidden_state_layer_ids", "layer id 6 is outside [1, 5] for the verifier's 6 layers" },
        { "verifier vocab", "transformer_layer_config.vocab_size", "300 does not match the verifier's vocab_size 257" },
        { "descending aux ids", "eagle_aux_hidden_state_layer_ids", "must be unique and ascending" },
        { "no decoder config", "transformer_layer_config", "missing: the draft decoder's HF config" },
        { "decoder without hidden size", "transformer_layer_config", "required field 'hidden_size' is missing" },
        { "float t2d", "t2d", "dtype F32, expected BOOL" },
    };

    static string MakeBroken(string kind, TempDir dir)
    {
        string src = Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic);
        string dst = dir.File(kind.Replace(' ', '_'));
        Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? tensors = null;
        Action<JsonObject>? config = null;
        switch (kind)
        {
            case "extra tensor": tensors = t => { t["verifier_lm_head.weight"] = t["lm_head.weight"].clone(); return t; }; break;
            case "fc bias": tensors = t => { t["fc.bias"] = torch.zeros(48); return t; }; break;
            case "int32 d2t": tensors = t => { t["d2t"] = t["d2t"].to(ScalarType.Int32); return t; }; break;
            case "top-level model_type": config = c => c["model_type"] = "llama"; break;
            case "missing norm_before_residual": config = c => c.Remove("norm_before_residual"); break;
            case "wrong fc width": tensors = t => { t["fc.weight"] = t["fc.weight"].narrow(1, 0, 96).clone(); return t; }; break;
            case "t2d disagrees with d2t":
                tensors = t =>
                {
                    // Move draft id 0's kept target to the first unused id below it (or above), keeping 64 trues.
                    var t2d = t["t2d"].clone();
                    long first = t["d2t"][0].item<long>();
                    long other = Enumerable.Range(0, 257).First(i => i != first && !t2d[i].item<bool>());
                    t2d[first] = torch.tensor(false);
                    t2d[other] = torch.tensor(true);
                    t["t2d"] = t2d;
                    return t;
                };
                break;
            case "t2d count":
                tensors = t =>
                {
                    var t2d = t["t2d"].clone();
                    long other = Enumerable.Range(0, 257).First(i => !t2d[i].item<bool>());
                    t2d[other] = torch.tensor(true);
                    t["t2d"] = t2d;
                    return t;
                };
                break;
            case "d2t out of range": tensors = t => { var d = t["d2t"].clone(); d[63] = torch.tensor(1000L); t["d2t"] = d; return t; }; break;
            case "missing lm_head": tensors = t => { t.Remove("lm_head.weight"); return t; }; break;
            case "no verifier name": config = c => c["speculators_config"]!["verifier"]!.AsObject().Remove("name_or_path"); break;
            case "mistyped flag": config = c => c["norm_output"] = "true"; break;
            case "no speculative tokens": config = c => c["speculators_config"]!["proposal_methods"]![0]!.AsObject().Remove("speculative_tokens"); break;
            case "input_norm without flag": tensors = t => { t["input_norm.weight"] = torch.ones(144); return t; }; break;
            case "aux id outside verifier": config = c => c["eagle_aux_hidden_state_layer_ids"] = new JsonArray(2, 3, 6); break;
            case "verifier vocab":
                config = c => c["transformer_layer_config"]!["vocab_size"] = 300;
                tensors = t => { t["embed_tokens.weight"] = torch.zeros(300, 48); t["t2d"] = torch.cat([t["t2d"], torch.zeros(43, ScalarType.Bool)]); return t; };
                break;
            case "descending aux ids": config = c => c["eagle_aux_hidden_state_layer_ids"] = new JsonArray(4, 3, 2); break;
            case "no decoder config": config = c => c.Remove("transformer_layer_config"); break;
            case "decoder without hidden size": config = c => c["transformer_layer_config"]!.AsObject().Remove("hidden_size"); break;
            case "float t2d": tensors = t => { t["t2d"] = t["t2d"].to(ScalarType.Float32); return t; }; break;
            default: throw new ArgumentException(kind);
        }
        return Eagle3Fixtures.CopyCheckpoint(src, dst, tensors, config);
    }

    [Theory]
    [MemberData(nameof(Broken))]
    public void BrokenCheckpointsAreRejectedNamingTheProblem(string kind, string key, string text)
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string ckpt = MakeBroken(kind, dir);
        var report = SpeculatorsCheckpoint.Validate(ckpt, Eagle3Fixtures.VerifierDir);
        Assert.False(report.IsValid, $"{kind}: accepted\n{report.ToText()}");
        Assert.True(report.Problems.Any(p => p.Key == key && p.Message.Contains(text, StringComparison.Ordinal)),
            $"{kind}: no problem for '{key}' containing \"{text}\":\n{report.ToText()}");
    }

    [Fact]
    public void AllProblemsOfOneCheckpointAreReportedTogether()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string ckpt = Eagle3Fixtures.CopyCheckpoint(Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic), dir.File("multi"),
            t => { t["fc.bias"] = torch.zeros(48); t["d2t"] = t["d2t"].to(ScalarType.Int32); t.Remove("norm.weight"); return t; },
            c => { c["model_type"] = "llama"; c.Remove("norm_before_residual"); });
        var report = SpeculatorsCheckpoint.Validate(ckpt);
        var keys = report.Problems.Select(p => p.Key).ToHashSet();
        Assert.Superset(new HashSet<string> { "fc.bias", "d2t", "norm.weight", "model_type", "norm_before_residual" }, keys);
        var text = report.ToText();
        Assert.Contains("INVALID: 5 problems", text);
        // The report never throws for bad content, even for a directory that is not a checkpoint at all.
        Assert.False(SpeculatorsCheckpoint.Validate(dir.Path).IsValid);
        Assert.Contains("speculators_model_type", SpeculatorsCheckpoint.Validate(Eagle3Fixtures.VerifierDir).ToText());
    }
}
