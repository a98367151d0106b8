using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Formats;

/// <summary>
/// The speculators config.json: Python-written examples (speculators.md §2.2, vllm_and_eagle_formats.md §1)
/// and ours round-trip, missing flags take vLLM's defaults, malformed fields are all named, and the RoPE read
/// back from a saved config equals the RoPE the draft was built with.
/// </summary>
public class SpeculatorsConfigTests
{
    public SpeculatorsConfigTests() => TestTorch.SingleThreaded();

    /// <summary>speculators HEAD (transformers 5.x) example for Llama-3.1-8B-Instruct, speculators.md §2.2.</summary>
    internal const string PythonHeadExample = """
    {
      "architectures": ["Eagle3DraftModel"],
      "auto_map": {"": "config.Eagle3SpeculatorConfig"},
      "draft_vocab_size": 32000,
      "dtype": "bfloat16",
      "eagle_aux_hidden_state_layer_ids": [2, 16, 29],
      "embed_requires_grad": false,
      "fc_norm": false,
      "norm_before_fc": true,
      "norm_before_residual": true,
      "norm_output": true,
      "speculators_config": {
        "algorithm": "eagle3",
        "default_proposal_method": "greedy",
        "proposal_methods": [
          {"accept_tolerance": 0.0, "proposal_type": "greedy",
           "speculative_tokens": 3, "verifier_accept_k": 1}
        ],
        "verifier": {"architectures": ["LlamaForCausalLM"],
                     "name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}
      },
      "speculators_model_type": "eagle3",
      "speculators_version": "0.8.0.dev0",
      "target_hidden_size": null,
      "tie_word_embeddings": false,
      "transformer_layer_config": {
        "attention_bias": false,
        "attention_dropout": 0.0,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 4096,
        "initializer_range": 0.02,
        "intermediate_size": 14336,
        "layer_types": ["sliding_attention"],
        "max_position_embeddings": 131072,
        "mlp_bias": false,
        "model_type": "llama",
        "num_attention_heads": 32,
        "num_hidden_layers": 1,
        "num_key_value_heads": 8,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_parameters": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                            "original_max_position_embeddings": 8192,
                            "rope_theta": 500000.0, "rope_type": "llama3"},
        "sliding_window": 2048,
        "tie_word_embeddings": false,
        "use_cache": true,
        "use_sliding_window": true,
        "vocab_size": 128256
      },
      "transformers_version": "5.13.1"
    }
    """;

    /// <summary>A converted checkpoint as older speculators wrote it (transformers 4.x keys), vllm_and_eagle_formats.md §1.</summary>
    internal const string PythonConvertedExample = """
    {
      "architectures": ["Eagle3Speculator"],
      "auto_map": {"": "eagle3.Eagle3SpeculatorConfig"},
      "draft_vocab_size": 32000,
      "has_no_defaults_at_init": false,
      "norm_before_residual": false,
      "speculators_config": {
        "algorithm": "eagle3",
        "default_proposal_method": "greedy",
        "proposal_methods": [{"accept_tolerance": 0.0, "proposal_type": "greedy", "speculative_tokens": 5, "verifier_accept_k": 1}],
        "verifier": {"architectures": ["LlamaForCausalLM"], "name_or_path": "meta-llama/Llama-3.1-8B-Instruct"}
      },
      "speculators_model_type": "eagle3",
      "speculators_version": "0.1.0.dev13",
      "target_hidden_size": null,
      "torch_dtype": "float32",
      "transformer_layer_config": {
        "attention_bias": false, "attention_dropout": 0.0, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096,
        "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 2048, "mlp_bias": false,
        "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 1, "num_key_value_heads": 8,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "rope_theta": 10000.0, "use_cache": true,
        "vocab_size": 128256
      },
      "transformers_version": "4.53.2"
    }
    """;

    static void AssertKeptExceptAutoMap(JsonObject original, JsonObject written)
    {
        foreach (var (key, value) in original)
        {
            if (key == "auto_map")
            {
                Assert.False(written.ContainsKey("auto_map"));
                continue;
            }
            Assert.True(written.ContainsKey(key), $"key '{key}' was dropped");
            Assert.True(JsonNode.DeepEquals(value, written[key]), $"key '{key}': wrote {written[key]?.ToJsonString()}, read {value?.ToJsonString()}");
        }
    }

