using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Modeling;

namespace Speculators.Formats;

public sealed partial class HfConfig
{
    /// <summary>
    /// The family of this config: the first supported name in <c>architectures</c>, else <c>model_type</c>;
    /// a <c>text_config</c> is consulted when the top level is a multimodal wrapper.
    /// </summary>
    public ModelFamily ResolveFamily() => ResolveTextConfig().Family;

    /// <summary>The config that describes the language model (this one, or <c>text_config</c>), with its family.</summary>
    public (HfConfig Config, ModelFamily Family) ResolveTextConfig()
    {
        if (TryFamily(this, out var f)) return (this, f);
        if (TextConfig != null && TryFamily(TextConfig, out var tf))
        {
            // A nested text config often lacks the wrapper's dtype and tie flag; inherit them.
            TextConfig.TorchDtype ??= TorchDtype;
            TextConfig.Dtype ??= Dtype;
            TextConfig.TieWordEmbeddings ??= TieWordEmbeddings;
            return (TextConfig, tf);
        }
        string found = Architectures is { Count: > 0 } ? "architectures [" + string.Join(", ", Architectures) + "]"
            : ModelType != null ? $"model_type '{ModelType}'" : "no 'architectures' or 'model_type'";
        throw new SpeculatorsException(
            $"{SourcePath}: unsupported architecture ({found}). Supported: {ModelFamilies.SupportedList} " +
            $"(model_type {string.Join(", ", ModelFamilies.ByModelType.Keys)}).");
    }

    static bool TryFamily(HfConfig c, out ModelFamily family)
    {
        if (c.Architectures != null)
            foreach (var a in c.Architectures)
                if (ModelFamilies.ByArchitecture.TryGetValue(a, out family)) return true;
        if (c.ModelType != null && ModelFamilies.ByModelType.TryGetValue(c.ModelType, out family)) return true;
        family = default;
        return false;
    }

    /// <summary>
    /// Resolves every value the verifier modules need, applying the transformers config-class defaults of
    /// the family for absent keys (see docs/modeling.md). Missing or malformed required fields, an
    /// unsupported architecture or RoPE type, and inconsistent values throw <see cref="SpeculatorsException"/>.
    /// </summary>
    public DecoderConfig ToDecoderConfig()
    {
        var (c, family) = ResolveTextConfig();
        string where = c.SourcePath;
        int Required(int? v, string field) =>
            v ?? throw new SpeculatorsException($"{where}: required field '{field}' is missing.");

        int vocab = Required(c.VocabSize, "vocab_size");
        int hidden = Required(c.HiddenSize, "hidden_size");
        int inter = Required(c.IntermediateSize, "intermediate_size");
        int layers = Required(c.NumHiddenLayers, "num_hidden_layers");
        int heads = Required(c.NumAttentionHeads, "num_attention_heads");
        if (heads <= 0) throw new SpeculatorsException($"{where}: num_attention_heads must be a positive integer, found {heads}.");
        int kvHeads = c.NumKeyValueHeads ?? heads;
        int headDim = c.HeadDim ?? (family == ModelFamily.Qwen3 ? 128 : hidden / heads);
        if (c.HeadDim == null && family != ModelFamily.Qwen3 && hidden % heads != 0)
            throw new SpeculatorsException($"{where}: hidden_size ({hidden}) is not divisible by num_attention_heads ({heads}) and no head_dim is given.");
        int maxPos = c.MaxPositionEmbeddings ?? family switch
        {
            ModelFamily.Llama => 2048,
            ModelFamily.Mistral => 4096 * 32,
            _ => 32768,
        };

        // Attention layer types and sliding windows, per family.
        IReadOnlyList<string>? layerTypes = null;
        int? window = null;
        switch (family)
        {
            case ModelFamily.Mistral:
                window = c.SlidingWindow ?? (c.HasKey("sliding_window") ? null : 4096);
                if (window != null) layerTypes = Enumerable.Repeat(DecoderConfig.SlidingAttention, layers).ToList();
                break;
            case ModelFamily.Qwen2:
            case ModelFamily.Qwen3:
                bool use = c.UseSlidingWindow ?? false;
                window = use ? c.SlidingWindow ?? (c.HasKey("sliding_window") ? null : 4096) : null;
                if (c.LayerTypes != null) layerTypes = c.LayerTypes;
                else
                {
                    int maxWindowLayers = c.MaxWindowLayers ?? 28;
                    layerTypes = Enumerable.Range(0, layers)
                        .Select(i => window != null && i >= maxWindowLayers ? DecoderConfig.SlidingAttention : DecoderConfig.FullAttention).ToList();
                }
                break;
            case ModelFamily.Llama:
                break;
        }
        if (layerTypes != null && layerTypes.Contains(DecoderConfig.SlidingAttention) && window == null)
            layerTypes = layerTypes.Select(_ => DecoderConfig.FullAttention).ToList(); // transformers: no window → full attention

        var (rope, ropeByType) = ResolveRope(c, where, headDim, maxPos, layerTypes);
        bool attnBias = c.AttentionBias ?? false;
        var dc = new DecoderConfig
        {
            Family = family,
            VocabSize = vocab,
            HiddenSize = hidden,
            IntermediateSize = inter,
            NumLayers = layers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = headDim,
            HiddenAct = c.HiddenAct ?? "silu",
            RmsNormEps = c.RmsNormEps ?? 1e-6,
            MaxPositionEmbeddings = maxPos,
            QkvBias = family switch { ModelFamily.Qwen2 => true, ModelFamily.Mistral => false, _ => attnBias },
            OProjBias = family is ModelFamily.Llama or ModelFamily.Qwen3 && attnBias,
            MlpBias = family == ModelFamily.Llama && (c.MlpBias ?? false),
            QkNorm = family == ModelFamily.Qwen3,
            TieWordEmbeddings = c.TieWordEmbeddings ?? false,
            LayerTypes = layerTypes,
            SlidingWindow = window,
            Rope = rope,
            RopeByLayerType = ropeByType,
            ConfigDtype = c.DtypeName,
            PadTokenId = c.PadTokenId is JsonValue pv && pv.TryGetValue<int>(out var pad) ? pad : null,
        };
        dc.Validate(where);
        return dc;
    }

