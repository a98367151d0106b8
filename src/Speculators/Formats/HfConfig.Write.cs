using System.Text.Json.Nodes;
using Speculators.Modeling;

namespace Speculators.Formats;

/// <summary>Which transformers generation's config layout to write.</summary>
public enum HfConfigForm
{
    /// <summary><c>rope_theta</c> + <c>rope_scaling</c>, <c>torch_dtype</c> (read by transformers 4.x and 5.x).</summary>
    Transformers4,
    /// <summary><c>rope_parameters</c> (holding <c>rope_theta</c>), <c>dtype</c>.</summary>
    Transformers5,
}

public sealed partial class HfConfig
{
    /// <summary>
    /// The config.json transformers would write for <paramref name="dc"/> (its family's keys, RoPE in the
    /// chosen <paramref name="form"/>). <see cref="ToDecoderConfig"/> of the result gives back an equal config.
    /// </summary>
    public static HfConfig FromDecoder(DecoderConfig dc, HfConfigForm form = HfConfigForm.Transformers4, string dtype = "float32",
        long? bosTokenId = null, long? eosTokenId = null, long? padTokenId = null)
    {
        dc.Validate("config to write");
        var c = new HfConfig
        {
            Architectures = [dc.Family.Architecture()],
            ModelType = dc.Family.ModelType(),
            VocabSize = dc.VocabSize,
            HiddenSize = dc.HiddenSize,
            IntermediateSize = dc.IntermediateSize,
            NumHiddenLayers = dc.NumLayers,
            NumAttentionHeads = dc.NumHeads,
            NumKeyValueHeads = dc.NumKvHeads,
            HeadDim = dc.HeadDim,
            HiddenAct = dc.HiddenAct,
            MaxPositionEmbeddings = dc.MaxPositionEmbeddings,
            RmsNormEps = dc.RmsNormEps,
            InitializerRange = 0.02,
            AttentionDropout = 0.0,
            TieWordEmbeddings = dc.TieWordEmbeddings,
            BosTokenId = bosTokenId is long b ? JsonValue.Create(b) : null,
            EosTokenId = eosTokenId is long e ? JsonValue.Create(e) : null,
            PadTokenId = padTokenId is long p ? JsonValue.Create(p) : null,
        };
        if (form == HfConfigForm.Transformers4) c.TorchDtype = dtype; else c.Dtype = dtype;

        switch (dc.Family)
        {
            case ModelFamily.Llama:
                if (dc.QkvBias != dc.OProjBias) throw new SpeculatorsException("Llama configs have one attention_bias for q/k/v and o_proj.");
                if (dc.LayerTypes?.Contains(DecoderConfig.SlidingAttention) == true) throw new SpeculatorsException("Llama has no sliding-window layers.");
                c.AttentionBias = dc.QkvBias;
                c.MlpBias = dc.MlpBias;
                break;
            case ModelFamily.Qwen3:
                if (dc.QkvBias != dc.OProjBias) throw new SpeculatorsException("Qwen3 configs have one attention_bias for q/k/v and o_proj.");
                c.AttentionBias = dc.QkvBias;
                WriteQwenWindows(c, dc);
                break;
            case ModelFamily.Qwen2:
                WriteQwenWindows(c, dc);
                break;
            case ModelFamily.Mistral:
                bool anySliding = dc.LayerTypes?.Contains(DecoderConfig.SlidingAttention) == true;
                if (anySliding && dc.LayerTypes!.Any(t => t != DecoderConfig.SlidingAttention))
                    throw new SpeculatorsException("Mistral slides every layer or none.");
                if (anySliding) c.SlidingWindow = dc.SlidingWindow;
                else c.ExplicitNullKeys.Add("sliding_window");
                break;
        }

        if (form == HfConfigForm.Transformers4)
        {
            if (dc.RopeByLayerType != null) throw new SpeculatorsException("Per-layer-type RoPE can only be written in the transformers 5.x form (rope_parameters).");
            c.RopeTheta = dc.Rope.Theta;
            if (dc.Rope.PartialRotaryFactor != 1.0) c.PartialRotaryFactor = dc.Rope.PartialRotaryFactor;
            var scaling = RopeDict(dc.Rope, includeTheta: false);
            if (scaling != null) c.RopeScaling = scaling;
            else c.ExplicitNullKeys.Add("rope_scaling");
        }
        else if (dc.RopeByLayerType != null)
        {
            var nested = new JsonObject();
            foreach (var (type, r) in dc.RopeByLayerType) nested[type] = RopeDict(r, includeTheta: true, alwaysType: true);
            c.RopeParameters = nested;
        }
        else
        {
            c.RopeParameters = RopeDict(dc.Rope, includeTheta: true, alwaysType: true);
        }
        return c;
    }

    static void WriteQwenWindows(HfConfig c, DecoderConfig dc)
    {
        bool anySliding = dc.LayerTypes?.Contains(DecoderConfig.SlidingAttention) == true;
        c.UseSlidingWindow = anySliding;
        if (anySliding) c.SlidingWindow = dc.SlidingWindow;
        else c.ExplicitNullKeys.Add("sliding_window");
        c.LayerTypes = Enumerable.Range(0, dc.NumLayers).Select(dc.LayerType).ToList();
        // The first layer that slides; transformers derives layer_types from it when layer_types is absent.
        int firstSliding = c.LayerTypes.IndexOf(DecoderConfig.SlidingAttention);
        c.MaxWindowLayers = firstSliding >= 0 ? firstSliding : dc.NumLayers;
    }

    /// <summary>A JSON number node that writes as Python writes the float (<c>8.0</c>, not <c>8</c>).</summary>
    static JsonNode F(double x) => JsonNode.Parse(PythonFloatJsonConverter.Format(x))!;

    static JsonObject? RopeDict(RopeConfig r, bool includeTheta, bool alwaysType = false)
    {
        if (r.Type == RopeType.Default && !alwaysType) return null;
        var d = new JsonObject { ["rope_type"] = RopeConfig.TypeName(r.Type) };
        if (includeTheta) d["rope_theta"] = F(r.Theta);
        if (includeTheta && r.PartialRotaryFactor != 1.0) d["partial_rotary_factor"] = F(r.PartialRotaryFactor);
        switch (r.Type)
        {
            case RopeType.Linear:
            case RopeType.Dynamic:
                d["factor"] = F(r.Factor);
                break;
            case RopeType.Llama3:
                d["factor"] = F(r.Factor);
                d["low_freq_factor"] = F(r.LowFreqFactor);
                d["high_freq_factor"] = F(r.HighFreqFactor);
                d["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings;
                break;
            case RopeType.Yarn:
                d["factor"] = F(r.Factor);
                d["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings;
                if (r.AttentionFactor is double a) d["attention_factor"] = F(a);
                if (r.BetaFast != 32) d["beta_fast"] = F(r.BetaFast);
                if (r.BetaSlow != 1) d["beta_slow"] = F(r.BetaSlow);
                if (r.Mscale is double m) d["mscale"] = F(m);
                if (r.MscaleAllDim is double mad) d["mscale_all_dim"] = F(mad);
                if (!r.Truncate) d["truncate"] = false;
                break;
        }
        return d;
    }
}
