using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>
/// Fresh drafts built from tiny verifiers, checkpoint save/load (ours, Python's fixtures, midlayer names,
/// missing embeddings), and that what we write passes the vLLM loader rules.
/// </summary>
public class Eagle3CheckpointTests
{
    public Eagle3CheckpointTests() => TestTorch.SingleThreaded();

    /// <summary>A mapping keeping 64 of the 320 ids: every fifth id.</summary>
    static VocabMapping Mapping(int v = 320, int vd = 64)
    {
        var counts = Enumerable.Range(0, vd).Select(i => KeyValuePair.Create((long)(i * (v / vd)), (long)(1000 - i))).ToList();
        return VocabMapping.Build(counts, vd, v);
    }

    static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.to(ScalarType.Float64).eq(b.to(ScalarType.Float64)).all().item<bool>();

    public static TheoryData<string> Styles => new() { "head", "qwen3", "classic", "tied-verifier" };

    static (TinyModelOptions Verifier, Eagle3DraftOptions Draft, string[] NewerVllm) Case(string style) => style switch
    {
        "head" => (new TinyModelOptions { Seed = 1 }, Eagle3DraftOptions.HeadDefaults, ["norm_output=true"]),
        "qwen3" => (new TinyModelOptions { Family = ModelFamily.Qwen3, HeadDim = 24, Seed = 2 },
            Eagle3DraftOptions.HeadDefaults with { LayerStyle = Eagle3LayerStyle.Qwen3, NumLayers = 2, NormBeforeFc = false, FcNorm = true, SlidingWindow = 16 },
            ["fc_norm=true", "norm_output=true", "transformer_layer_config.model_type=qwen3"]),
        "classic" => (new TinyModelOptions { Seed = 3 }, Eagle3DraftOptions.Classic, []),
        _ => (new TinyModelOptions { TieWordEmbeddings = true, Seed = 4 }, Eagle3DraftOptions.HeadDefaults with { AuxLayerIds = [1, 3] }, ["norm_output=true", "eagle_aux_hidden_state_layer_ids with 2 ids"]),
    };

    [Theory]
    [MemberData(nameof(Styles))]
    public void FreshDraftFromTinyVerifierSavesACheckpointThatPassesValidate(string style)
    {
        var (vopt, dopt, newer) = Case(style);
        using var dir = new TempDir();
        string verifierDir = TinyModelFactory.Create(dir.File("verifier"), vopt with { WriteTokenizer = false });
        using var scope = NewDisposeScope();
        using var vw = Eagle3VerifierWeights.FromDirectory(verifierDir);
        var mapping = Mapping();
        using var draft = Eagle3Builder.FromVerifier(vw, dopt with { Seed = 7 }, mapping, "org/tiny-verifier");
        string ckpt = dir.File("draft");
        var files = Eagle3Checkpoint.Save(draft, ckpt);
        Assert.Equal(["model.safetensors", "config.json"], files);

        var report = SpeculatorsCheckpoint.Validate(ckpt, verifierDir);
        Assert.True(report.IsValid, report.ToText());
        Assert.Equal(newer.Order(), report.NewerVllm.Select(r => r.Setting).Order());

        // Exactly the tensors vLLM expects, bf16 floats, int64 d2t, bool t2d.
        using var st = SafeTensorsFile.Open(Path.Combine(ckpt, "model.safetensors"));
        var expected = Eagle3Checkpoint.ExpectedTensors(draft.Config, draft.Decoder).Where(e => e.Written).Select(e => e.Name).Order(StringComparer.Ordinal);
        Assert.Equal(expected, st.Keys.Order(StringComparer.Ordinal));
        foreach (var info in st.Header.Tensors)
            Assert.Equal(info.Name switch { "d2t" => SafeTensorsDType.I64, "t2d" => SafeTensorsDType.BOOL, _ => SafeTensorsDType.BF16 }, info.DType);
        if (dopt.LayerStyle == Eagle3LayerStyle.Qwen3)
        {
            Assert.True(st.Contains("layers.1.self_attn.q_norm.weight"));
            Assert.True(st.Contains("fc_norm.2.weight"));
        }

        // Config: every flag explicit, no top-level model_type, dtype in both spellings, verifier recorded.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt, "config.json")))!.AsObject();
        foreach (var k in new[] { "norm_before_residual", "norm_before_fc", "fc_norm", "norm_output", "embed_requires_grad", "eagle_aux_hidden_state_layer_ids" })
            Assert.True(json.ContainsKey(k), k);
        Assert.False(json.ContainsKey("model_type"));
        Assert.False(json.ContainsKey("auto_map"));
        Assert.Equal("bfloat16", json["torch_dtype"]!.GetValue<string>());
        Assert.Equal("bfloat16", json["dtype"]!.GetValue<string>());
        Assert.Equal("org/tiny-verifier", json["speculators_config"]!["verifier"]!["name_or_path"]!.GetValue<string>());
        Assert.Equal(vopt.Family.Architecture(), json["speculators_config"]!["verifier"]!["architectures"]![0]!.GetValue<string>());
        Assert.Equal(64, json["draft_vocab_size"]!.GetValue<int>());
        var tlc = json["transformer_layer_config"]!.AsObject();
        Assert.Equal(dopt.LayerStyle == Eagle3LayerStyle.Qwen3 ? "qwen3" : "llama", tlc["model_type"]!.GetValue<string>());
        Assert.Equal(dopt.SlidingWindow != null ? "sliding_attention" : "full_attention", tlc["layer_types"]![0]!.GetValue<string>());
        Assert.Equal(320, tlc["vocab_size"]!.GetValue<int>());

        // Embedding copied from the verifier; lm_head = verifier lm_head rows of the kept ids (the embedding when tied).
        using var verifier = CausalLM.LoadFromDirectory(verifierDir, ScalarType.Float32, torch.CPU);
        Assert.True(Same(verifier.model.embed_tokens.weight, draft.embed_tokens.weight));
        var rows = verifier.LmHeadWeight.index_select(0, torch.tensor(mapping.SelectedTargetIds()));
        Assert.True(Same(rows, draft.lm_head.weight));
        Assert.True(Same(rows, draft.verifier_lm_head!.weight));
        Assert.True(Same(verifier.model.norm.weight, draft.verifier_norm!.weight));
        Assert.DoesNotContain(draft.StateDictForSaving(), kv => kv.Key.StartsWith("verifier_", StringComparison.Ordinal));
        // Parameter groups: the embedding and lm_head are frozen, the rest trains.
        Assert.Equal(["embed_tokens.weight", "lm_head.weight", "verifier_lm_head.weight", "verifier_norm.weight"],
            draft.FrozenParameters().Select(p => p.Name).Order(StringComparer.Ordinal));
        Assert.All(draft.TrainableParameters(), p => Assert.True(p.Param.requires_grad));
        Assert.All(draft.FrozenParameters(), p => Assert.False(p.Param.requires_grad));
    }

