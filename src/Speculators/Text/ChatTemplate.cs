using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Jinja;

namespace Speculators.Text;

/// <summary>
/// A model's chat template with its special tokens, rendering conversations exactly as transformers'
/// <c>apply_chat_template(..., tokenize=False)</c> does: the template sees <c>messages</c>, <c>tools</c>
/// (None when not given), <c>documents</c> (None), <c>add_generation_prompt</c>, the special tokens map
/// (<c>bos_token</c>, <c>eos_token</c>, <c>unk_token</c>, <c>sep_token</c>, <c>pad_token</c>,
/// <c>cls_token</c>, <c>mask_token</c>, <c>additional_special_tokens</c> when set) and any extra kwargs
/// (e.g. <c>enable_thinking</c>), which override the tokens of the same name. Parsed once; rendering is
/// thread-safe.
/// </summary>
public sealed class ChatTemplate
{
    static readonly HashSet<string> Reserved = ["messages", "tools", "documents", "add_generation_prompt"];

    readonly Template _template;
    readonly Template? _toolUse;
    readonly Dictionary<string, object?> _specialTokens;

    /// <summary>The template text (the default one when a model has several).</summary>
    public string Source { get; }

    /// <summary>Where the template came from, for messages (a file, or a model directory's config with the template name).</summary>
    public string SourceName { get; }

    /// <summary>The special tokens passed to the template (string values, plus the additional_special_tokens list).</summary>
    public IReadOnlyDictionary<string, object?> SpecialTokens => _specialTokens;

    /// <summary>Whether the template has <c>{% generation %}</c> blocks (assistant spans for loss masks).</summary>
    public bool HasGenerationBlocks => _template.HasGenerationBlocks;

    ChatTemplate(string source, string sourceName, Template template, Template? toolUse, Dictionary<string, object?> specialTokens)
    {
        Source = source;
        SourceName = sourceName;
        _template = template;
        _toolUse = toolUse;
        _specialTokens = specialTokens;
    }

    /// <summary>
    /// Loads the chat template and special tokens of a model directory (tokenizer_config.json,
    /// chat_template.jinja or chat_template.json). With several named templates and no
    /// <paramref name="templateName"/>, "default" is used, and "tool_use" when tools are passed (as transformers does).
    /// </summary>
    public static ChatTemplate FromModelDirectory(string dir, string? templateName = null, TemplateOptions? options = null)
    {
        if (!Directory.Exists(dir)) throw new SpeculatorsException($"Model directory '{dir}' does not exist.");
        var cfg = TokenizerConfig.Load(dir);
        if (cfg.ChatTemplates.Count == 0)
            throw new SpeculatorsException(
                $"{dir}: no chat template found (looked for chat_template.jinja, chat_template.json and the chat_template key of tokenizer_config.json). " +
                "Pass a template file with --template.");
        string source;
        Template? toolUse = null;
        string where = cfg.ChatTemplateSource ?? dir;
        string name;
        if (templateName != null)
        {
            source = cfg.GetChatTemplate(templateName)!;
            name = templateName;
        }
        else
        {
            var dflt = cfg.GetChatTemplate();
            if (dflt == null)
                throw new SpeculatorsException(
                    $"{where}: the model has several chat templates and none is named 'default'; choose one of: {string.Join(", ", cfg.ChatTemplates.Keys)}.");
            source = dflt;
            name = cfg.ChatTemplates.FirstOrDefault(kv => ReferenceEquals(kv.Value, dflt)).Key ?? "default";
            if (cfg.ChatTemplates.TryGetValue("tool_use", out var tu) && name != "tool_use")
                toolUse = Parse(tu, $"{where} (chat template 'tool_use')", options);
        }
        string sourceName = cfg.ChatTemplates.Count > 1 ? $"{where} (chat template '{name}')" : where;
        return new ChatTemplate(source, sourceName, Parse(source, sourceName, options), toolUse, SpecialTokensOf(cfg));
    }

