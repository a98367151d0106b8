using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Speculators.Text;

/// <summary>
/// <c>tokenizer_config.json</c> of a Hugging Face model directory: special tokens (plain strings or
/// AddedToken dicts <c>{"content": ...}</c>), BOS/EOS flags, maximum length and chat templates
/// (a string, or a list of <c>{"name", "template"}</c>). Templates may instead live in
/// <c>chat_template.jinja</c> or <c>chat_template.json</c> beside it (newer transformers); those
/// files win, as in transformers. Unknown keys are kept in <see cref="Extra"/>.
/// </summary>
public sealed class TokenizerConfig
{
    [JsonPropertyName("bos_token")] public JsonNode? BosTokenRaw { get; set; }
    [JsonPropertyName("eos_token")] public JsonNode? EosTokenRaw { get; set; }
    [JsonPropertyName("unk_token")] public JsonNode? UnkTokenRaw { get; set; }
    [JsonPropertyName("pad_token")] public JsonNode? PadTokenRaw { get; set; }
    [JsonPropertyName("mask_token")] public JsonNode? MaskTokenRaw { get; set; }
    [JsonPropertyName("additional_special_tokens")] public JsonNode? AdditionalSpecialTokensRaw { get; set; }
    [JsonPropertyName("add_bos_token")] public bool? AddBosToken { get; set; }
    [JsonPropertyName("add_eos_token")] public bool? AddEosToken { get; set; }
    /// <summary>Often a huge sentinel (1e30) in real files, hence double.</summary>
    [JsonPropertyName("model_max_length")] public double? ModelMaxLength { get; set; }
    [JsonPropertyName("tokenizer_class")] public string? TokenizerClass { get; set; }
    [JsonPropertyName("chat_template")] public JsonNode? ChatTemplateRaw { get; set; }
    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    [JsonIgnore] public string? BosToken => TokenContent(BosTokenRaw);
    [JsonIgnore] public string? EosToken => TokenContent(EosTokenRaw);
    [JsonIgnore] public string? UnkToken => TokenContent(UnkTokenRaw);
    [JsonIgnore] public string? PadToken => TokenContent(PadTokenRaw);
    [JsonIgnore] public string? MaskToken => TokenContent(MaskTokenRaw);

    [JsonIgnore]
    public IReadOnlyList<string> AdditionalSpecialTokens =>
        AdditionalSpecialTokensRaw is JsonArray a ? a.Select(TokenContent).Where(s => s != null).Select(s => s!).ToList() : [];

    /// <summary>
    /// The special tokens map transformers passes to chat templates (<c>bos_token</c>,
    /// <c>eos_token</c>, <c>unk_token</c>, <c>pad_token</c>, <c>mask_token</c>, when set).
    /// </summary>
    [JsonIgnore]
    public IReadOnlyDictionary<string, string> SpecialTokensMap
    {
        get
        {
            var map = new Dictionary<string, string>();
            void Add(string k, string? v) { if (v != null) map[k] = v; }
            Add("bos_token", BosToken); Add("eos_token", EosToken); Add("unk_token", UnkToken);
            Add("pad_token", PadToken); Add("mask_token", MaskToken);
            return map;
        }
    }

    /// <summary>Named chat templates ("default" for the plain string form), filled by <see cref="Load"/>.</summary>
    [JsonIgnore] public IReadOnlyDictionary<string, string> ChatTemplates { get; private set; } = new Dictionary<string, string>();

    /// <summary>Where the chat templates were read from (for messages).</summary>
    [JsonIgnore] public string? ChatTemplateSource { get; private set; }

    /// <summary>The template to use: <paramref name="name"/>, else "default", else the only one.</summary>
    public string? GetChatTemplate(string? name = null)
    {
        if (name != null)
            return ChatTemplates.TryGetValue(name, out var t) ? t
                : throw new SpeculatorsException($"Chat template '{name}' not found in {ChatTemplateSource ?? "the tokenizer config"}; available: {string.Join(", ", ChatTemplates.Keys)}.");
        if (ChatTemplates.TryGetValue("default", out var d)) return d;
        return ChatTemplates.Count == 1 ? ChatTemplates.Values.First() : null;
    }

    static string? TokenContent(JsonNode? n) => n switch
    {
        null => null,
        JsonValue v when v.TryGetValue<string>(out var s) => s,
        JsonObject o when o["content"] is JsonValue c && c.TryGetValue<string>(out var s) => s,
        _ => null,
    };

    static readonly JsonSerializerOptions Options = new() { ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Parses tokenizer_config.json text (no template files; see <see cref="Load"/>).</summary>
    public static TokenizerConfig Parse(string json, string sourceName)
    {
        TokenizerConfig cfg;
        try
        {
            cfg = JsonSerializer.Deserialize<TokenizerConfig>(json, Options)
                  ?? throw new SpeculatorsException($"{sourceName}: expected a JSON object.");
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{sourceName}: invalid JSON ({e.Message}).", e);
        }
        cfg.ChatTemplates = ParseTemplates(cfg.ChatTemplateRaw, sourceName);
        if (cfg.ChatTemplates.Count > 0) cfg.ChatTemplateSource = sourceName;
        return cfg;
    }

    /// <summary>
    /// Loads the tokenizer config of a model directory. A missing tokenizer_config.json gives an
    /// empty config (some repos have only tokenizer.json). chat_template.jinja, then
    /// chat_template.json, override the config's chat_template.
    /// </summary>
    public static TokenizerConfig Load(string modelDir)
    {
        string path = Path.Combine(modelDir, "tokenizer_config.json");
        var cfg = File.Exists(path) ? Parse(File.ReadAllText(path), path) : new TokenizerConfig();
        string jinja = Path.Combine(modelDir, "chat_template.jinja");
        string json = Path.Combine(modelDir, "chat_template.json");
        if (File.Exists(jinja))
        {
            cfg.ChatTemplates = new Dictionary<string, string> { ["default"] = File.ReadAllText(jinja) };
            cfg.ChatTemplateSource = jinja;
        }
        else if (File.Exists(json))
        {
            JsonNode? node;
            try { node = JsonNode.Parse(File.ReadAllText(json)); }
            catch (JsonException e) { throw new SpeculatorsException($"{json}: invalid JSON ({e.Message}).", e); }
            cfg.ChatTemplates = ParseTemplates(node?["chat_template"], json);
            cfg.ChatTemplateSource = json;
        }
        return cfg;
    }

    static Dictionary<string, string> ParseTemplates(JsonNode? raw, string source)
    {
        var result = new Dictionary<string, string>();
        switch (raw)
        {
            case null:
                break;
            case JsonValue v when v.TryGetValue<string>(out var s):
                result["default"] = s;
                break;
            case JsonArray arr:
                foreach (var item in arr)
                {
                    if (item is not JsonObject o || o["name"]?.GetValue<string>() is not { } name || o["template"]?.GetValue<string>() is not { } tpl)
                        throw new SpeculatorsException($"{source}: chat_template list entries must be {{\"name\": ..., \"template\": ...}}; found {item?.ToJsonString() ?? "null"}.");
                    result[name] = tpl;
                }
                break;
            default:
                throw new SpeculatorsException($"{source}: chat_template must be a string or a list of named templates; found {raw.GetValueKind()}.");
        }
        return result;
    }
}
