using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>Bad model directories give messages naming the file, tensor or field, and never crash the process.</summary>
public class LoadErrorTests
{
    public LoadErrorTests() => TestTorch.SingleThreaded();

    static TempDir Model(TinyModelOptions? o = null)
    {
        var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, o ?? new TinyModelOptions { NumLayers = 2, HiddenSize = 32, WriteTokenizer = false, VocabSize = 64 });
        return dir;
    }

    static void Rewrite(string dir, Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>> edit)
    {
        Dictionary<string, Tensor> tensors;
        using (var st = SafeTensorsFile.Open(Path.Combine(dir, "model.safetensors"))) tensors = st.LoadAll();
        SafeTensorsWriter.Save(Path.Combine(dir, "model.safetensors"), edit(tensors));
    }

    static SpeculatorsException LoadFails(string dir) =>
        Assert.Throws<SpeculatorsException>(() => CausalLM.LoadFromDirectory(dir, ScalarType.Float32, torch.CPU).Dispose());

    [Fact]
    public void WrongShapeNamesTensorAndBothShapes()
    {
        using var dir = Model();
        using var scope = NewDisposeScope();
        Rewrite(dir.Path, t =>
        {
            t["model.layers.1.self_attn.k_proj.weight"] = torch.zeros(8, 32); // config implies [16, 32]
            return t;
        });
        var e = LoadFails(dir.Path);
        Assert.Contains("'model.layers.1.self_attn.k_proj.weight'", e.Message);
        Assert.Contains("[8, 32]", e.Message);
        Assert.Contains("[16, 32]", e.Message);
    }

    [Fact]
    public void MissingWeightIsNamed()
    {
        using var dir = Model();
        using var scope = NewDisposeScope();
        Rewrite(dir.Path, t =>
        {
            t.Remove("model.layers.0.mlp.up_proj.weight");
            t.Remove("lm_head.weight");
            return t;
        });
        var e = LoadFails(dir.Path);
        Assert.Contains("'model.layers.0.mlp.up_proj.weight'", e.Message);
        Assert.Contains("'lm_head.weight'", e.Message);
        Assert.Contains("tie_word_embeddings", e.Message);
    }

    [Fact]
    public void IntegerWeightsAreRejected()
    {
        using var dir = Model();
        using var scope = NewDisposeScope();
        Rewrite(dir.Path, t =>
        {
            t["model.norm.weight"] = torch.ones([32], ScalarType.Int32);
            return t;
        });
        Assert.Contains("I32", LoadFails(dir.Path).Message);
    }

    [Fact]
    public void ConfigProblemsNameTheFieldOrListSupportedArchitectures()
    {
        using var dir = Model();
        string path = dir.File("config.json");
        var cfg = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        cfg["architectures"] = new JsonArray("GPTNeoXForCausalLM");
        cfg["model_type"] = "gpt_neox";
        File.WriteAllText(path, cfg.ToJsonString());
        var e = LoadFails(dir.Path);
        Assert.Contains("GPTNeoXForCausalLM", e.Message);
        Assert.Contains("LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM", e.Message);
        cfg["architectures"] = new JsonArray("LlamaForCausalLM");
        cfg.Remove("num_hidden_layers");
        File.WriteAllText(path, cfg.ToJsonString());
        Assert.Contains("'num_hidden_layers'", LoadFails(dir.Path).Message);
        cfg["num_hidden_layers"] = "two";
        File.WriteAllText(path, cfg.ToJsonString());
        Assert.Contains("'num_hidden_layers'", LoadFails(dir.Path).Message);
    }

    [Fact]
    public void ModelsFromMultimodalStyleKeyPrefixesLoad()
    {
        using var dir = Model();
        using var scope = NewDisposeScope();
        using var before = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        Rewrite(dir.Path, t => t.ToDictionary(kv => kv.Key.StartsWith("model.") ? "model.language_model." + kv.Key[6..] : kv.Key, kv => kv.Value));
        using var after = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        var ids = torch.tensor(new long[] { 1, 2, 3 }).unsqueeze(0);
        using var a = before.Forward(ids);
        using var b = after.Forward(ids);
        Assert.True(a.Logits!.eq(b.Logits!).all().item<bool>());
    }
}

public class AuxLayerIdsTests
{
    [Theory]
    [InlineData(32, new[] { 2, 16, 29 })]
    [InlineData(36, new[] { 2, 18, 33 })]
    [InlineData(94, new[] { 2, 47, 91 })]
    [InlineData(8, new[] { 2, 4, 5 })]
    [InlineData(7, new[] { 2, 3, 4 })]
    [InlineData(6, new[] { 1, 3, 5 })]
    [InlineData(5, new[] { 1, 2, 4 })]
    [InlineData(4, new[] { 1, 2, 3 })]
    public void DefaultsAreDistinctAscendingInsideTheModel(int n, int[] expected)
    {
        var ids = AuxLayerIds.Default(n);
        Assert.Equal(expected, ids);
        AuxLayerIds.ValidateEagle3(ids, n);
    }

    [Theory]
    [InlineData(3)]
    [InlineData(1)]
    public void TooFewLayersAreRejected(int n) =>
        Assert.Contains("at least 4 layers", Assert.Throws<SpeculatorsException>(() => AuxLayerIds.Default(n)).Message);

    [Fact]
    public void ValidationAndNormalization()
    {
        Assert.Contains("outside [1, 7]", Assert.Throws<SpeculatorsException>(() => AuxLayerIds.ValidateEagle3([2, 8], 8, "--aux")).Message);
        Assert.Contains("ascending", Assert.Throws<SpeculatorsException>(() => AuxLayerIds.ValidateEagle3([4, 2, 6], 8)).Message);
        Assert.Equal(new[] { 0, 3, 8 }, AuxLayerIds.NormalizeCapture([8, 3, 0, 3], 8));
        Assert.Contains("layer id 9 is out of range [0, 8]", Assert.Throws<SpeculatorsException>(() => AuxLayerIds.NormalizeCapture([9], 8)).Message);
        Assert.Equal(new[] { 0, 2, 5 }, AuxLayerIds.Parse(" 0, 2,5 ", "--layer-ids"));
        Assert.Contains("'x'", Assert.Throws<SpeculatorsException>(() => AuxLayerIds.Parse("1,x", "--layer-ids")).Message);
        Assert.Equal(new[] { 2, 4, 5, 8 }, AuxLayerIds.DefaultDump(8));
        Assert.Equal(new[] { 0, 1, 2 }, AuxLayerIds.DefaultDump(2));
    }
}
