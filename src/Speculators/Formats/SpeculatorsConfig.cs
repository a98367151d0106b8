using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Speculators.Util;

namespace Speculators.Formats;

/// <summary><c>speculators_config.verifier</c>: the target model the draft was trained for.</summary>
public sealed class VerifierConfig
{
    /// <summary>HF id or path; vLLM serves this model as the target (<c>vllm serve &lt;draft&gt;</c>). vLLM requires it.</summary>
    [JsonPropertyName("name_or_path")] public string? NameOrPath { get; set; }
    /// <summary>The verifier's own <c>architectures</c> (from its config.json).</summary>
    [JsonPropertyName("architectures")] public List<string> Architectures { get; set; } = [];
    [JsonExtensionData] public JsonObject? Extra { get; set; }
}

/// <summary>One entry of <c>speculators_config.proposal_methods</c> (speculators' <c>GreedyTokenProposalConfig</c>).</summary>
public sealed class ProposalMethodConfig
{
    public const string Greedy = "greedy";

    [JsonPropertyName("proposal_type")] public string ProposalType { get; set; } = Greedy;
    /// <summary>Tokens drafted per step; vLLM reads <c>proposal_methods[0].speculative_tokens</c> as <c>num_speculative_tokens</c>.</summary>
    [JsonPropertyName("speculative_tokens")] public int SpeculativeTokens { get; set; } = 5;
    [JsonPropertyName("verifier_accept_k")] public int VerifierAcceptK { get; set; } = 1;
    [JsonPropertyName("accept_tolerance")] public double AcceptTolerance { get; set; }
    [JsonExtensionData] public JsonObject? Extra { get; set; }
}

/// <summary>The nested <c>speculators_config</c> object (speculators' <c>SpeculatorsConfig</c>): algorithm, proposal methods, verifier.</summary>
public sealed class SpeculatorsConfig
{
    [JsonPropertyName("algorithm")] public string Algorithm { get; set; } = "";
    [JsonPropertyName("proposal_methods")] public List<ProposalMethodConfig> ProposalMethods { get; set; } = [];
    [JsonPropertyName("default_proposal_method")] public string DefaultProposalMethod { get; set; } = ProposalMethodConfig.Greedy;
    [JsonPropertyName("verifier")] public VerifierConfig Verifier { get; set; } = new();
    [JsonExtensionData] public JsonObject? Extra { get; set; }

    /// <summary>A greedy proposal config with <paramref name="speculativeTokens"/> tokens for <paramref name="algorithm"/>.</summary>
    public static SpeculatorsConfig Greedy(string algorithm, int speculativeTokens, string? verifierNameOrPath, IEnumerable<string> verifierArchitectures) => new()
    {
        Algorithm = algorithm,
        ProposalMethods = [new ProposalMethodConfig { SpeculativeTokens = speculativeTokens }],
        DefaultProposalMethod = ProposalMethodConfig.Greedy,
        Verifier = new VerifierConfig { NameOrPath = verifierNameOrPath, Architectures = verifierArchitectures.ToList() },
    };

    /// <summary>The number of tokens vLLM drafts per step: <c>proposal_methods[0].speculative_tokens</c> (0 when there is no method).</summary>
    public int SpeculativeTokens => ProposalMethods.Count > 0 ? ProposalMethods[0].SpeculativeTokens : 0;
}

/// <summary>
/// The common part of a speculators <c>config.json</c> (speculators' <c>SpeculatorModelConfig</c>):
/// <c>speculators_model_type</c> (selects the algorithm's config class), <c>speculators_version</c>,
/// <c>speculators_config</c>, <c>architectures</c>, dtype keys, and <c>transformer_layer_config</c> (an HF
/// decoder config, kept as <see cref="HfConfig"/>). Algorithms derive from it and add their own typed
/// fields; the config class is chosen by <see cref="ISpeculatorAlgorithm.ModelType"/>. Unknown keys are kept
/// and written back; a top-level <c>model_type</c> and <c>auto_map</c> are dropped on write (vLLM must not see
/// a <c>model_type</c>, and we ship no <c>config.py</c> for <c>auto_map</c> to point to).
/// </summary>
public abstract class SpeculatorModelConfig
{
    public const string FileName = "config.json";
    public const string TransformerLayerConfigKey = "transformer_layer_config";
    static readonly HashSet<string> HandledKeys = new(StringComparer.Ordinal) { TransformerLayerConfigKey };
    /// <summary>Keys never written: vLLM treats a top-level model_type as a plain model; auto_map points to a config.py we do not ship.</summary>
    static readonly string[] DroppedOnWrite = ["model_type", "auto_map"];

