namespace Speculators.Modeling;

/// <summary>The decoder families we run as verifiers.</summary>
public enum ModelFamily { Llama, Qwen2, Qwen3, Mistral }

/// <summary>Architecture names (config.json <c>architectures</c> / <c>model_type</c>) ↔ families.</summary>
public static class ModelFamilies
{
    public static readonly IReadOnlyDictionary<string, ModelFamily> ByArchitecture = new Dictionary<string, ModelFamily>(StringComparer.Ordinal)
    {
        ["LlamaForCausalLM"] = ModelFamily.Llama,
        ["Qwen2ForCausalLM"] = ModelFamily.Qwen2,
        ["Qwen3ForCausalLM"] = ModelFamily.Qwen3,
        ["MistralForCausalLM"] = ModelFamily.Mistral,
    };

    public static readonly IReadOnlyDictionary<string, ModelFamily> ByModelType = new Dictionary<string, ModelFamily>(StringComparer.Ordinal)
    {
        ["llama"] = ModelFamily.Llama,
        ["qwen2"] = ModelFamily.Qwen2,
        ["qwen3"] = ModelFamily.Qwen3,
        ["mistral"] = ModelFamily.Mistral,
    };

    public static string Architecture(this ModelFamily f) => f switch
    {
        ModelFamily.Llama => "LlamaForCausalLM",
        ModelFamily.Qwen2 => "Qwen2ForCausalLM",
        ModelFamily.Qwen3 => "Qwen3ForCausalLM",
        ModelFamily.Mistral => "MistralForCausalLM",
        _ => throw new ArgumentOutOfRangeException(nameof(f)),
    };

    public static string ModelType(this ModelFamily f) => f switch
    {
        ModelFamily.Llama => "llama",
        ModelFamily.Qwen2 => "qwen2",
        ModelFamily.Qwen3 => "qwen3",
        ModelFamily.Mistral => "mistral",
        _ => throw new ArgumentOutOfRangeException(nameof(f)),
    };

    public static string SupportedList => string.Join(", ", ByArchitecture.Keys);
}

/// <summary>Activation functions of the MLP (transformers' ACT2FN names).</summary>
public static class Activations
{
    public static readonly IReadOnlyList<string> Supported = ["silu", "swish", "gelu", "gelu_pytorch_tanh", "gelu_new", "relu"];

    public static bool IsSupported(string name) => Supported.Contains(name);
}

/// <summary>
/// A fully resolved decoder-only transformer description: every value the modules need, per layer
/// where it can vary (attention type, sliding window, RoPE). Produced from an HF config.json by
/// <see cref="Formats.HfConfig.ToDecoderConfig"/>, or built directly (tests, the Eagle-3 draft).
/// </summary>
public sealed record DecoderConfig
{
    public const string FullAttention = "full_attention";
    public const string SlidingAttention = "sliding_attention";

