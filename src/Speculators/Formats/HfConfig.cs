using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Speculators.Util;

namespace Speculators.Formats;

/// <summary>
/// A Hugging Face <c>config.json</c> for the decoder families we support (Llama, Qwen2, Qwen3, Mistral),
/// in both the transformers 4.x form (<c>rope_theta</c> + <c>rope_scaling</c>, <c>torch_dtype</c>) and the
/// 5.x form (<c>rope_parameters</c>, <c>dtype</c>). Every field is optional here; <see cref="ToDecoderConfig"/>
/// resolves defaults the way the transformers config classes do and names any missing or malformed
/// field. Keys we do not model are kept in <see cref="Extra"/> and written back unchanged.
/// </summary>
public sealed partial class HfConfig
{
    [JsonPropertyName("architectures")] public List<string>? Architectures { get; set; }
    [JsonPropertyName("model_type")] public string? ModelType { get; set; }
    [JsonPropertyName("vocab_size")] public int? VocabSize { get; set; }
    [JsonPropertyName("hidden_size")] public int? HiddenSize { get; set; }
    [JsonPropertyName("intermediate_size")] public int? IntermediateSize { get; set; }
    [JsonPropertyName("num_hidden_layers")] public int? NumHiddenLayers { get; set; }
    [JsonPropertyName("num_attention_heads")] public int? NumAttentionHeads { get; set; }
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; set; }
    [JsonPropertyName("head_dim")] public int? HeadDim { get; set; }
    [JsonPropertyName("hidden_act")] public string? HiddenAct { get; set; }
    [JsonPropertyName("max_position_embeddings")] public int? MaxPositionEmbeddings { get; set; }
    [JsonPropertyName("original_max_position_embeddings")] public int? OriginalMaxPositionEmbeddings { get; set; }
    [JsonPropertyName("rms_norm_eps")] public double? RmsNormEps { get; set; }
    [JsonPropertyName("initializer_range")] public double? InitializerRange { get; set; }
    /// <summary>transformers 4.x: RoPE base.</summary>
    [JsonPropertyName("rope_theta")] public double? RopeTheta { get; set; }
    /// <summary>transformers 4.x: RoPE scaling dict (<c>rope_type</c>/<c>type</c>, <c>factor</c>, ...).</summary>
    [JsonPropertyName("rope_scaling")] public JsonObject? RopeScaling { get; set; }
    /// <summary>transformers 5.x: RoPE dict including <c>rope_theta</c>; may be nested by layer type.</summary>
    [JsonPropertyName("rope_parameters")] public JsonObject? RopeParameters { get; set; }
    [JsonPropertyName("partial_rotary_factor")] public double? PartialRotaryFactor { get; set; }
    [JsonPropertyName("attention_bias")] public bool? AttentionBias { get; set; }
    [JsonPropertyName("mlp_bias")] public bool? MlpBias { get; set; }
    [JsonPropertyName("attention_dropout")] public double? AttentionDropout { get; set; }
    [JsonPropertyName("tie_word_embeddings")] public bool? TieWordEmbeddings { get; set; }
    /// <summary>transformers 4.x dtype key.</summary>
    [JsonPropertyName("torch_dtype")] public string? TorchDtype { get; set; }
    /// <summary>transformers 5.x dtype key.</summary>
    [JsonPropertyName("dtype")] public string? Dtype { get; set; }
    [JsonPropertyName("sliding_window")] public int? SlidingWindow { get; set; }
    [JsonPropertyName("use_sliding_window")] public bool? UseSlidingWindow { get; set; }
    [JsonPropertyName("max_window_layers")] public int? MaxWindowLayers { get; set; }
    [JsonPropertyName("layer_types")] public List<string>? LayerTypes { get; set; }
    [JsonPropertyName("bos_token_id")] public JsonNode? BosTokenId { get; set; }
    [JsonPropertyName("eos_token_id")] public JsonNode? EosTokenId { get; set; }
    [JsonPropertyName("pad_token_id")] public JsonNode? PadTokenId { get; set; }
    /// <summary>Multimodal wrappers nest the language model's config here.</summary>
    [JsonPropertyName("text_config")] public HfConfig? TextConfig { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    /// <summary>
    /// Known keys that hold an explicit JSON <c>null</c> (read from the file, or set by code). They are
    /// written back as null; this matters where null and absent differ (Mistral's <c>sliding_window</c>:
    /// absent means the class default 4096, null means no sliding window).
    /// </summary>
    [JsonIgnore] public HashSet<string> ExplicitNullKeys { get; } = new(StringComparer.Ordinal);

    /// <summary>Where this config was read from (for messages).</summary>
    [JsonIgnore] public string SourcePath { get; set; } = "config.json";

    /// <summary>The dtype named by the config: <c>dtype</c> (5.x) or <c>torch_dtype</c> (4.x).</summary>
    [JsonIgnore] public string? DtypeName => Dtype ?? TorchDtype;

    /// <summary>The EOS ids (a single id or a list).</summary>
    [JsonIgnore] public IReadOnlyList<long> EosTokenIds => TokenIds(EosTokenId);

    static IReadOnlyList<long> TokenIds(JsonNode? n) => n switch
    {
        JsonValue v when v.TryGetValue<long>(out var x) => [x],
        JsonArray a => a.OfType<JsonValue>().Select(e => e.TryGetValue<long>(out var x) ? (long?)x : null).Where(x => x != null).Select(x => x!.Value).ToList(),
        _ => [],
    };

    /// <summary>Reads <c>config.json</c> from a model directory or a file path.</summary>
    public static HfConfig Load(string pathOrDirectory)
    {
        string path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, "config.json") : pathOrDirectory;
        if (!File.Exists(path))
            throw new SpeculatorsException(Directory.Exists(pathOrDirectory)
                ? $"{pathOrDirectory}: no config.json (is this a Hugging Face model directory?)."
                : $"{path}: config file not found.");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses config JSON text; <paramref name="sourcePath"/> is used in messages.</summary>
    public static HfConfig Parse(string json, string sourcePath = "config.json")
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{sourcePath}: invalid JSON ({e.Message}).");
        }
        if (root is not JsonObject)
            throw new SpeculatorsException($"{sourcePath}: expected a JSON object at the top level.");
        HfConfig? cfg;
        try
        {
            cfg = root.Deserialize<HfConfig>(HfJson.Read);
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException(DescribeFieldError(e, root, sourcePath));
        }
        cfg!.SourcePath = sourcePath;
        RecordNulls(cfg, (JsonObject)root);
        if (cfg.TextConfig != null)
        {
            cfg.TextConfig.SourcePath = sourcePath + " text_config";
            if (root["text_config"] is JsonObject tc) RecordNulls(cfg.TextConfig, tc);
        }
        return cfg;
    }

    static void RecordNulls(HfConfig cfg, JsonObject obj)
    {
        foreach (var (k, v) in obj)
            if (v == null && KnownKeys.Contains(k)) cfg.ExplicitNullKeys.Add(k);
    }

    static readonly HashSet<string> KnownKeys = typeof(HfConfig).GetProperties()
        .Select(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name).Where(n => n != null).Select(n => n!)
        .ToHashSet(StringComparer.Ordinal);

    static string DescribeFieldError(JsonException e, JsonNode root, string sourcePath)
    {
        string jsonPath = e.Path ?? "$";
        var segments = jsonPath.TrimStart('$').Split('.', StringSplitOptions.RemoveEmptyEntries);
        string field = segments.Length > 0 ? string.Join(".", segments) : "(root)";
        JsonNode? found = root;
        foreach (var s in segments)
        {
            string key = s.Contains('[') ? s[..s.IndexOf('[')] : s;
            found = found is JsonObject o && o.TryGetPropertyValue(key, out var n) ? n : null;
        }
        string expected = ExpectedKind(segments.LastOrDefault());
        string foundText = found == null ? "null" : found.ToJsonString();
        if (foundText.Length > 80) foundText = foundText[..77] + "...";
        return $"{sourcePath}: field '{field}' is malformed: expected {expected}, found {foundText}.";
    }

    static string ExpectedKind(string? segment)
    {
        if (segment == null) return "a JSON object";
        string name = segment.Contains('[') ? segment[..segment.IndexOf('[')] : segment;
        var prop = typeof(HfConfig).GetProperties()
            .FirstOrDefault(p => p.GetCustomAttribute<JsonPropertyNameAttribute>()?.Name == name);
        if (prop == null) return "a valid value";
        var t = Nullable.GetUnderlyingType(prop.PropertyType) ?? prop.PropertyType;
        return t == typeof(int) ? "an integer"
            : t == typeof(double) ? "a number"
            : t == typeof(bool) ? "true or false"
            : t == typeof(string) ? "a string"
            : t == typeof(List<string>) ? "a list of strings"
            : t == typeof(JsonObject) || t == typeof(HfConfig) ? "an object"
            : "a valid value";
    }

    /// <summary>The JSON text, keys sorted as transformers writes them (<c>sort_keys=True</c>, indent 2).</summary>
    public string ToJson()
    {
        var node = (JsonObject)JsonSerializer.SerializeToNode(this, HfJson.Write)!;
        foreach (var k in ExplicitNullKeys)
            if (!node.ContainsKey(k)) node[k] = null;
        if (TextConfig != null && node["text_config"] is JsonObject tc)
            foreach (var k in TextConfig.ExplicitNullKeys)
                if (!tc.ContainsKey(k)) tc[k] = null;
        return SortKeys(node)!.ToJsonString(HfJson.Write) + "\n";
    }

    static JsonNode? SortKeys(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => KeyValuePair.Create(kv.Key, SortKeys(kv.Value?.DeepClone())))),
        JsonArray a => new JsonArray(a.Select(x => SortKeys(x?.DeepClone())).ToArray()),
        _ => node?.DeepClone(),
    };

    /// <summary>Writes <c>config.json</c> atomically to a directory or file path.</summary>
    public void Save(string pathOrDirectory)
    {
        string path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, "config.json") : pathOrDirectory;
        AtomicFile.WriteAllText(path, ToJson());
    }
}