    bool HasKey(string key) => Extra?.ContainsKey(key) == true || ExplicitNullKeys.Contains(key);

    static (RopeConfig Rope, IReadOnlyDictionary<string, RopeConfig>? ByType) ResolveRope(
        HfConfig c, string where, int headDim, int maxPos, IReadOnlyList<string>? layerTypes)
    {
        double globalTheta = c.RopeTheta ?? 10000.0;
        double? globalPartial = c.PartialRotaryFactor;
        if (c.RopeParameters is JsonObject rp)
        {
            var known = new HashSet<string>(layerTypes ?? [], StringComparer.Ordinal) { DecoderConfig.FullAttention, DecoderConfig.SlidingAttention };
            var nested = rp.Where(kv => known.Contains(kv.Key)).ToList();
            if (nested.Count > 0)
            {
                var byType = new Dictionary<string, RopeConfig>(StringComparer.Ordinal);
                foreach (var (type, node) in nested)
                {
                    if (node == null) continue;
                    if (node is not JsonObject o)
                        throw new SpeculatorsException($"{where}: rope_parameters.{type} must be an object, found {node.ToJsonString()}.");
                    byType[type] = ParseRopeDict(o, $"rope_parameters.{type}", where, globalTheta, globalPartial, headDim, maxPos, c.OriginalMaxPositionEmbeddings);
                }
                var main = byType.GetValueOrDefault(DecoderConfig.FullAttention) ?? byType.Values.FirstOrDefault()
                    ?? new RopeConfig { Theta = globalTheta, HeadDim = headDim, PartialRotaryFactor = globalPartial ?? 1.0, MaxPositionEmbeddings = maxPos };
                return (main, byType);
            }
            return (ParseRopeDict(rp, "rope_parameters", where, globalTheta, globalPartial, headDim, maxPos, c.OriginalMaxPositionEmbeddings), null);
        }
        if (c.RopeScaling is JsonObject rs)
            return (ParseRopeDict(rs, "rope_scaling", where, globalTheta, globalPartial, headDim, maxPos, c.OriginalMaxPositionEmbeddings), null);
        return (new RopeConfig { Theta = globalTheta, HeadDim = headDim, PartialRotaryFactor = globalPartial ?? 1.0, MaxPositionEmbeddings = maxPos }, null);
    }