    [Fact]
    public void PythonHeadExampleReadsAndRoundTrips()
    {
        var cfg = SpeculatorModelConfig.Parse(PythonHeadExample);
        var e3 = Assert.IsType<Eagle3SpeculatorConfig>(cfg);
        Assert.Equal(32000, e3.DraftVocabSize);
        Assert.Equal([2, 16, 29], e3.AuxLayerIds!);
        Assert.True(e3.NormBeforeResidual && e3.NormBeforeFc && e3.NormOutput);
        Assert.False(e3.FcNorm || e3.EmbedRequiresGrad);
        Assert.Null(e3.TargetHiddenSize);
        Assert.Equal(3, e3.SpeculativeTokens);
        Assert.Equal("meta-llama/Llama-3.1-8B-Instruct", e3.SpeculatorsConfig.Verifier.NameOrPath);
        Assert.Equal("bfloat16", e3.DtypeName);
        Assert.Equal(["torch_dtype"], e3.MissingKeys); // a transformers 5.x file: only the 4.x dtype key is absent
        var dc = e3.ResolveDecoderConfig();
        Assert.Equal(Eagle3LayerStyle.Llama, e3.LayerStyle);
        Assert.Equal(RopeType.Llama3, dc.Rope.Type);
        Assert.Equal(500000.0, dc.Rope.Theta);
        Assert.Equal(8.0, dc.Rope.Factor);
        Assert.Equal(8192, dc.Rope.OriginalMaxPositionEmbeddings);
        Assert.Equal(2048, dc.SlidingWindowFor(0)); // speculators HEAD trains llama drafts with sliding layers
        Assert.Equal(128256, e3.TargetVocabSize);

        var written = JsonNode.Parse(cfg.ToJson())!.AsObject();
        AssertKeptExceptAutoMap(JsonNode.Parse(PythonHeadExample)!.AsObject(), written);
        Assert.False(written.ContainsKey("model_type"));
        // Writing what we read is a fixed point.
        Assert.Equal(cfg.ToJson(), SpeculatorModelConfig.Parse(cfg.ToJson()).ToJson());
    }

    [Fact]
    public void PythonConvertedExampleReadsWithVllmDefaultsAndRoundTrips()
    {
        var e3 = Assert.IsType<Eagle3SpeculatorConfig>(SpeculatorModelConfig.Parse(PythonConvertedExample));
        Assert.False(e3.NormBeforeResidual); // explicit false wins over vLLM's default
        Assert.False(e3.NormBeforeFc || e3.FcNorm || e3.NormOutput);
        Assert.Contains("fc_norm", e3.MissingKeys);
        Assert.Contains("norm_output", e3.MissingKeys);
        Assert.Contains("eagle_aux_hidden_state_layer_ids", e3.MissingKeys);
        Assert.Null(e3.AuxLayerIds);
        Assert.Equal(3, e3.NumAuxLayers);
        Assert.Equal(5, e3.SpeculativeTokens);
        Assert.Equal("float32", e3.DtypeName);
        var dc = e3.ResolveDecoderConfig();
        Assert.Equal(RopeType.Default, dc.Rope.Type);
        Assert.Equal(10000.0, dc.Rope.Theta);
        Assert.Null(dc.SlidingWindowFor(0));

        var written = JsonNode.Parse(e3.ToJson())!.AsObject();
        AssertKeptExceptAutoMap(JsonNode.Parse(PythonConvertedExample)!.AsObject(), written);
        // Flags are always written explicitly (with the values they were read as).
        Assert.False(written["fc_norm"]!.GetValue<bool>());
        Assert.False(written["norm_output"]!.GetValue<bool>());
        Assert.True(written["transformer_layer_config"]!.AsObject().TryGetPropertyValue("rope_scaling", out var rs) && rs == null);
    }

    [Fact]
    public void MissingFlagsTakeVllmDefaults()
    {
        var root = JsonNode.Parse(PythonHeadExample)!.AsObject();
        foreach (var k in new[] { "norm_before_residual", "norm_before_fc", "fc_norm", "norm_output", "embed_requires_grad", "draft_vocab_size" }) root.Remove(k);
        var e3 = (Eagle3SpeculatorConfig)SpeculatorModelConfig.Parse(root.ToJsonString());
        Assert.True(e3.NormBeforeResidual); // vLLM: config_dict.get("norm_before_residual", True)
        Assert.False(e3.NormBeforeFc);
        Assert.False(e3.FcNorm);
        Assert.False(e3.NormOutput);
        Assert.Equal(128256, e3.DraftVocabSize); // vLLM falls back to vocab_size
        Assert.Contains("norm_before_residual", e3.MissingKeys);
        var written = JsonNode.Parse(e3.ToJson())!.AsObject();
        Assert.True(written["norm_before_residual"]!.GetValue<bool>());
        Assert.Equal(128256, written["draft_vocab_size"]!.GetValue<int>());
    }

