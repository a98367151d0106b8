using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>
/// The float32 verifier against the independent float64 reference on random tiny configurations covering
/// GQA ratios, head_dim ≠ hidden/heads, tied and untied embeddings, every RoPE type in both config forms,
/// partial rotary, q/k norms, attention and MLP biases, sliding windows and per-layer-type RoPE. Models go
/// through the whole file path: config.json + model.safetensors written, parsed and loaded.
/// </summary>
public class ForwardReferenceTests
{
    public ForwardReferenceTests() => TestTorch.SingleThreaded();

    static RopeConfig R(RopeType type, double theta = 10000, double factor = 1, int? orig = null) =>
        new() { Type = type, HeadDim = 0, Theta = theta, Factor = factor, OriginalMaxPositionEmbeddings = orig };

    public static readonly Dictionary<string, (TinyModelOptions Options, int Tokens)> Cases = new()
    {
        ["llama-gqa-default-v4"] = (new TinyModelOptions { Seed = 1, NumLayers = 3, HiddenSize = 32, NumHeads = 4, NumKvHeads = 2, VocabSize = 97 * 3, WriteTokenizer = false }, 14),
        ["llama-mqa-headdim-bias-linear-tied-gelu-v5"] = (new TinyModelOptions
        {
            Seed = 2, NumLayers = 2, HiddenSize = 32, NumHeads = 4, NumKvHeads = 1, HeadDim = 12, AttentionBias = true, MlpBias = true,
            TieWordEmbeddings = true, HiddenAct = "gelu", Rope = R(RopeType.Linear, 5000, 2.5), ConfigForm = HfConfigForm.Transformers5, WriteTokenizer = false,
        }, 12),
        ["llama-llama3-partial-v4"] = (new TinyModelOptions
        {
            Seed = 3, NumLayers = 2, HiddenSize = 48, NumHeads = 2, NumKvHeads = 2, HeadDim = 24,
            Rope = R(RopeType.Llama3, 500000, 8, 16) with { LowFreqFactor = 1, HighFreqFactor = 4, PartialRotaryFactor = 0.5 }, WriteTokenizer = false,
        }, 20),
        ["llama-dynamic-beyond-max-v5"] = (new TinyModelOptions
        {
            Seed = 4, NumLayers = 2, HiddenSize = 32, NumHeads = 4, NumKvHeads = 2, MaxPositionEmbeddings = 8, Rope = R(RopeType.Dynamic, 10000, 2),
            ConfigForm = HfConfigForm.Transformers5, WriteTokenizer = false, HiddenAct = "gelu_pytorch_tanh",
        }, 13),
        ["llama-yarn-mscale-notruncate-v5"] = (new TinyModelOptions
        {
            Seed = 5, NumLayers = 2, HiddenSize = 32, NumHeads = 2, NumKvHeads = 1,
            Rope = R(RopeType.Yarn, 10000, 4, 8) with { Mscale = 0.9, MscaleAllDim = 0.6, Truncate = false, BetaFast = 16 },
            ConfigForm = HfConfigForm.Transformers5, WriteTokenizer = false,
        }, 16),
        ["qwen2-sliding-yarn-v4"] = (new TinyModelOptions
        {
            Family = ModelFamily.Qwen2, Seed = 6, NumLayers = 4, HiddenSize = 32, NumHeads = 4, NumKvHeads = 2, SlidingWindow = 4,
            Rope = R(RopeType.Yarn, 10000, 2, 16), WriteTokenizer = false,
        }, 12),
        ["qwen3-qknorm-headdim-bias-tied-v5"] = (new TinyModelOptions
        {
            Family = ModelFamily.Qwen3, Seed = 7, NumLayers = 3, HiddenSize = 48, NumHeads = 6, NumKvHeads = 2, HeadDim = 12, AttentionBias = true,
            TieWordEmbeddings = true, Rope = R(RopeType.Default, 1_000_000), ConfigForm = HfConfigForm.Transformers5, WriteTokenizer = false,
        }, 11),
        ["qwen3-layer-types-rope-per-type-v5"] = (new TinyModelOptions
        {
            Family = ModelFamily.Qwen3, Seed = 8, NumLayers = 3, HiddenSize = 32, NumHeads = 4, NumKvHeads = 4, SlidingWindow = 3,
            LayerTypes = [DecoderConfig.SlidingAttention, DecoderConfig.FullAttention, DecoderConfig.SlidingAttention],
            RopeByLayerType = new Dictionary<string, RopeConfig>
            {
                [DecoderConfig.FullAttention] = R(RopeType.Default, 100000),
                [DecoderConfig.SlidingAttention] = R(RopeType.Linear, 5000, 2),
            },
            ConfigForm = HfConfigForm.Transformers5, WriteTokenizer = false,
        }, 10),
        ["mistral-sliding-gqa4-linear-v4"] = (new TinyModelOptions
        {
            Family = ModelFamily.Mistral, Seed = 9, NumLayers = 2, HiddenSize = 64, NumHeads = 8, NumKvHeads = 2, SlidingWindow = 5,
            Rope = R(RopeType.Linear, 10000, 4), WriteTokenizer = false, HiddenAct = "relu",
        }, 12),
    };

