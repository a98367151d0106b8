using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>Shape and options of a tiny random model (defaults: a 4-layer GQA model, H = 64).</summary>
public sealed record TinyModelOptions
{
    public ModelFamily Family { get; init; } = ModelFamily.Llama;
    public int NumLayers { get; init; } = 4;
    public int HiddenSize { get; init; } = 64;
    public int IntermediateSize { get; init; } = 128;
    public int NumHeads { get; init; } = 4;
    public int NumKvHeads { get; init; } = 2;
    /// <summary>Null: hidden/heads (Qwen3 configs always carry it explicitly).</summary>
    public int? HeadDim { get; init; }
    /// <summary>Model and tokenizer vocabulary size (≥ 259).</summary>
    public int VocabSize { get; init; } = 320;
    public int MaxPositionEmbeddings { get; init; } = 512;
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Llama/Qwen3 <c>attention_bias</c> (Qwen2 always has q/k/v biases; Mistral never).</summary>
    public bool AttentionBias { get; init; }
    /// <summary>Llama <c>mlp_bias</c>.</summary>
    public bool MlpBias { get; init; }
    /// <summary>RoPE (its HeadDim and MaxPositionEmbeddings are filled in); null = default RoPE, θ = 10000.</summary>
    public RopeConfig? Rope { get; init; }
    /// <summary>RoPE per attention layer type (transformers 5.x nested <c>rope_parameters</c>; needs that config form).</summary>
    public IReadOnlyDictionary<string, RopeConfig>? RopeByLayerType { get; init; }
    /// <summary>Sliding window for Mistral (every layer) or for the Qwen sliding layers.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>Qwen2/Qwen3: per-layer types; null with a window = layers from <see cref="NumLayers"/>/2 on slide.</summary>
    public IReadOnlyList<string>? LayerTypes { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public double RmsNormEps { get; init; } = 1e-6;
    public HfConfigForm ConfigForm { get; init; } = HfConfigForm.Transformers4;
    /// <summary>dtype of the saved weights (float32 or bfloat16).</summary>
    public ScalarType SaveDType { get; init; } = ScalarType.Float32;
    public long Seed { get; init; }
    /// <summary>Standard deviation of the random weights (norm weights are 1 + noise of this size).</summary>
    public double InitStd { get; init; } = 0.02;
    public bool WriteTokenizer { get; init; } = true;
    /// <summary>Shard the weights above this many bytes (model-0000i-of-0000N.safetensors + index).</summary>
    public long MaxShardBytes { get; init; } = 5_000_000_000;
}

/// <summary>
/// Creates tiny random Hugging Face model directories, as transformers would save them: config.json,
/// generation_config.json, model.safetensors (or shards + index), tokenizer.json and tokenizer_config.json
/// (a real byte-level BPE with ChatML specials whose size equals the model's vocab_size). Used by tests,
/// benchmarks, CLI examples and the quickstart.
/// </summary>
public static class TinyModelFactory
{
    /// <summary>The resolved config for <paramref name="o"/>.</summary>
    public static DecoderConfig BuildConfig(TinyModelOptions o)
    {
        int headDim = o.HeadDim ?? o.HiddenSize / o.NumHeads;
        var rope = (o.Rope ?? new RopeConfig { HeadDim = headDim }) with { HeadDim = headDim, MaxPositionEmbeddings = o.MaxPositionEmbeddings };
        IReadOnlyList<string>? layerTypes = null;
        int? window = o.SlidingWindow;
        switch (o.Family)
        {
            case ModelFamily.Mistral:
                if (window != null) layerTypes = Enumerable.Repeat(DecoderConfig.SlidingAttention, o.NumLayers).ToList();
                break;
            case ModelFamily.Qwen2:
            case ModelFamily.Qwen3:
                layerTypes = o.LayerTypes ?? Enumerable.Range(0, o.NumLayers)
                    .Select(i => window != null && i >= o.NumLayers / 2 ? DecoderConfig.SlidingAttention : DecoderConfig.FullAttention).ToList();
                break;
            case ModelFamily.Llama:
                if (window != null || o.LayerTypes != null) throw new SpeculatorsException("Llama models have no sliding-window layers.");
                break;
        }
        var dc = new DecoderConfig
        {
            Family = o.Family,
            VocabSize = o.VocabSize,
            HiddenSize = o.HiddenSize,
            IntermediateSize = o.IntermediateSize,
            NumLayers = o.NumLayers,
            NumHeads = o.NumHeads,
            NumKvHeads = o.NumKvHeads,
            HeadDim = headDim,
            HiddenAct = o.HiddenAct,
            RmsNormEps = o.RmsNormEps,
            MaxPositionEmbeddings = o.MaxPositionEmbeddings,
            QkvBias = o.Family switch { ModelFamily.Qwen2 => true, ModelFamily.Mistral => false, _ => o.AttentionBias },
            OProjBias = o.Family is ModelFamily.Llama or ModelFamily.Qwen3 && o.AttentionBias,
            MlpBias = o.Family == ModelFamily.Llama && o.MlpBias,
            QkNorm = o.Family == ModelFamily.Qwen3,
            TieWordEmbeddings = o.TieWordEmbeddings,
            LayerTypes = layerTypes,
            SlidingWindow = window,
            Rope = rope,
            RopeByLayerType = o.RopeByLayerType?.ToDictionary(kv => kv.Key,
                kv => kv.Value with { HeadDim = headDim, MaxPositionEmbeddings = o.MaxPositionEmbeddings }),
            ConfigDtype = DTypeName(o.SaveDType),
        };
        dc.Validate("tiny model options");
        return dc;
    }