    [Fact]
    public void EveryMalformedFieldIsReportedWithKeyAndFoundValue()
    {
        var root = JsonNode.Parse(PythonHeadExample)!.AsObject();
        root["norm_before_residual"] = "yes";
        root["speculators_config"]!["proposal_methods"]![0]!["speculative_tokens"] = "3";
        root["eagle_aux_hidden_state_layer_ids"] = new JsonArray(2, "x", 29);
        root["draft_vocab_size"] = 31999.5;
        var e = Assert.Throws<SpeculatorsException>(() => SpeculatorModelConfig.Parse(root.ToJsonString()));
        Assert.Contains("norm_before_residual: expected true or false, found \"yes\"", e.Message);
        Assert.Contains("speculators_config.proposal_methods[0].speculative_tokens: expected an integer, found \"3\"", e.Message);
        Assert.Contains("eagle_aux_hidden_state_layer_ids[1]: expected an integer, found \"x\"", e.Message);
        Assert.Contains("draft_vocab_size: expected an integer, found 31999.5", e.Message);

        var bad = JsonNode.Parse(PythonHeadExample)!.AsObject();
        bad["transformer_layer_config"]!["hidden_size"] = "4096";
        var e2 = Assert.Throws<SpeculatorsException>(() => SpeculatorModelConfig.Parse(bad.ToJsonString()));
        Assert.Contains("hidden_size", e2.Message);
        Assert.Contains("\"4096\"", e2.Message);

        var unknown = JsonNode.Parse(PythonHeadExample)!.AsObject();
        unknown["speculators_model_type"] = "medusa2";
        var e3 = Assert.Throws<SpeculatorsException>(() => SpeculatorModelConfig.Parse(unknown.ToJsonString()));
        Assert.Contains("'medusa2' is not supported (supported: eagle3)", e3.Message);

        var plain = new JsonObject { ["model_type"] = "llama", ["hidden_size"] = 8 };
        var e4 = Assert.Throws<SpeculatorsException>(() => SpeculatorModelConfig.Parse(plain.ToJsonString()));
        Assert.Contains("speculators_model_type: missing", e4.Message);
    }

    [Fact]
    public void UnknownKeysArePreservedAndModelTypeIsDroppedOnWrite()
    {
        var root = JsonNode.Parse(PythonHeadExample)!.AsObject();
        root["model_type"] = "llama";
        root["base_model_ep_plan"] = new JsonObject { ["x"] = 1 };
        root["speculators_config"]!["verifier"]!["revision"] = "main";
        root["speculators_config"]!["proposal_methods"]![0]!["future_knob"] = 0.5;
        var cfg = SpeculatorModelConfig.Parse(root.ToJsonString());
        var written = JsonNode.Parse(cfg.ToJson())!.AsObject();
        Assert.False(written.ContainsKey("model_type"));
        Assert.Equal(1, written["base_model_ep_plan"]!["x"]!.GetValue<int>());
        Assert.Equal("main", written["speculators_config"]!["verifier"]!["revision"]!.GetValue<string>());
        Assert.Equal(0.5, written["speculators_config"]!["proposal_methods"]![0]!["future_knob"]!.GetValue<double>());
        // Keys are sorted as transformers writes them.
        var keys = written.Select(kv => kv.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys);
    }

    [Fact]
    public void ReferenceFixtureConfigsRead()
    {
        var classic = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(TestPaths.Data("reference_eagle3", "draft_classic"));
        Assert.False(classic.NormBeforeResidual || classic.NormBeforeFc || classic.FcNorm || classic.NormOutput);
        Assert.Equal(64, classic.DraftVocabSize);
        Assert.Equal(257, classic.TargetVocabSize);
        Assert.Equal(48, classic.HiddenSize);
        var head = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(TestPaths.Data("reference_eagle3", "draft_head_defaults"));
        Assert.True(head.NormBeforeResidual && head.NormBeforeFc && head.NormOutput);
        Assert.False(head.FcNorm);
    }

    public static TheoryData<string> RopeCases => new() { "default", "linear", "dynamic", "llama3", "yarn", "yarn-explicit", "per-layer-type" };

