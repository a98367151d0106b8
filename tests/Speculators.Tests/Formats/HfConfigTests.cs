using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;

namespace Speculators.Tests.Formats;

public class HfConfigTests
{
    const string Base = "\"vocab_size\": 300, \"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 4, " +
                        "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"max_position_embeddings\": 1024";

    static DecoderConfig Resolve(string json) => HfConfig.Parse(json, "test/config.json").ToDecoderConfig();

    static string Llama(string extra) => $"{{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", {Base}{(extra.Length > 0 ? ", " + extra : "")}}}";

    [Fact]
    public void ReadsReferenceFixtureConfigs()
    {
        var q = HfConfig.Load(TestPaths.Data("reference_models", "qwen3_qknorm")).ToDecoderConfig();
        Assert.Equal(ModelFamily.Qwen3, q.Family);
        Assert.Equal(24, q.HeadDim);
        Assert.True(q.QkNorm);
        Assert.True(q.TieWordEmbeddings);
        Assert.Equal(1e6, q.Rope.Theta);
        Assert.All(Enumerable.Range(0, q.NumLayers), i => Assert.Null(q.SlidingWindowFor(i)));
        var l3 = HfConfig.Load(TestPaths.Data("reference_models", "llama3_rope")).ToDecoderConfig();
        Assert.Equal(RopeType.Llama3, l3.Rope.Type);
        Assert.Equal(4.0, l3.Rope.Factor);
        Assert.Equal(32, l3.Rope.OriginalMaxPositionEmbeddings);
        Assert.Equal(2.0, l3.Rope.HighFreqFactor);
        Assert.Equal(12, l3.HeadDim);
        Assert.Equal("float32", l3.ConfigDtype);
    }

    public static TheoryData<string, string, RopeType> RopeForms => new()
    {
        // transformers 4.x (rope_theta + rope_scaling) vs 5.x (rope_parameters) for each type
        { "\"rope_theta\": 5000.0", "\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 5000.0}", RopeType.Default },
        { "\"rope_theta\": 5000.0, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}",
          "\"rope_parameters\": {\"rope_type\": \"linear\", \"rope_theta\": 5000.0, \"factor\": 2.0}", RopeType.Linear },
        { "\"rope_theta\": 5000.0, \"rope_scaling\": {\"rope_type\": \"dynamic\", \"factor\": 3.0}",
          "\"rope_parameters\": {\"rope_type\": \"dynamic\", \"rope_theta\": 5000.0, \"factor\": 3.0}", RopeType.Dynamic },
        { "\"rope_theta\": 5000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}",
          "\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 5000.0, \"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}", RopeType.Llama3 },
        { "\"rope_theta\": 5000.0, \"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 256, \"beta_fast\": 16, \"mscale\": 0.8, \"mscale_all_dim\": 0.5}",
          "\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 5000.0, \"factor\": 4.0, \"original_max_position_embeddings\": 256, \"beta_fast\": 16, \"mscale\": 0.8, \"mscale_all_dim\": 0.5}", RopeType.Yarn },
    };

    [Theory]
    [MemberData(nameof(RopeForms))]
    public void BothConfigFormsGiveTheSameRope(string v4, string v5, RopeType type)
    {
        var a = Resolve(Llama(v4)).Rope;
        var b = Resolve(Llama(v5)).Rope;
        Assert.Equal(a, b);
        Assert.Equal(type, a.Type);
        Assert.Equal(5000.0, a.Theta);
        if (type == RopeType.Yarn)
        {
            Assert.Equal(16, a.BetaFast);
            Assert.Equal(1, a.BetaSlow);
            Assert.Equal(256, a.OriginalMaxPositionEmbeddings);
            Assert.Equal((0.1 * 0.8 * Math.Log(4) + 1) / (0.1 * 0.5 * Math.Log(4) + 1), a.AttentionScaling, 12);
        }
    }

    [Fact]
    public void PartialRotaryFactorInEitherPlace()
    {
        var a = Resolve(Llama("\"partial_rotary_factor\": 0.5, \"head_dim\": 32"));
        var b = Resolve(Llama("\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0, \"partial_rotary_factor\": 0.5}, \"head_dim\": 32"));
        Assert.Equal(16, a.Rope.RotaryDim);
        Assert.Equal(a.Rope, b.Rope);
        Assert.Equal(32, a.HeadDim);
    }

    [Fact]
    public void YarnUsesExplicitFactorAndOriginalMaxFromScalingDict()
    {
        // Qwen-style YaRN: max_position_embeddings already extended; the explicit factor wins (vLLM, transformers 5).
        var r = Resolve(Llama("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 128}")).Rope;
        Assert.Equal(4.0, r.Factor);
        Assert.Equal(128, r.OriginalMaxPositionEmbeddings);
        Assert.Equal(0.1 * Math.Log(4) + 1, r.AttentionScaling, 12);
        var noOrig = Resolve(Llama("\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 2.0, \"attention_factor\": 0.9, \"truncate\": false}")).Rope;
        Assert.Equal(1024, noOrig.OriginalMaxPositionEmbeddings);
        Assert.Equal(0.9, noOrig.AttentionScaling);
        Assert.False(noOrig.Truncate);
    }

    [Fact]
    public void FamilySpecificDefaultsAndFlags()
    {
        var qwen2 = Resolve($"{{\"architectures\": [\"Qwen2ForCausalLM\"], {Base}, \"use_sliding_window\": true, \"sliding_window\": 16, \"max_window_layers\": 2}}");
        Assert.True(qwen2.QkvBias);
        Assert.False(qwen2.OProjBias);
        Assert.Equal(new[] { null, null, (int?)16, 16 }, Enumerable.Range(0, 4).Select(qwen2.SlidingWindowFor));
        var qwen2Off = Resolve($"{{\"model_type\": \"qwen2\", {Base}, \"use_sliding_window\": false, \"sliding_window\": 16, \"max_window_layers\": 0}}");
        Assert.All(Enumerable.Range(0, 4), i => Assert.Null(qwen2Off.SlidingWindowFor(i)));
        var qwen3Types = Resolve($"{{\"model_type\": \"qwen3\", {Base}, \"head_dim\": 8, \"use_sliding_window\": true, \"sliding_window\": 5, " +
                                 "\"layer_types\": [\"sliding_attention\", \"full_attention\", \"sliding_attention\", \"full_attention\"]}");
        Assert.Equal(new int?[] { 5, null, 5, null }, Enumerable.Range(0, 4).Select(qwen3Types.SlidingWindowFor));
        Assert.Equal(128, Resolve($"{{\"model_type\": \"qwen3\", {Base}}}").HeadDim); // Qwen3Config's default head_dim
        var mistralAbsent = Resolve($"{{\"architectures\": [\"MistralForCausalLM\"], {Base}}}");
        Assert.Equal(4096, mistralAbsent.SlidingWindowFor(0));
        var mistralNull = Resolve($"{{\"architectures\": [\"MistralForCausalLM\"], {Base}, \"sliding_window\": null}}");
        Assert.Null(mistralNull.SlidingWindowFor(3));
        Assert.False(mistralNull.QkvBias);
        var llama = Resolve(Llama("\"attention_bias\": true, \"mlp_bias\": true, \"tie_word_embeddings\": true, \"torch_dtype\": \"bfloat16\""));
        Assert.True(llama.QkvBias && llama.OProjBias && llama.MlpBias && llama.TieWordEmbeddings);
        Assert.Equal("bfloat16", llama.ConfigDtype);
        Assert.Equal("bfloat16", Resolve(Llama("\"dtype\": \"bfloat16\"")).ConfigDtype);
        var mha = Resolve($"{{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2}}");
        Assert.Equal(2, mha.NumKvHeads);
        Assert.Equal(4, mha.HeadDim);
    }

    [Fact]
    public void TextConfigIsUsedForMultimodalWrappers()
    {
        var c = Resolve($"{{\"architectures\": [\"Mistral3ForConditionalGeneration\"], \"torch_dtype\": \"bfloat16\", " +
                        $"\"text_config\": {{\"model_type\": \"mistral\", {Base}, \"sliding_window\": null, \"head_dim\": 32}}, \"vision_config\": {{\"hidden_size\": 10}}}}");
        Assert.Equal(ModelFamily.Mistral, c.Family);
        Assert.Equal(32, c.HeadDim);
        Assert.Equal("bfloat16", c.ConfigDtype);
    }

    [Theory]
    [InlineData("{\"model_type\": \"llama\", \"hidden_size\": 64}", "'vocab_size'")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": \"many\"}", "'vocab_size'")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 64.5}", "'hidden_size'")]
    [InlineData("{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}", "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"rope_scaling\": {\"rope_type\": \"longrope\"}}", "default, linear, dynamic, llama3, yarn")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0}}", "rope_scaling.low_freq_factor")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": \"2\"}}", "rope_scaling.factor")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, \"num_key_value_heads\": 3}", "num_key_value_heads (3)")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"hidden_act\": \"swiglu_magic\"}", "hidden_act 'swiglu_magic'")]
    [InlineData("{\"model_type\": \"llama\", \"vocab_size\": 10,", "invalid JSON")]
    public void BadConfigsNameTheField(string json, string expected)
    {
        var e = Assert.Throws<SpeculatorsException>(() => Resolve(json));
        Assert.Contains(expected, e.Message);
        Assert.Contains("test/config.json", e.Message);
    }

    [Fact]
    public void UnknownKeysAndNullsRoundTrip()
    {
        string json = Llama("\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, " +
                            "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 8192, \"custom\": [1, 2]}, \"pretraining_tp\": 1, " +
                            "\"quantization_config\": {\"bits\": 4, \"nested\": {\"x\": null}}, \"eos_token_id\": [1, 2], \"rms_norm_eps\": 1e-05, " +
                            "\"sliding_window\": null, \"my_float\": 2.50");
        var cfg = HfConfig.Parse(json);
        string written = cfg.ToJson();
        var a = JsonNode.Parse(json)!.AsObject();
        var b = JsonNode.Parse(written)!.AsObject();
        Assert.Equal(a.Select(kv => kv.Key).Order(), b.Select(kv => kv.Key).Order());
        foreach (var (k, v) in a)
            Assert.True(JsonNode.DeepEquals(v, b[k]), $"{k}: {v?.ToJsonString()} vs {b[k]?.ToJsonString()}");
        Assert.Contains("\"rope_theta\": 500000.0", written); // floats stay floats for Python
        Assert.Contains("\"rms_norm_eps\": 1e-05", written);
        var keys = b.Select(kv => kv.Key).ToList();
        Assert.Equal(keys.Order(StringComparer.Ordinal), keys); // sort_keys=True like transformers
        Assert.Equal(new long[] { 1, 2 }, cfg.EosTokenIds);
    }

    public static TheoryData<ModelFamily, HfConfigForm, string> WriteCases()
    {
        var d = new TheoryData<ModelFamily, HfConfigForm, string>();
        foreach (var f in Enum.GetValues<ModelFamily>())
            foreach (var form in Enum.GetValues<HfConfigForm>())
                foreach (var rope in new[] { "default", "linear", "dynamic", "llama3", "yarn" })
                    d.Add(f, form, rope);
        return d;
    }

    [Theory]
    [MemberData(nameof(WriteCases))]
    public void WrittenConfigsReadBackEqual(ModelFamily family, HfConfigForm form, string rope)
    {
        RopeConfig.TryParseType(rope, out var type);
        var r = new RopeConfig
        {
            Type = type, HeadDim = 16, Theta = 20000, Factor = type == RopeType.Default ? 1 : 4,
            HighFreqFactor = type == RopeType.Llama3 ? 8 : 4,
            OriginalMaxPositionEmbeddings = type is RopeType.Llama3 or RopeType.Yarn ? 64 : null,
            PartialRotaryFactor = family == ModelFamily.Llama ? 0.5 : 1.0,
            Mscale = type == RopeType.Yarn ? 0.7 : null, MscaleAllDim = type == RopeType.Yarn ? 0.7 : null,
        };
        var o = new TinyModelOptions
        {
            Family = family, HeadDim = 16, Rope = r, TieWordEmbeddings = family == ModelFamily.Qwen3,
            AttentionBias = family == ModelFamily.Llama, MlpBias = family == ModelFamily.Llama,
            SlidingWindow = family is ModelFamily.Mistral or ModelFamily.Qwen2 ? 8 : null, ConfigForm = form,
        };
        var dc = TinyModelFactory.BuildConfig(o);
        var hf = HfConfig.FromDecoder(dc, form);
        string json = hf.ToJson();
        Assert.Contains(form == HfConfigForm.Transformers4 ? "\"torch_dtype\"" : "\"dtype\"", json);
        Assert.Contains(form == HfConfigForm.Transformers4 ? "\"rope_theta\"" : "\"rope_parameters\"", json);
        var back = HfConfig.Parse(json).ToDecoderConfig();
        Assert.Equal(dc.Rope, back.Rope);
        Assert.Equal(Enumerable.Range(0, dc.NumLayers).Select(dc.SlidingWindowFor), Enumerable.Range(0, back.NumLayers).Select(back.SlidingWindowFor));
        Assert.Equal(dc with { LayerTypes = null, Rope = back.Rope }, back with { LayerTypes = null });
    }

    [Theory]
    [InlineData(10000.0, "10000.0")]
    [InlineData(1e-6, "1e-06")]
    [InlineData(1e-5, "1e-05")]
    [InlineData(0.0001, "0.0001")]
    [InlineData(0.02, "0.02")]
    [InlineData(1e16, "1e+16")]
    [InlineData(1e15, "1000000000000000.0")]
    [InlineData(-2.5, "-2.5")]
    [InlineData(123456.789, "123456.789")]
    [InlineData(0.1 + 0.2, "0.30000000000000004")]
    [InlineData(0.0, "0.0")]
    public void FloatsAreWrittenLikePythonRepr(double value, string expected) =>
        Assert.Equal(expected, PythonFloatJsonConverter.Format(value));
}
