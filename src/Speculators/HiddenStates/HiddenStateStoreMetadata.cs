using System.Text.Json;
using System.Text.Json.Serialization;
using Speculators.Util;

namespace Speculators.HiddenStates;

/// <summary>
/// <c>hidden_states/metadata.json</c>: what the files of a store hold and which verifier made them. Written by
/// <c>speculators datagen</c> (and by a provider that caches generated rows); a store written by Python
/// speculators or vLLM has none (see <see cref="HiddenStateStore.ResolveSpec"/>).
/// <code>
/// { "layer_ids": [2, 16, 29, 32], "num_hidden_layers": 32, "hidden_size": 4096, "dtype": "bfloat16",
///   "verifier": "meta-llama/Llama-3.1-8B-Instruct", "verifier_fingerprint": "sha256:…",
///   "max_tokens": 131072, "too_long": "skip", "tool_version": "speculators-dotnet 0.1.0" }
/// </code>
/// <c>layer_ids</c> lists the ids of the files' second axis: the aux ids ascending, then N (= num_hidden_layers).
/// </summary>
public sealed class HiddenStateStoreMetadata
{
    public const string FileName = "metadata.json";

    [JsonPropertyName("layer_ids")] public List<int> LayerIds { get; set; } = [];
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; set; }
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; set; }
    [JsonPropertyName("dtype")] public string DType { get; set; } = "bfloat16";
    [JsonPropertyName("verifier")] public string Verifier { get; set; } = "";
    [JsonPropertyName("verifier_fingerprint")] public string? VerifierFingerprint { get; set; }
    /// <summary>Longest row the verifier was run on (its max_position_embeddings unless the user chose less).</summary>
    [JsonPropertyName("max_tokens")] public int? MaxTokens { get; set; }
    /// <summary>"skip" or "truncate": what happened to longer rows.</summary>
    [JsonPropertyName("too_long")] public string? TooLong { get; set; }
    [JsonPropertyName("tool_version")] public string ToolVersion { get; set; } = ProductInfo.NameAndVersion;
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static string PathIn(string storeDirectory) => Path.Combine(storeDirectory, FileName);

    public static HiddenStateStoreMetadata Create(HiddenStateSpec spec, VerifierIdentity verifier) => new()
    {
        LayerIds = [.. spec.LayerIds],
        NumHiddenLayers = spec.NumHiddenLayers,
        HiddenSize = spec.HiddenSize,
        DType = HiddenStateSpec.DTypeName(spec.DType),
        Verifier = verifier.Name,
        VerifierFingerprint = verifier.Fingerprint,
        MaxTokens = spec.MaxTokens,
        TooLong = spec.MaxTokens is null ? null : spec.TooLong == TooLongPolicy.Truncate ? "truncate" : "skip",
        ToolVersion = ProductInfo.NameAndVersion,
    };

    /// <summary>Reads <c>metadata.json</c> of <paramref name="storeDirectory"/>; null when the store has none.</summary>
    public static HiddenStateStoreMetadata? Load(string storeDirectory)
    {
        string path = PathIn(storeDirectory);
        if (!File.Exists(path)) return null;
        HiddenStateStoreMetadata? m;
        try
        {
            m = JsonSerializer.Deserialize<HiddenStateStoreMetadata>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{path}: not valid hidden-state store metadata JSON ({e.Message}).");
        }
        if (m == null) throw new SpeculatorsException($"{path}: empty metadata (expected a JSON object).");
        m.Validate(path);
        return m;
    }

    void Validate(string path)
    {
        if (NumHiddenLayers <= 0) throw new SpeculatorsException($"{path}: 'num_hidden_layers' must be a positive integer, found {NumHiddenLayers}.");
        if (HiddenSize <= 0) throw new SpeculatorsException($"{path}: 'hidden_size' must be a positive integer, found {HiddenSize}.");
        if (LayerIds.Count < 2 || LayerIds[^1] != NumHiddenLayers)
            throw new SpeculatorsException(
                $"{path}: 'layer_ids' must list the aux ids and then num_hidden_layers ({NumHiddenLayers}), found [{string.Join(", ", LayerIds)}].");
        Modeling.AuxLayerIds.ValidateEagle3(LayerIds.Take(LayerIds.Count - 1).ToList(), NumHiddenLayers, $"{path}: 'layer_ids'");
        HiddenStateSpec.CheckDType(HiddenStateSpec.ParseDType(DType, $"{path}: 'dtype'"), $"{path}: 'dtype'");
        if (MaxTokens is <= 0) throw new SpeculatorsException($"{path}: 'max_tokens' must be positive, found {MaxTokens}.");
        if (TooLong is not (null or "skip" or "truncate"))
            throw new SpeculatorsException($"{path}: 'too_long' must be \"skip\" or \"truncate\", found \"{TooLong}\".");
    }

    public HiddenStateSpec ToSpec() => new()
    {
        LayerIds = LayerIds.ToArray(),
        HiddenSize = HiddenSize,
        DType = HiddenStateSpec.ParseDType(DType, "metadata.json 'dtype'"),
        MaxTokens = MaxTokens,
        TooLong = TooLong == "truncate" ? TooLongPolicy.Truncate : TooLongPolicy.Skip,
    };

    /// <summary>Writes <c>metadata.json</c> atomically (the directory is created).</summary>
    public void Save(string storeDirectory)
    {
        Directory.CreateDirectory(storeDirectory);
        AtomicFile.WriteAllText(PathIn(storeDirectory), JsonSerializer.Serialize(this, Json) + "\n");
    }

    /// <summary>
    /// Differences that make this store unusable for <paramref name="spec"/> and <paramref name="verifier"/>: layer ids,
    /// hidden size, number of layers, dtype, context policy, and the verifier fingerprint (when both sides have one).
    /// The verifier name is not compared (the same model has different paths on different machines). Empty = compatible.
    /// </summary>
    public IReadOnlyList<string> Mismatches(HiddenStateSpec spec, VerifierIdentity verifier, bool compareDType = true, bool compareContext = true)
    {
        var problems = new List<string>();
        if (!LayerIds.SequenceEqual(spec.LayerIds))
            problems.Add($"layer_ids: store [{string.Join(", ", LayerIds)}], requested [{string.Join(", ", spec.LayerIds)}]");
        if (NumHiddenLayers != verifier.NumHiddenLayers)
            problems.Add($"num_hidden_layers: store {NumHiddenLayers}, verifier {verifier.NumHiddenLayers}");
        if (HiddenSize != verifier.HiddenSize || HiddenSize != spec.HiddenSize)
            problems.Add($"hidden_size: store {HiddenSize}, verifier {verifier.HiddenSize}");
        if (compareDType && HiddenStateSpec.ParseDType(DType, "dtype") != spec.DType)
            problems.Add($"dtype: store {DType}, requested {HiddenStateSpec.DTypeName(spec.DType)}");
        if (compareContext)
        {
            var mine = ToSpec();
            if (mine.MaxTokens != spec.MaxTokens || (mine.MaxTokens != null && mine.TooLong != spec.TooLong))
                problems.Add($"long rows: store {Describe(mine)}, requested {Describe(spec)}");
        }
        if (VerifierFingerprint != null && verifier.Fingerprint != null && VerifierFingerprint != verifier.Fingerprint)
            problems.Add($"verifier: the store was made with '{Verifier}' ({VerifierFingerprint}), whose weights differ from '{verifier.Name}' ({verifier.Fingerprint})");
        return problems;
    }

    static string Describe(HiddenStateSpec s) =>
        s.MaxTokens is int m ? $"over {m} tokens {(s.TooLong == TooLongPolicy.Truncate ? "truncated" : "skipped")}" : "no limit";
}
