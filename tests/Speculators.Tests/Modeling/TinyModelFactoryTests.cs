using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

public class TinyModelFactoryTests
{
    public TinyModelFactoryTests() => TestTorch.SingleThreaded();

    public static TheoryData<ModelFamily> Families() => new(Enum.GetValues<ModelFamily>());

    [Theory]
    [MemberData(nameof(Families))]
    public void WritesAnHfDirectoryThatLoadsBackIdentically(ModelFamily family)
    {
        using var dir = new TempDir();
        var o = new TinyModelOptions { Family = family, Seed = 21, TieWordEmbeddings = family == ModelFamily.Qwen3 };
        TinyModelFactory.Create(dir.Path, o);
        foreach (var f in new[] { "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(dir.File(f)), f);
        var cfg = JsonNode.Parse(File.ReadAllText(dir.File("config.json")))!;
        Assert.Equal(family.Architecture(), cfg["architectures"]![0]!.GetValue<string>());
        Assert.Equal(320, cfg["vocab_size"]!.GetValue<int>());
        Assert.Equal("float32", cfg["torch_dtype"]!.GetValue<string>());
        using var st = SafeTensorsFile.Open(dir.File("model.safetensors"));
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.Equal(o.TieWordEmbeddings, !st.Contains("lm_head.weight"));
        Assert.Equal(family == ModelFamily.Qwen3, st.Contains("model.layers.0.self_attn.q_norm.weight"));
        Assert.Equal(family == ModelFamily.Qwen2, st.Contains("model.layers.0.self_attn.q_proj.bias"));

        using var scope = NewDisposeScope();
        using var loaded = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        using var memory = TinyModelFactory.CreateInMemory(o);
        Assert.Equal(family, loaded.Config.Family);
        var ids = torch.tensor(new long[] { 5, 17, 300, 2 }).unsqueeze(0);
        using var a = loaded.Forward(ids);
        using var b = memory.Forward(ids);
        Assert.True(a.Logits!.eq(b.Logits!).all().item<bool>());
        Assert.All(loaded.Weights(), w => Assert.False(w.Param.requires_grad));
        var summary = ModelSummary.FromDirectory(dir.Path);
        Assert.Equal(loaded.Weights().Sum(w => w.Param.numel()), summary.ParameterCount);
        Assert.Equal(loaded.Config.ParameterCount(), summary.ParameterCount);
    }

    [Fact]
    public void TokenizerLoadsInHfRustTokenizersWithMatchingIds()
    {
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, new TinyModelOptions { VocabSize = 400, NumLayers = 1, HiddenSize = 16, NumHeads = 2, NumKvHeads = 1, IntermediateSize = 16 });
        var tok = TinyTokenizer.Build(400);
        var hf = new Tokenizers.DotNet.Tokenizer(vocabPath: dir.File("tokenizer.json"));
        foreach (var text in new[] { "The draft model proposes tokens.", "Héllo wörld — ünïcode ✓ 123 + 4567!", "  spaces\n\tand tabs  ", "speculative decoding" })
        {
            var ids = hf.Encode(text).Select(i => (int)i).ToArray();
            Assert.Equal(tok.EncodeOrdinary(text), ids);
            Assert.All(ids, id => Assert.InRange(id, 0, 399));
            Assert.Equal(text, hf.Decode(ids.Select(i => (uint)i).ToArray()));
        }
        Assert.True(tok.EncodeOrdinary("speculative decoding").Count < "speculative decoding".Length, "merges should shorten common words");
        var chat = hf.Encode("<|im_start|>user\nHi<|im_end|>\n<|endoftext|>");
        Assert.Equal((uint)tok.ImStartId, chat[0]);
        Assert.Contains((uint)tok.ImEndId, chat);
        Assert.Equal((uint)tok.EndOfTextId, chat[^1]);
        Assert.Equal(400, tok.Vocab.Count + tok.Specials.Count);
        var max = tok.Specials.Values.Max();
        Assert.Equal(399, max);

        var tc = JsonNode.Parse(File.ReadAllText(dir.File("tokenizer_config.json")))!;
        Assert.Equal("<|im_end|>", tc["eos_token"]!.GetValue<string>());
        Assert.Contains("{% generation %}", tc["chat_template"]!.GetValue<string>());
        var config = Speculators.Text.TokenizerConfig.Load(dir.Path);
        Assert.Equal("<|im_end|>", config.EosToken);
        Assert.NotNull(config.GetChatTemplate());
        var gen = JsonNode.Parse(File.ReadAllText(dir.File("generation_config.json")))!;
        Assert.Equal(tok.ImEndId, gen["eos_token_id"]![0]!.GetValue<int>());
    }

    [Fact]
    public void LargeVocabulariesArePaddedWithReservedSpecials()
    {
        var tok = TinyTokenizer.Build(5000);
        Assert.Equal(5000, tok.Vocab.Count + tok.Specials.Count);
        Assert.Contains("<|reserved_special_token_0|>", tok.Specials.Keys);
        Assert.Throws<SpeculatorsException>(() => TinyTokenizer.Build(100));
    }

    [Fact]
    public void ShardedAndBf16CheckpointsLoad()
    {
        using var dir = new TempDir();
        var o = new TinyModelOptions { Family = ModelFamily.Mistral, Seed = 5, SaveDType = ScalarType.BFloat16, MaxShardBytes = 40_000, WriteTokenizer = false, ConfigForm = HfConfigForm.Transformers5 };
        TinyModelFactory.Create(dir.Path, o);
        Assert.True(File.Exists(dir.File("model.safetensors.index.json")));
        Assert.True(Directory.GetFiles(dir.Path, "model-*-of-*.safetensors").Length > 2);
        Assert.Contains("\"dtype\": \"bfloat16\"", File.ReadAllText(dir.File("config.json")));
        using var scope = NewDisposeScope();
        using var loaded = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        using var memory = TinyModelFactory.CreateInMemory(o, ScalarType.BFloat16);
        Assert.True(loaded.LmHeadWeight.to(ScalarType.BFloat16).eq(memory.LmHeadWeight).all().item<bool>());
    }
}