    public static TheoryData<string> CaseNames() => new(Cases.Keys);

    internal static Fp64Reference.Spec SpecFor(TinyModelOptions o)
    {
        int hd = o.HeadDim ?? o.HiddenSize / o.NumHeads;
        RopeConfig Fill(RopeConfig r) => r with { HeadDim = hd, MaxPositionEmbeddings = o.MaxPositionEmbeddings };
        string LayerType(int l) => o.Family switch
        {
            ModelFamily.Mistral => o.SlidingWindow != null ? DecoderConfig.SlidingAttention : DecoderConfig.FullAttention,
            ModelFamily.Qwen2 or ModelFamily.Qwen3 => o.LayerTypes?[l] ?? (o.SlidingWindow != null && l >= o.NumLayers / 2 ? DecoderConfig.SlidingAttention : DecoderConfig.FullAttention),
            _ => DecoderConfig.FullAttention,
        };
        return new Fp64Reference.Spec
        {
            Layers = o.NumLayers, Heads = o.NumHeads, KvHeads = o.NumKvHeads, HeadDim = hd, Eps = o.RmsNormEps,
            QkNorm = o.Family == ModelFamily.Qwen3, Tied = o.TieWordEmbeddings, Act = o.HiddenAct,
            Window = l => LayerType(l) == DecoderConfig.SlidingAttention ? o.SlidingWindow : null,
            Rope = l => Fill(o.RopeByLayerType?[LayerType(l)] ?? o.Rope ?? new RopeConfig { HeadDim = hd }),
        };
    }

    internal static Dictionary<string, Tensor> ReadWeights(string dir)
    {
        using var ckpt = SafeTensorsCheckpoint.Open(dir);
        return ckpt.Keys.ToDictionary(k => k, k => ckpt.Load(k, ScalarType.Float64));
    }

    internal static long[] RandomIds(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (long)rng.Next(vocab)).ToArray();
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Float32ForwardMatchesFloat64Reference(string name)
    {
        var (o, tokens) = Cases[name];
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, o with { InitStd = 0.2 });
        using var scope = NewDisposeScope();
        using var model = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        var ids = RandomIds(tokens, o.VocabSize, (int)o.Seed);
        var (refHidden, refLogits) = Fp64Reference.Forward(SpecFor(o), ReadWeights(dir.Path), ids);
        int n = o.NumLayers;
        using var outp = model.Forward(torch.tensor(ids).unsqueeze(0), captureLayerIds: Enumerable.Range(0, n + 1).Reverse().ToArray());
        for (int k = 0; k <= n; k++)
            ReferenceModelTests.AssertClose(refHidden[k], outp.HiddenStates![0].select(1, k), 1e-4, $"{name} hidden id {k}");
        ReferenceModelTests.AssertClose(refLogits, outp.Logits![0], 1e-4, $"{name} logits");
        // The reference itself is sensitive to the features under test: dropping the window or the RoPE
        // scaling changes its output (so agreement is not vacuous).
        var plain = SpecFor(o) with { Window = _ => null, Rope = l => new RopeConfig { HeadDim = SpecFor(o).HeadDim } };
        var (_, plainLogits) = Fp64Reference.Forward(plain, ReadWeights(dir.Path), ids);
        bool hasFeature = o.SlidingWindow != null || o.Rope != null || o.RopeByLayerType != null;
        if (hasFeature) Assert.True(plainLogits.sub(refLogits).abs().max().item<double>() > 1e-3, $"{name}: features had no effect");
    }

    [Fact]
    public void BFloat16ForwardTracksFloat64Reference()
    {
        var (o, tokens) = Cases["qwen3-qknorm-headdim-bias-tied-v5"];
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, o with { InitStd = 0.2, SaveDType = ScalarType.BFloat16 });
        using var scope = NewDisposeScope();
        using var model = CausalLM.LoadFromDirectory(dir.Path, ScalarType.BFloat16, torch.CPU);
        Assert.Equal(ScalarType.BFloat16, model.LmHeadWeight.dtype);
        var ids = RandomIds(tokens, o.VocabSize, 3);
        var (_, refLogits) = Fp64Reference.Forward(SpecFor(o), ReadWeights(dir.Path), ids);
        using var outp = model.Forward(torch.tensor(ids).unsqueeze(0));
        Assert.Equal(ScalarType.BFloat16, outp.Logits!.dtype);
        ReferenceModelTests.AssertClose(refLogits, outp.Logits[0], 5e-2, "bf16 logits");
    }
}