    [JsonPropertyName("speculators_model_type")] public string SpeculatorsModelType { get; set; } = "";
    /// <summary>The writer's speculators version (Python's pydantic field is a non-null string, so null is omitted on write).</summary>
    [JsonPropertyName("speculators_version"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? SpeculatorsVersion { get; set; }
    [JsonPropertyName("architectures")] public List<string> Architectures { get; set; } = [];
    [JsonPropertyName("speculators_config")] public SpeculatorsConfig SpeculatorsConfig { get; set; } = new();
    /// <summary>transformers 4.x dtype key (we write both it and <see cref="Dtype"/>).</summary>
    [JsonPropertyName("torch_dtype"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? TorchDtype { get; set; }
    /// <summary>transformers 5.x dtype key.</summary>
    [JsonPropertyName("dtype"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? Dtype { get; set; }
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; set; }
    /// <summary>
    /// <c>transformer_layer_config</c>: the HF config of the draft decoder (read and written through
    /// <see cref="HfConfig"/>, so both RoPE forms, explicit nulls and unknown keys survive a round trip).
    /// </summary>
    [JsonIgnore] public HfConfig? TransformerLayerConfig { get; set; }
    [JsonExtensionData] public JsonObject? Extra { get; set; }

    /// <summary>JSON paths of known keys that were absent when read (they hold their defaults).</summary>
    [JsonIgnore] public HashSet<string> MissingKeys { get; private set; } = new(StringComparer.Ordinal);
    /// <summary>Where this config was read from (for messages).</summary>
    [JsonIgnore] public string SourcePath { get; set; } = FileName;

    /// <summary>The dtype named by the config: <c>dtype</c> (5.x) or <c>torch_dtype</c> (4.x).</summary>
    [JsonIgnore] public string? DtypeName => Dtype ?? TorchDtype;

    /// <summary>Algorithm-specific resolution after the typed fields are read (defaults that depend on other fields, checks).</summary>
    protected virtual void OnRead(JsonObject raw, ConfigIssues issues) { }

    /// <summary>Algorithm-specific adjustments of the written JSON.</summary>
    protected virtual void OnWrite(JsonObject json) { }

    /// <summary>
    /// Parses config JSON without throwing for content problems: every malformed field, a missing or unknown
    /// <c>speculators_model_type</c> and an unusable <c>transformer_layer_config</c> go to <paramref name="issues"/>.
    /// Returns null when the algorithm cannot be determined (invalid JSON, no or unknown model type).
    /// </summary>
    public static SpeculatorModelConfig? TryParse(string json, string sourcePath, ConfigIssues issues)
    {
        JsonNode? root;
        try
        {
            root = JsonNode.Parse(json);
        }
        catch (JsonException e)
        {
            issues.Add("", $"invalid JSON ({e.Message})");
            return null;
        }
        if (root is not JsonObject obj)
        {
            issues.Add("", $"expected a JSON object at the top level, found {SpeculatorsJson.Show(root)}");
            return null;
        }
        if (!obj.TryGetPropertyValue("speculators_model_type", out var mt) || mt == null)
        {
            issues.Add("speculators_model_type",
                "missing: a speculators checkpoint names its algorithm here (e.g. \"eagle3\"); " +
                (obj.ContainsKey("model_type") ? $"found model_type {SpeculatorsJson.Show(obj["model_type"])} instead (a plain HF model, or a research checkpoint that needs conversion)" : "found none"));
            return null;
        }
        if (mt.GetValueKind() != JsonValueKind.String)
        {
            issues.Add("speculators_model_type", $"expected a string, found {SpeculatorsJson.Show(mt)}");
            return null;
        }
        string type = mt.GetValue<string>();
        var algo = SpeculatorAlgorithms.Find(type);
        if (algo == null)
        {
            issues.Add("speculators_model_type", $"'{type}' is not supported (supported: {string.Join(", ", SpeculatorAlgorithms.ModelTypes)})");
            return null;
        }
        var cfg = algo.CreateConfig();
        cfg.SourcePath = sourcePath;
        cfg.ReadFrom(obj, issues);
        return cfg;
    }

    void ReadFrom(JsonObject obj, ConfigIssues issues)
    {
        var missingBefore = new HashSet<string>(issues.MissingKeys, StringComparer.Ordinal);
        SpeculatorsJson.Read(this, obj, "", issues, HandledKeys);
        if (!obj.TryGetPropertyValue(TransformerLayerConfigKey, out var tlc) || tlc == null)
        {
            issues.Add(TransformerLayerConfigKey, tlc == null && obj.ContainsKey(TransformerLayerConfigKey)
                ? "expected an object (the draft decoder's HF config), found null"
                : "missing: the draft decoder's HF config (model_type, hidden_size, heads, vocab_size, RoPE...) is required");
        }
        else if (tlc is not JsonObject tlcObj)
        {
            issues.Add(TransformerLayerConfigKey, $"expected an object (the draft decoder's HF config), found {SpeculatorsJson.Show(tlc)}");
        }
        else
        {
            try
            {
                TransformerLayerConfig = HfConfig.Parse(tlcObj.ToJsonString(), $"{SourcePath} {TransformerLayerConfigKey}");
            }
            catch (SpeculatorsException e)
            {
                issues.Add(TransformerLayerConfigKey, e.Message);
            }
        }
        OnRead(obj, issues);
        MissingKeys = issues.MissingKeys.Where(k => !missingBefore.Contains(k)).ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>Parses config JSON; any problem throws one <see cref="SpeculatorsException"/> listing them all.</summary>
    public static SpeculatorModelConfig Parse(string json, string sourcePath = FileName)
    {
        var issues = new ConfigIssues(sourcePath);
        var cfg = TryParse(json, sourcePath, issues);
        if (issues.Problems.Count > 0 || cfg == null)
            throw new SpeculatorsException(
                issues.Problems.Count == 1 ? issues.Problems[0].ToString()
                    : $"{sourcePath}: {issues.Problems.Count} problems:\n  " + string.Join("\n  ", issues.Problems.Select(p => p.Key.Length == 0 ? p.Message : $"{p.Key}: {p.Message}")));
        return cfg;
    }

    /// <summary>Reads <c>config.json</c> of a checkpoint directory (or a config file path).</summary>
    public static SpeculatorModelConfig Load(string pathOrDirectory)
    {
        string path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, FileName) : pathOrDirectory;
        if (!File.Exists(path))
            throw new SpeculatorsException(Directory.Exists(pathOrDirectory)
                ? $"{pathOrDirectory}: no config.json (is this a speculator checkpoint directory?)."
                : $"{path}: config file not found.");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Reads a config of the expected class (e.g. <c>Load&lt;Eagle3SpeculatorConfig&gt;(dir)</c>).</summary>
    public static T Load<T>(string pathOrDirectory) where T : SpeculatorModelConfig
    {
        var cfg = Load(pathOrDirectory);
        return cfg as T ?? throw new SpeculatorsException(
            $"{cfg.SourcePath}: speculators_model_type is '{cfg.SpeculatorsModelType}', but a {typeof(T).Name} checkpoint was expected.");
    }

    /// <summary>The config as a JSON object (all typed fields, unknown keys, <c>transformer_layer_config</c>).</summary>
    public JsonObject ToJsonObject()
    {
        var json = SpeculatorsJson.Write(this);
        foreach (var k in DroppedOnWrite) json.Remove(k);
        if (TransformerLayerConfig != null) json[TransformerLayerConfigKey] = JsonNode.Parse(TransformerLayerConfig.ToJson());
        OnWrite(json);
        return json;
    }

    /// <summary>The config.json text (keys sorted, indent 2, Python float spelling).</summary>
    public string ToJson() => SpeculatorsJson.ToSortedJson(ToJsonObject());

    /// <summary>Writes <c>config.json</c> atomically into a directory, or to a file path.</summary>
    public void Save(string pathOrDirectory)
    {
        string path = Directory.Exists(pathOrDirectory) ? Path.Combine(pathOrDirectory, FileName) : pathOrDirectory;
        AtomicFile.WriteAllText(path, ToJson());
    }
}
