using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Formats;

namespace Speculators.Modeling;

/// <summary>
/// What <c>speculators inspect</c> reports about a model directory, computed from config.json and the
/// safetensors headers only (no weights are read).
/// </summary>
public sealed record ModelSummary
{
    public required string Directory { get; init; }
    public required DecoderConfig Config { get; init; }
    public required string Architecture { get; init; }
    public required string ModelType { get; init; }
    /// <summary>dtype named in config.json, if any.</summary>
    public string? ConfigDtype { get; init; }
    /// <summary>Distinct dtypes of the weight tensors (empty when there are no weights).</summary>
    public IReadOnlyList<string> WeightDtypes { get; init; } = [];
    /// <summary>Parameters in the weight files (tied lm_head not duplicated), or from the config when absent.</summary>
    public long ParameterCount { get; init; }
    public bool ParameterCountFromWeights { get; init; }
    public long WeightBytes { get; init; }
    public int WeightFiles { get; init; }
    /// <summary>Eagle-3 default auxiliary layer ids, or null when the model has fewer than 4 layers.</summary>
    public int[]? Eagle3AuxLayerIds { get; init; }

    public static ModelSummary FromDirectory(string directory)
    {
        var hf = HfConfig.Load(directory);
        var dc = hf.ToDecoderConfig();
        var summary = new ModelSummary
        {
            Directory = Path.GetFullPath(directory),
            Config = dc,
            Architecture = dc.Family.Architecture(),
            ModelType = dc.Family.ModelType(),
            ConfigDtype = dc.ConfigDtype,
            ParameterCount = dc.ParameterCount(),
            Eagle3AuxLayerIds = dc.NumLayers >= 4 ? AuxLayerIds.Default(dc.NumLayers) : null,
        };
        if (!SafeTensorsCheckpoint.Exists(directory)) return summary;
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        var infos = ckpt.Files.SelectMany(f => SafeTensorsHeader.Read(f).Tensors).ToList();
        var counted = infos.Where(t => !t.Name.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)
            && !(dc.TieWordEmbeddings && t.Name.EndsWith("lm_head.weight", StringComparison.Ordinal))).ToList();
        return summary with
        {
            WeightDtypes = infos.Select(t => t.DType.Name()).Distinct().Order(StringComparer.Ordinal).ToList(),
            ParameterCount = counted.Sum(t => t.NumElements),
            ParameterCountFromWeights = true,
            WeightBytes = infos.Sum(t => t.ByteLength),
            WeightFiles = ckpt.Files.Count,
        };
    }

    static string RopeText(RopeConfig r)
    {
        var s = new StringBuilder(RopeConfig.TypeName(r.Type));
        s.Append(CultureInfo.InvariantCulture, $" (theta {r.Theta:G}");
        if (r.Type != RopeType.Default) s.Append(CultureInfo.InvariantCulture, $", factor {r.Factor:G}");
        if (r.OriginalMaxPositionEmbeddings is int o && r.Type is RopeType.Llama3 or RopeType.Yarn)
            s.Append(CultureInfo.InvariantCulture, $", original_max_position_embeddings {o}");
        if (r.Type == RopeType.Llama3) s.Append(CultureInfo.InvariantCulture, $", low/high freq factor {r.LowFreqFactor:G}/{r.HighFreqFactor:G}");
        if (r.Type == RopeType.Yarn) s.Append(CultureInfo.InvariantCulture, $", attention factor {r.AttentionScaling:G6}");
        if (r.PartialRotaryFactor != 1) s.Append(CultureInfo.InvariantCulture, $", rotary dim {r.RotaryDim} of {r.HeadDim}");
        return s.Append(')').ToString();
    }

    string SlidingText()
    {
        var c = Config;
        int sliding = Enumerable.Range(0, c.NumLayers).Count(i => c.SlidingWindowFor(i) != null);
        return sliding == 0 ? "none" : $"{c.SlidingWindow} tokens on {sliding} of {c.NumLayers} layers";
    }

    /// <summary>Human-readable report (one "key: value" per line).</summary>
    public string ToText()
    {
        var c = Config;
        var lines = new List<(string, string)>
        {
            ("model", Directory),
            ("architecture", $"{Architecture} (model_type {ModelType})"),
            ("layers", c.NumLayers.ToString(CultureInfo.InvariantCulture)),
            ("hidden size", c.HiddenSize.ToString(CultureInfo.InvariantCulture)),
            ("intermediate size", c.IntermediateSize.ToString(CultureInfo.InvariantCulture)),
            ("attention heads", $"{c.NumHeads} query, {c.NumKvHeads} key/value" + (c.NumHeads != c.NumKvHeads ? $" (GQA {c.NumHeads / c.NumKvHeads}:1)" : "")),
            ("head dim", c.HeadDim.ToString(CultureInfo.InvariantCulture) + (c.HeadDim * c.NumHeads != c.HiddenSize ? " (≠ hidden/heads)" : "")),
            ("vocab size", c.VocabSize.ToString(CultureInfo.InvariantCulture)),
            ("dtype", (ConfigDtype ?? "unspecified") + (WeightDtypes.Count > 0 ? $" (weights: {string.Join(", ", WeightDtypes)})" : " (no weights found)")),
            ("parameters", FormatCount(ParameterCount) + (ParameterCountFromWeights ? $" in {WeightFiles} file(s), {WeightBytes / 1e6:F1} MB" : " (from config)")),
            ("rope", RopeText(c.Rope) + (c.RopeByLayerType != null ? "; per layer type: " + string.Join("; ", c.RopeByLayerType.Select(kv => $"{kv.Key} {RopeText(kv.Value)}")) : "")),
            ("max positions", c.MaxPositionEmbeddings.ToString(CultureInfo.InvariantCulture)),
            ("tied embeddings", c.TieWordEmbeddings ? "yes" : "no"),
            ("q/k norm", c.QkNorm ? "yes" : "no"),
            ("biases", $"qkv {(c.QkvBias ? "yes" : "no")}, o_proj {(c.OProjBias ? "yes" : "no")}, mlp {(c.MlpBias ? "yes" : "no")}"),
            ("sliding window", SlidingText()),
            ("eagle-3 aux layer ids", Eagle3AuxLayerIds is { } ids ? "[" + string.Join(", ", ids) + "]" : $"n/a (Eagle-3 needs at least 4 layers, found {c.NumLayers})"),
        };
        int w = lines.Max(l => l.Item1.Length);
        return string.Join("\n", lines.Select(l => l.Item1.PadRight(w) + "  " + l.Item2)) + "\n";
    }

    static string FormatCount(long n) =>
        n >= 1_000_000_000 ? $"{n / 1e9:F2}B ({n:N0})" : n >= 1_000_000 ? $"{n / 1e6:F2}M ({n:N0})" : n.ToString("N0", CultureInfo.InvariantCulture);

    /// <summary>Machine-readable report (stable snake_case keys).</summary>
    public JsonObject ToJson()
    {
        var c = Config;
        JsonObject Rope(RopeConfig r)
        {
            var o = new JsonObject
            {
                ["type"] = RopeConfig.TypeName(r.Type),
                ["theta"] = r.Theta,
                ["rotary_dim"] = r.RotaryDim,
                ["partial_rotary_factor"] = r.PartialRotaryFactor,
            };
            if (r.Type != RopeType.Default) o["factor"] = r.Factor;
            if (r.Type is RopeType.Llama3 or RopeType.Yarn) o["original_max_position_embeddings"] = r.OriginalMaxPositionEmbeddings;
            if (r.Type == RopeType.Llama3)
            {
                o["low_freq_factor"] = r.LowFreqFactor;
                o["high_freq_factor"] = r.HighFreqFactor;
            }
            if (r.Type == RopeType.Yarn) o["attention_factor"] = r.AttentionScaling;
            return o;
        }
        var json = new JsonObject
        {
            ["model"] = Directory,
            ["architecture"] = Architecture,
            ["model_type"] = ModelType,
            ["num_hidden_layers"] = c.NumLayers,
            ["hidden_size"] = c.HiddenSize,
            ["intermediate_size"] = c.IntermediateSize,
            ["num_attention_heads"] = c.NumHeads,
            ["num_key_value_heads"] = c.NumKvHeads,
            ["head_dim"] = c.HeadDim,
            ["vocab_size"] = c.VocabSize,
            ["dtype"] = ConfigDtype,
            ["weight_dtypes"] = new JsonArray(WeightDtypes.Select(d => (JsonNode)JsonValue.Create(d)).ToArray()),
            ["parameter_count"] = ParameterCount,
            ["parameter_count_source"] = ParameterCountFromWeights ? "weights" : "config",
            ["rope_type"] = RopeConfig.TypeName(c.Rope.Type),
            ["rope"] = Rope(c.Rope),
            ["max_position_embeddings"] = c.MaxPositionEmbeddings,
            ["tie_word_embeddings"] = c.TieWordEmbeddings,
            ["qk_norm"] = c.QkNorm,
            ["qkv_bias"] = c.QkvBias,
            ["o_proj_bias"] = c.OProjBias,
            ["mlp_bias"] = c.MlpBias,
            ["sliding_window"] = c.SlidingWindow,
            ["layer_types"] = new JsonArray(Enumerable.Range(0, c.NumLayers).Select(i => (JsonNode)JsonValue.Create(c.LayerType(i))).ToArray()),
            ["eagle3_aux_layer_ids"] = Eagle3AuxLayerIds is { } ids ? new JsonArray(ids.Select(i => (JsonNode)JsonValue.Create(i)).ToArray()) : null,
        };
        if (c.RopeByLayerType != null)
            json["rope_by_layer_type"] = new JsonObject(c.RopeByLayerType.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)Rope(kv.Value))));
        return json;
    }
}