    public ModelFamily Family { get; init; } = ModelFamily.Llama;
    public required int VocabSize { get; init; }
    public required int HiddenSize { get; init; }
    public required int IntermediateSize { get; init; }
    public required int NumLayers { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public string HiddenAct { get; init; } = "silu";
    public double RmsNormEps { get; init; } = 1e-6;
    public int MaxPositionEmbeddings { get; init; } = 2048;
    /// <summary>Bias on q/k/v projections.</summary>
    public bool QkvBias { get; init; }
    /// <summary>Bias on the output projection.</summary>
    public bool OProjBias { get; init; }
    /// <summary>Bias on gate/up/down projections (Llama <c>mlp_bias</c>).</summary>
    public bool MlpBias { get; init; }
    /// <summary>Per-head RMSNorm on q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    public bool TieWordEmbeddings { get; init; }
    /// <summary>Attention type per layer (<see cref="FullAttention"/> or <see cref="SlidingAttention"/>); null = all full.</summary>
    public IReadOnlyList<string>? LayerTypes { get; init; }
    /// <summary>Window (in tokens, including the current one) of sliding-attention layers.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary>RoPE of every layer unless <see cref="RopeByLayerType"/> has an entry for the layer's type.</summary>
    public required RopeConfig Rope { get; init; }
    public IReadOnlyDictionary<string, RopeConfig>? RopeByLayerType { get; init; }
    /// <summary>The dtype named in the config (<c>torch_dtype</c>/<c>dtype</c>), if any.</summary>
    public string? ConfigDtype { get; init; }
    public int? PadTokenId { get; init; }

    public string LayerType(int layer) => LayerTypes?[layer] ?? FullAttention;

    /// <summary>Sliding window of <paramref name="layer"/>, or null for full attention.</summary>
    public int? SlidingWindowFor(int layer) => LayerType(layer) == SlidingAttention ? SlidingWindow : null;

    public RopeConfig RopeFor(int layer) =>
        RopeByLayerType != null && RopeByLayerType.TryGetValue(LayerType(layer), out var r) ? r : Rope;

    /// <summary>Checks consistency; <paramref name="where"/> names the source in messages.</summary>
    public void Validate(string where = "model config")
    {
        void Positive(string field, int value)
        {
            if (value <= 0) throw new SpeculatorsException($"{where}: {field} must be a positive integer, found {value}.");
        }
        Positive("vocab_size", VocabSize);
        Positive("hidden_size", HiddenSize);
        Positive("intermediate_size", IntermediateSize);
        Positive("num_hidden_layers", NumLayers);
        Positive("num_attention_heads", NumHeads);
        Positive("num_key_value_heads", NumKvHeads);
        Positive("head_dim", HeadDim);
        Positive("max_position_embeddings", MaxPositionEmbeddings);
        if (NumHeads % NumKvHeads != 0)
            throw new SpeculatorsException($"{where}: num_attention_heads ({NumHeads}) must be a multiple of num_key_value_heads ({NumKvHeads}).");
        if (!(RmsNormEps > 0)) throw new SpeculatorsException($"{where}: rms_norm_eps must be positive, found {RmsNormEps}.");
        if (!Activations.IsSupported(HiddenAct))
            throw new SpeculatorsException($"{where}: hidden_act '{HiddenAct}' is not supported (supported: {string.Join(", ", Activations.Supported)}).");
        if (LayerTypes != null)
        {
            if (LayerTypes.Count != NumLayers)
                throw new SpeculatorsException($"{where}: layer_types has {LayerTypes.Count} entries but num_hidden_layers is {NumLayers}.");
            for (int i = 0; i < LayerTypes.Count; i++)
                if (LayerTypes[i] != FullAttention && LayerTypes[i] != SlidingAttention)
                    throw new SpeculatorsException($"{where}: layer_types[{i}] is '{LayerTypes[i]}'; expected '{FullAttention}' or '{SlidingAttention}'.");
        }
        if (SlidingWindow is int w && w <= 0) throw new SpeculatorsException($"{where}: sliding_window must be positive, found {w}.");
        Rope.Validate(where);
        if (Rope.HeadDim != HeadDim)
            throw new SpeculatorsException($"{where}: RoPE head_dim {Rope.HeadDim} differs from the attention head_dim {HeadDim}.");
        if (RopeByLayerType != null)
            foreach (var (type, r) in RopeByLayerType)
            {
                r.Validate($"{where} (rope for {type})");
                if (r.HeadDim != HeadDim) throw new SpeculatorsException($"{where}: RoPE head_dim for {type} differs from head_dim {HeadDim}.");
            }
    }

    /// <summary>Parameters of the module tree (tied lm_head counted once).</summary>
    public long ParameterCount()
    {
        long h = HiddenSize, q = (long)NumHeads * HeadDim, kv = (long)NumKvHeads * HeadDim, inter = IntermediateSize;
        long attn = h * q + 2 * h * kv + q * h + (QkvBias ? q + 2 * kv : 0) + (OProjBias ? h : 0) + (QkNorm ? 2L * HeadDim : 0);
        long mlp = 3 * h * inter + (MlpBias ? 2 * inter + h : 0);
        long layer = attn + mlp + 2 * h;
        long emb = (long)VocabSize * h;
        return emb + NumLayers * layer + h + (TieWordEmbeddings ? 0 : emb);
    }
}