    static DecoderConfig VerifierWithRope(string kind)
    {
        const int hd = 16, maxPos = 4096;
        var rope = kind switch
        {
            "default" => new RopeConfig { HeadDim = hd, Theta = 123456.0 },
            "linear" => new RopeConfig { Type = RopeType.Linear, HeadDim = hd, Theta = 10000.0, Factor = 2.5 },
            "dynamic" => new RopeConfig { Type = RopeType.Dynamic, HeadDim = hd, Theta = 10000.0, Factor = 3.0 },
            "llama3" => new RopeConfig { Type = RopeType.Llama3, HeadDim = hd, Theta = 500000.0, Factor = 8.0, LowFreqFactor = 1.0, HighFreqFactor = 4.0, OriginalMaxPositionEmbeddings = 64 },
            "yarn" => new RopeConfig { Type = RopeType.Yarn, HeadDim = hd, Theta = 1000000.0, Factor = 4.0, OriginalMaxPositionEmbeddings = 1024 },
            _ => new RopeConfig { Type = RopeType.Yarn, HeadDim = hd, Theta = 10000.0, Factor = 40.0, OriginalMaxPositionEmbeddings = 512, AttentionFactor = 1.25, BetaFast = 16, BetaSlow = 2, Truncate = false },
        };
        var dc = new DecoderConfig
        {
            Family = ModelFamily.Llama, VocabSize = 300, HiddenSize = 64, IntermediateSize = 96, NumLayers = 6, NumHeads = 4, NumKvHeads = 2,
            HeadDim = hd, RmsNormEps = 1e-5, MaxPositionEmbeddings = maxPos, Rope = rope with { MaxPositionEmbeddings = maxPos },
        };
        if (kind == "per-layer-type")
        {
            var full = new RopeConfig { Type = RopeType.Yarn, HeadDim = hd, Theta = 10000.0, Factor = 4.0, OriginalMaxPositionEmbeddings = 1024, MaxPositionEmbeddings = maxPos };
            var sliding = new RopeConfig { HeadDim = hd, Theta = 10000.0, MaxPositionEmbeddings = maxPos };
            dc = dc with
            {
                Family = ModelFamily.Qwen3, QkNorm = true, Rope = full, SlidingWindow = 128,
                LayerTypes = ["full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention", "sliding_attention"],
                RopeByLayerType = new Dictionary<string, RopeConfig> { ["full_attention"] = full, ["sliding_attention"] = sliding },
            };
        }
        dc.Validate("test verifier");
        return dc;
    }

    [Theory]
    [MemberData(nameof(RopeCases))]
    public void RopeReadBackFromSavedConfigEqualsTheBuildRope(string kind)
    {
        var verifier = VerifierWithRope(kind);
        var cfg = Eagle3Builder.CreateConfig(verifier, ["LlamaForCausalLM"], "test/verifier", Eagle3DraftOptions.HeadDefaults, 100);
        var built = cfg.ResolveDecoderConfig();
        // The sliding-layer RoPE of a per-layer-type verifier, otherwise the verifier's own.
        var want = kind == "per-layer-type" ? verifier.RopeByLayerType![DecoderConfig.SlidingAttention] : verifier.Rope;
        Assert.Equal(want, built.Rope);
        using var dir = new TempDir();
        cfg.Save(dir.Path);
        var text = File.ReadAllText(dir.File("config.json"));
        var tlc = JsonNode.Parse(text)!["transformer_layer_config"]!.AsObject();
        Assert.True(tlc.ContainsKey("rope_theta") && tlc.ContainsKey("rope_scaling") && tlc.ContainsKey("head_dim"));
        Assert.False(tlc.ContainsKey("rope_parameters"));
        var reread = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(dir.Path).ResolveDecoderConfig();
        Assert.Equal(built.Rope, reread.Rope);
        using var scope = NewDisposeScope();
        using var a = new RotaryEmbedding(built.Rope);
        using var b = new RotaryEmbedding(reread.Rope);
        var positions = torch.arange(0, 5000, 7, ScalarType.Int64).unsqueeze(0); // past max positions: dynamic NTK rescales
        var (ca, sa) = a.Forward(positions, ScalarType.Float32);
        var (cb, sb) = b.Forward(positions, ScalarType.Float32);
        Assert.True(ca.eq(cb).all().item<bool>() && sa.eq(sb).all().item<bool>(), $"{kind}: RoPE tables differ after re-reading the config");
    }
}