    /// <summary>
    /// Loads a template file: a Jinja file, or a JSON file with a "chat_template" key (tokenizer_config.json
    /// or chat_template.json, whose special tokens are used unless <paramref name="bos"/>/<paramref name="eos"/> are given).
    /// </summary>
    public static ChatTemplate FromFile(string path, string? bos, string? eos, TemplateOptions? options = null)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"Chat template file '{path}' does not exist.");
        string text = File.ReadAllText(path);
        Dictionary<string, object?> tokens = new();
        string source = text;
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
        {
            var cfg = TokenizerConfig.Parse(text, path);
            source = cfg.GetChatTemplate()
                ?? throw new SpeculatorsException($"{path}: expected a \"chat_template\" string (or a list with a 'default' entry); found none.");
            tokens = SpecialTokensOf(cfg);
        }
        if (bos != null) tokens["bos_token"] = bos;
        if (eos != null) tokens["eos_token"] = eos;
        return new ChatTemplate(source, path, Parse(source, path, options), null, tokens);
    }

    /// <summary>A template given as text (e.g. from a dataset config); <paramref name="sourceName"/> names it in errors.</summary>
    public static ChatTemplate FromString(string source, string sourceName, IReadOnlyDictionary<string, string>? specialTokens = null, TemplateOptions? options = null)
    {
        var tokens = new Dictionary<string, object?>();
        if (specialTokens != null) foreach (var kv in specialTokens) tokens[kv.Key] = kv.Value;
        return new ChatTemplate(source, sourceName, Parse(source, sourceName, options), null, tokens);
    }

    /// <summary>A copy with one special token replaced (null removes it), sharing the parsed template.</summary>
    public ChatTemplate WithSpecialToken(string name, string? value)
    {
        var tokens = new Dictionary<string, object?>(_specialTokens);
        if (value == null) tokens.Remove(name); else tokens[name] = value;
        return new ChatTemplate(Source, SourceName, _template, _toolUse, tokens);
    }

    static Template Parse(string source, string sourceName, TemplateOptions? options)
    {
        try
        {
            return Template.Parse(source, options);
        }
        catch (JinjaException e)
        {
            throw new SpeculatorsException($"{sourceName}: {Where(e)}{e.ErrorType}: {e.Message}", e);
        }
    }

    static string Where(JinjaException e) => e.Line > 0 ? $"line {e.Line}, column {e.Column}: " : "";

    /// <summary>transformers' special_tokens_map: the special tokens that are set.</summary>
    static Dictionary<string, object?> SpecialTokensOf(TokenizerConfig cfg)
    {
        var map = new Dictionary<string, object?>();
        foreach (var kv in cfg.SpecialTokensMap) map[kv.Key] = kv.Value;
        foreach (var key in new[] { "sep_token", "cls_token" })
        {
            if (cfg.Extra == null || !cfg.Extra.TryGetValue(key, out var el)) continue;
            string? v = el.ValueKind switch
            {
                JsonValueKind.String => el.GetString(),
                JsonValueKind.Object when el.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String => c.GetString(),
                _ => null,
            };
            if (!string.IsNullOrEmpty(v)) map[key] = v;
        }
        var extra = cfg.AdditionalSpecialTokens;
        if (extra.Count > 0) map["additional_special_tokens"] = extra.ToList();
        return map;
    }

    /// <summary>
    /// Renders a conversation. <paramref name="kwargs"/> are extra template variables (e.g. <c>{"enable_thinking": false}</c>).
    /// Template errors (including the template's own raise_exception) throw <see cref="SpeculatorsException"/>
    /// naming the template, line and column.
    /// </summary>
    public RenderResult Render(JsonArray messages, JsonArray? tools = null, bool addGenerationPrompt = false, JsonObject? kwargs = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var vars = new Dictionary<string, object?>(_specialTokens.Count + 8);
        foreach (var kv in _specialTokens) vars[kv.Key] = kv.Value;
        if (kwargs != null)
        {
            foreach (var kv in kwargs)
            {
                if (Reserved.Contains(kv.Key))
                    throw new SpeculatorsException($"Template kwargs may not set '{kv.Key}': it is passed by the renderer itself (messages, tools, add_generation_prompt).");
                vars[kv.Key] = kv.Value;
            }
        }
        vars["messages"] = messages;
        vars["tools"] = tools;
        vars["documents"] = null;
        vars["add_generation_prompt"] = addGenerationPrompt;
        var template = tools != null && _toolUse != null ? _toolUse : _template;
        try
        {
            return template.Render(vars);
        }
        catch (JinjaException e)
        {
            string name = ReferenceEquals(template, _toolUse) ? SourceName + " (chat template 'tool_use')" : SourceName;
            throw new SpeculatorsException($"{name}: {Where(e)}{e.ErrorType}: {e.Message}", e);
        }
    }
}