    /// <summary>HF's name of a torch dtype ("float32", "bfloat16", ...).</summary>
    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.Float32 => "float32",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new SpeculatorsException($"unsupported weight dtype {t}."),
    };

    /// <summary>Writes a tiny random model to <paramref name="directory"/> (created if needed) and returns the directory.</summary>
    public static string Create(string directory, TinyModelOptions? options = null)
    {
        var o = options ?? new TinyModelOptions();
        var dc = BuildConfig(o);
        Directory.CreateDirectory(directory);
        TinyTokenizer? tok = o.WriteTokenizer ? TinyTokenizer.Build(o.VocabSize) : null;
        long? bos = tok?.EndOfTextId, eos = tok?.ImEndId, pad = tok?.EndOfTextId;
        var hf = HfConfig.FromDecoder(dc, o.ConfigForm, DTypeName(o.SaveDType), bos, eos, pad);
        hf.Save(Path.Combine(directory, "config.json"));
        var gen = new JsonObject
        {
            ["bos_token_id"] = bos,
            ["eos_token_id"] = eos is long e && pad is long p ? new JsonArray(e, p) : null,
            ["pad_token_id"] = pad,
        };
        AtomicFile.WriteAllText(Path.Combine(directory, "generation_config.json"), gen.ToJsonString(HfJson.Write) + "\n");
        if (o.WriteTokenizer && tok != null)
        {
            AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer.json"), tok.TokenizerJson());
            AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), tok.TokenizerConfigJson(o.MaxPositionEmbeddings));
        }
        using var model = CausalLM.Create(dc, ScalarType.Float32, torch.CPU);
        model.InitializeRandom(o.Seed, o.InitStd);
        model.SaveWeights(directory, o.SaveDType, o.MaxShardBytes);
        return directory;
    }

    /// <summary>A tiny random model in memory (no files), with the same weights <see cref="Create"/> would write.</summary>
    public static CausalLM CreateInMemory(TinyModelOptions? options = null, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var o = options ?? new TinyModelOptions();
        var model = CausalLM.Create(BuildConfig(o), dtype, device ?? torch.CPU);
        model.InitializeRandom(o.Seed, o.InitStd);
        return model;
    }
}