    static RopeConfig ParseRopeDict(JsonObject d, string dictName, string where, double globalTheta, double? globalPartial,
        int headDim, int maxPos, int? topOriginalMax)
    {
        string typeName = GetString(d, "rope_type", dictName, where) ?? GetString(d, "type", dictName, where) ?? "default";
        if (!RopeConfig.TryParseType(typeName, out var type))
            throw new SpeculatorsException(
                $"{where}: {dictName}.rope_type '{typeName}' is not supported (supported: {string.Join(", ", RopeConfig.SupportedTypeNames)}).");
        double? Num(string key) => GetNumber(d, key, dictName, where);
        double RequiredNum(string key) => Num(key)
            ?? throw new SpeculatorsException($"{where}: {dictName}.{key} is required for rope_type '{typeName}'.");
        int? Int(string key)
        {
            double? v = Num(key);
            if (v == null) return null;
            if (v != Math.Floor(v.Value) || v > int.MaxValue || v <= 0)
                throw new SpeculatorsException($"{where}: field '{dictName}.{key}' is malformed: expected a positive integer, found {v.Value.ToString(CultureInfo.InvariantCulture)}.");
            return (int)v.Value;
        }

        var rope = new RopeConfig
        {
            Type = type,
            Theta = Num("rope_theta") ?? globalTheta,
            HeadDim = headDim,
            PartialRotaryFactor = Num("partial_rotary_factor") ?? globalPartial ?? 1.0,
            MaxPositionEmbeddings = maxPos,
        };
        switch (type)
        {
            case RopeType.Linear:
            case RopeType.Dynamic:
                rope = rope with { Factor = RequiredNum("factor") };
                break;
            case RopeType.Llama3:
                rope = rope with
                {
                    Factor = RequiredNum("factor"),
                    LowFreqFactor = RequiredNum("low_freq_factor"),
                    HighFreqFactor = RequiredNum("high_freq_factor"),
                    OriginalMaxPositionEmbeddings = Int("original_max_position_embeddings") ?? topOriginalMax ?? maxPos,
                };
                break;
            case RopeType.Yarn:
                int orig = Int("original_max_position_embeddings") ?? topOriginalMax ?? maxPos;
                double? beta = Num("beta_fast"), betaSlow = Num("beta_slow");
                rope = rope with
                {
                    // transformers 5.x and vLLM: the explicit factor; max/original only when factor is absent.
                    Factor = Num("factor") ?? (double)maxPos / orig,
                    OriginalMaxPositionEmbeddings = orig,
                    AttentionFactor = Num("attention_factor"),
                    BetaFast = beta is double bf && bf != 0 ? bf : 32,
                    BetaSlow = betaSlow is double bs && bs != 0 ? bs : 1,
                    Mscale = Num("mscale"),
                    MscaleAllDim = Num("mscale_all_dim"),
                    Truncate = GetBool(d, "truncate", dictName, where) ?? true,
                };
                break;
        }
        rope.Validate($"{where} {dictName}");
        return rope;
    }

    static string? GetString(JsonObject d, string key, string dictName, string where)
    {
        if (!d.TryGetPropertyValue(key, out var n) || n == null) return null;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw new SpeculatorsException($"{where}: field '{dictName}.{key}' is malformed: expected a string, found {n.ToJsonString()}.");
    }

    static double? GetNumber(JsonObject d, string key, string dictName, string where)
    {
        if (!d.TryGetPropertyValue(key, out var n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() == JsonValueKind.Number) return v.GetValue<double>();
        throw new SpeculatorsException($"{where}: field '{dictName}.{key}' is malformed: expected a number, found {n.ToJsonString()}.");
    }

    static bool? GetBool(JsonObject d, string key, string dictName, string where)
    {
        if (!d.TryGetPropertyValue(key, out var n) || n == null) return null;
        if (n is JsonValue v && v.GetValueKind() is JsonValueKind.True or JsonValueKind.False) return v.GetValue<bool>();
        throw new SpeculatorsException($"{where}: field '{dictName}.{key}' is malformed: expected true or false, found {n.ToJsonString()}.");
    }
}
