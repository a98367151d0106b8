using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Modeling;

namespace Speculators.Tests.Cli;

public class InspectTests
{
    public InspectTests() => TestTorch.SingleThreaded();

    public static TheoryData<ModelFamily> Families() => new(Enum.GetValues<ModelFamily>());

    [Theory]
    [MemberData(nameof(Families))]
    public void InspectReportsTheModelInTextAndJson(ModelFamily family)
    {
        using var dir = new TempDir();
        var o = new TinyModelOptions
        {
            Family = family, NumLayers = 6, HeadDim = family == ModelFamily.Qwen3 ? 24 : null, TieWordEmbeddings = family == ModelFamily.Qwen3,
            Rope = family == ModelFamily.Llama ? new RopeConfig { Type = RopeType.Llama3, HeadDim = 0, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 64 } : null,
            SaveDType = TorchSharp.torch.ScalarType.BFloat16, WriteTokenizer = false,
        };
        TinyModelFactory.Create(dir.Path, o);
        var dc = TinyModelFactory.BuildConfig(o);

        var text = CliRunner.Ok("inspect", dir.Path).Stdout;
        Assert.Contains(family.Architecture(), text);
        Assert.Contains("[1, 3, 5]", text); // N = 6: [2, 3, 3] collapses, so three distinct ids spread over [1, 5]
        Assert.Contains(dc.ParameterCount().ToString("N0", System.Globalization.CultureInfo.InvariantCulture), text);

        var json = JsonNode.Parse(CliRunner.Ok("inspect", dir.Path, "--json").Stdout)!;
        Assert.Equal(family.Architecture(), json["architecture"]!.GetValue<string>());
        Assert.Equal(6, json["num_hidden_layers"]!.GetValue<int>());
        Assert.Equal(64, json["hidden_size"]!.GetValue<int>());
        Assert.Equal(4, json["num_attention_heads"]!.GetValue<int>());
        Assert.Equal(2, json["num_key_value_heads"]!.GetValue<int>());
        Assert.Equal(dc.HeadDim, json["head_dim"]!.GetValue<int>());
        Assert.Equal(320, json["vocab_size"]!.GetValue<int>());
        Assert.Equal("bfloat16", json["dtype"]!.GetValue<string>());
        Assert.Equal("BF16", json["weight_dtypes"]![0]!.GetValue<string>());
        Assert.Equal(dc.ParameterCount(), json["parameter_count"]!.GetValue<long>());
        Assert.Equal(family == ModelFamily.Llama ? "llama3" : "default", json["rope_type"]!.GetValue<string>());
        Assert.Equal(new[] { 1, 3, 5 }, json["eagle3_aux_layer_ids"]!.AsArray().Select(x => x!.GetValue<int>()));
    }

    [Fact]
    public void InspectErrorsAreMessagesNotCrashes()
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("inspect", dir.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no config.json", r.Stderr);
        File.WriteAllText(dir.File("config.json"), "{\"architectures\": [\"BertModel\"]}");
        r = CliRunner.Run("inspect", dir.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("Supported: LlamaForCausalLM", r.Stderr);
        File.WriteAllText(dir.File("config.json"), "{\"model_type\": \"llama\", \"vocab_size\": 10, \"hidden_size\": 8, \"intermediate_size\": 8, \"num_hidden_layers\": 3, \"num_attention_heads\": 2}");
        var small = JsonNode.Parse(CliRunner.Ok("inspect", dir.Path, "--json").Stdout)!;
        Assert.Null(small["eagle3_aux_layer_ids"]);
        Assert.Equal("config", small["parameter_count_source"]!.GetValue<string>());
        Assert.Contains("needs at least 4 layers", CliRunner.Ok("inspect", dir.Path).Stdout);
    }
}