    [Fact]
    public void InitializationIsHfStyleAndDeterministicInTheSeed()
    {
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { HiddenSize = 128, IntermediateSize = 256, Seed = 5 });
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        using var a = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { Seed = 11 }, null, null);
        using var b = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { Seed = 11 }, null, null);
        using var c = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { Seed = 12 }, null, null);
        foreach (var ((name, pa), (_, pb)) in a.Weights().Zip(b.Weights())) Assert.True(Same(pa, pb), name);
        Assert.False(Same(a.fc.weight, c.fc.weight));
        Assert.True(Same(a.input_norm!.weight, torch.ones(3 * 128)));
        Assert.True(Same(((Eagle3FirstLayer)a.layers[0]).hidden_norm.weight, torch.ones(128)));
        double std = a.fc.weight.std().item<float>();
        Assert.InRange(std, 0.019, 0.021); // 49k draws of N(0, 0.02²)
        Assert.InRange(a.fc.weight.mean().item<float>(), -0.0005, 0.0005);
        // Vd == V: no vocabulary mapping buffers, lm_head is the verifier's whole head.
        Assert.False(a.HasVocabMapping);
        Assert.DoesNotContain(a.StateDictForSaving(), kv => kv.Key is "d2t" or "t2d");
        Assert.True(Same(verifier.LmHeadWeight, a.lm_head.weight));
    }

    [Fact]
    public void SaveThenLoadGivesAnIdenticalForward()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { Seed = 9 });
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        using var draft = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { NumLayers = 2, Seed = 3 }, Mapping(), "v");
        Eagle3Checkpoint.Save(draft, dir.File("f32"), ScalarType.Float32);
        Eagle3Checkpoint.Save(draft, dir.File("bf16"));
        using var f32 = Eagle3Checkpoint.Load(dir.File("f32"));
        using var bf16 = Eagle3Checkpoint.Load(dir.File("bf16"));
        foreach (var (name, p) in draft.StateDictForSaving())
        {
            var loaded = f32.StateDictForSaving().Single(kv => kv.Key == name).Value;
            Assert.True(Same(p, loaded), name);
            var rounded = bf16.StateDictForSaving().Single(kv => kv.Key == name).Value;
            Assert.True(Same(p.is_floating_point() ? p.to(ScalarType.BFloat16) : p, rounded), name + " (bf16)");
        }
        var gen = new Generator(42);
        var aux = torch.randn([1, 6, 3 * 64], generator: gen);
        var ids = torch.tensor(new long[] { 5, 17, 250, 3, 99, 1 }).unsqueeze(0);
        var pos = torch.arange(6, ScalarType.Int64).unsqueeze(0);
        Tensor Forward(Eagle3DraftModel m)
        {
            using var backend = new SdpaAttentionBackend(null, null, 1, 6);
            var x = m.RunLayers(m.Embed(ids), m.CombineAuxHidden(aux), pos, backend);
            return m.Head(x).Logits;
        }
        Assert.True(Same(Forward(draft), Forward(f32)), "forward after a float32 save/load differs");
        // Saving again over the same directory replaces the files (no stale shards, still valid).
        Eagle3Checkpoint.Save(f32, dir.File("f32"), ScalarType.Float32);
        Assert.True(SpeculatorsCheckpoint.Validate(dir.File("f32")).IsValid);
    }

    [Fact]
    public void LoadsMidlayerNamesAndFillsAMissingEmbeddingAndLmHeadFromTheVerifier()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        string src = Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic);
        string edited = Eagle3Fixtures.CopyCheckpoint(src, dir.File("research"), t =>
        {
            var result = new Dictionary<string, Tensor>();
            foreach (var (k, v) in t)
                if (k is not ("embed_tokens.weight" or "lm_head.weight" or "t2d"))
                    result[k.StartsWith("layers.0.", StringComparison.Ordinal) ? "midlayer." + k["layers.0.".Length..] : k] = v;
            return result;
        });
        var e = Assert.Throws<SpeculatorsException>(() => Eagle3Checkpoint.Load(edited));
        Assert.Contains("embed_tokens.weight and lm_head.weight", e.Message);
        Assert.Contains("--verifier", e.Message);

        using var verifier = CausalLM.LoadFromDirectory(Eagle3Fixtures.VerifierDir, ScalarType.Float32, torch.CPU);
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        using var loaded = Eagle3Checkpoint.Load(edited, vw);
        using var original = Eagle3Checkpoint.Load(src, vw);
        var layer = (Eagle3FirstLayer)loaded.layers[0];
        var want = (Eagle3FirstLayer)original.layers[0];
        Assert.True(Same(want.self_attn.q_proj.weight, layer.self_attn.q_proj.weight));
        Assert.True(Same(want.hidden_norm.weight, layer.hidden_norm.weight));
        Assert.True(Same(verifier.model.embed_tokens.weight, loaded.embed_tokens.weight));
        using var ids = original.SelectedTargetIds();
        Assert.True(Same(verifier.LmHeadWeight.index_select(0, ids), loaded.lm_head.weight));
        // t2d was rebuilt from d2t.
        Assert.True(Same(original.t2d!, loaded.t2d!));
    }

    [Fact]
    public void LoadRejectsBadTensorsNamingTheKeyAndBothValues()
    {
        using var dir = new TempDir();
        string src = Eagle3Fixtures.DraftDir(Eagle3Fixtures.Classic);
        string extra = Eagle3Fixtures.CopyCheckpoint(src, dir.File("extra"), t => { t["fc.bias"] = torch.zeros(48); return t; });
        Assert.Contains("unknown tensor 'fc.bias'", Assert.Throws<SpeculatorsException>(() => Eagle3Checkpoint.Load(extra)).Message);

        string shape = Eagle3Fixtures.CopyCheckpoint(src, dir.File("shape"), t => { t["fc.weight"] = torch.zeros(48, 96); return t; });
        Assert.Contains("'fc.weight' has shape [48, 96], but config.json implies [48, 144]", Assert.Throws<SpeculatorsException>(() => Eagle3Checkpoint.Load(shape)).Message);

        string mismatch = Eagle3Fixtures.CopyCheckpoint(src, dir.File("t2d"), t =>
        {
            var t2d = t["t2d"].clone();
            var d2t = t["d2t"];
            long first = d2t[0].item<long>(); // draft id 0 → target id d2t[0]
            t2d[first] = torch.tensor(false);
            long free = Enumerable.Range(0, 257).First(i => i != first && !t2d[i].item<bool>());
            t2d[free] = torch.tensor(true);
            t["t2d"] = t2d;
            return t;
        });
        var m = Assert.Throws<SpeculatorsException>(() => Eagle3Checkpoint.Load(mismatch)).Message;
        Assert.Contains("disagree", m);
        Assert.Contains("draft id 0 maps to target id", m);
    }
}
