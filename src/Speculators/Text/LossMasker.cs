using System.Text.Json.Nodes;
using Speculators.Jinja;
using Speculators.Util;

namespace Speculators.Text;

/// <summary>
/// Turns a normalized conversation into tokenized training rows with assistant loss masks, with one
/// strategy chosen once per dataset by <see cref="Create"/>:
/// <list type="bullet">
/// <item><b>generation</b>: the template's <c>{% generation %}</c> spans → tokens by offsets (a token straddling a span
/// boundary counts; <see cref="LossMaskSpans"/>);</item>
/// <item><b>pattern</b>: an assistant regex, given or detected from probe renders (<see cref="AssistantPattern.Detect"/>);
/// tokens overlapping group 1 of any match are supervised;</item>
/// <item><b>boundary</b>: one row per assistant turn j ≥ 1, supervised after the tokens of
/// <c>render(conv[:j], add_generation_prompt=True)</c> (speculators HEAD, speculators.md §6.3).</item>
/// </list>
/// Rendered text is tokenized with <c>add_special_tokens=false</c> (the template writes BOS itself).
/// <see cref="Mask"/> is thread-safe.
/// </summary>
public sealed class LossMasker
{
    readonly ChatTemplate _template;
    readonly HfTokenizer _tokenizer;
    readonly JsonObject? _kwargs;

    public LossMaskStrategy Strategy { get; }
    /// <summary>The pattern in use (pattern strategy only).</summary>
    public AssistantPattern? Pattern { get; }
    /// <summary>One line saying which strategy was chosen and why (printed once per dataset).</summary>
    public string Description { get; }

    public ChatTemplate Template => _template;
    public HfTokenizer Tokenizer => _tokenizer;

    LossMasker(ChatTemplate template, HfTokenizer tokenizer, JsonObject? kwargs, LossMaskStrategy strategy, AssistantPattern? pattern, string description)
    {
        _template = template;
        _tokenizer = tokenizer;
        _kwargs = kwargs;
        Strategy = strategy;
        Pattern = pattern;
        Description = description;
    }

    /// <summary>
    /// Chooses the strategy (speculators.md §6.4 order for <see cref="LossMaskStrategy.Auto"/>): a given
    /// <c>AssistantPattern</c>; else generation spans when the template has <c>{% generation %}</c> and they mark at least
    /// one token of the probe <c>[user "test", assistant "test"]</c>; else a pattern detected from the
    /// four-turn probe. Throws a <see cref="SpeculatorsException"/> with the reason when the requested strategy cannot work
    /// (no generation blocks, a detected pattern that does not find the probe's assistant text, conflicting options).
    /// </summary>
    public static LossMasker Create(ChatTemplate template, HfTokenizer tokenizer, LossMaskOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentNullException.ThrowIfNull(tokenizer);
        options ??= new LossMaskOptions();
        var kwargs = options.TemplateKwargs == null ? null : (JsonObject)options.TemplateKwargs.DeepClone();
        Materialize(kwargs);
        string where = template.SourceName;
        foreach (var reserved in new[] { "messages", "tools", "documents", "add_generation_prompt" })
            if (kwargs != null && kwargs.ContainsKey(reserved))
                throw new SpeculatorsException($"--kwargs may not set '{reserved}': the renderer passes it for every conversation.");

        if (options.AssistantPattern != null)
        {
            if (options.Strategy is LossMaskStrategy.Generation or LossMaskStrategy.Boundary)
                throw new SpeculatorsException(
                    $"--assistant-pattern applies to the pattern strategy; it cannot be combined with --mask-strategy {options.Strategy.ToString().ToLowerInvariant()}.");
            var given = AssistantPattern.FromUser(options.AssistantPattern);
            var probe = ProbeRender(template, kwargs, AssistantPattern.ProbeConversation, out string? err);
            if (probe == null)
                Log.Warn($"{where}: the probe conversation does not render ({err}); --assistant-pattern is used unchecked.");
            else if (!given.Spans(probe.Text, where).Any(s => s.Start >= 0 && s.End > s.Start))
                Log.Warn($"{where}: --assistant-pattern matches no assistant text in the probe render {Quote(probe.Text)}; rows it does not match are skipped.");
            return new LossMasker(template, tokenizer, kwargs, LossMaskStrategy.Pattern, given,
                $"pattern (--assistant-pattern): {given.Pattern}");
        }

        switch (options.Strategy)
        {
            case LossMaskStrategy.Boundary:
                return new LossMasker(template, tokenizer, kwargs, LossMaskStrategy.Boundary, null,
                    "boundary: one row per assistant turn, supervised after the tokens of the preceding messages rendered with add_generation_prompt");
            case LossMaskStrategy.Generation:
                {
                    if (!template.HasGenerationBlocks)
                        throw new SpeculatorsException(
                            $"{where}: --mask-strategy generation needs {{% generation %}} blocks in the chat template, and it has none. " +
                            "Pass a training template with --chat-template (e.g. TRL's *_training.jinja), or use --mask-strategy auto, pattern or boundary.");
                    string? why = GenerationProbe(template, tokenizer, kwargs);
                    if (why != null)
                        throw new SpeculatorsException($"{where}: --mask-strategy generation: {why}");
                    return Generation(template, tokenizer, kwargs);
                }
            case LossMaskStrategy.Pattern:
                return Detected(template, tokenizer, kwargs, "");
            default:
                {
                    if (template.HasGenerationBlocks)
                    {
                        string? why = GenerationProbe(template, tokenizer, kwargs);
                        if (why == null) return Generation(template, tokenizer, kwargs);
                        Log.Warn($"{where}: has {{% generation %}} blocks but {why}; detecting an assistant pattern instead.");
                    }
                    return Detected(template, tokenizer, kwargs, template.HasGenerationBlocks ? " (generation blocks unusable)" : " (no {% generation %} blocks)");
                }
        }
    }

    static LossMasker Generation(ChatTemplate template, HfTokenizer tokenizer, JsonObject? kwargs) =>
        new(template, tokenizer, kwargs, LossMaskStrategy.Generation, null, $"generation: {{% generation %}} spans of {template.SourceName}");

    static LossMasker Detected(ChatTemplate template, HfTokenizer tokenizer, JsonObject? kwargs, string why)
    {
        string where = template.SourceName;
        var probe = ProbeRender(template, kwargs, AssistantPattern.ProbeConversation, out string? err)
            ?? throw new SpeculatorsException(
                $"{where}: cannot detect an assistant pattern: the template fails on the probe conversation (user/assistant/user/assistant): {err}. " +
                "Pass --assistant-pattern REGEX (group 1 = assistant text) or use --mask-strategy boundary.");
        var pattern = AssistantPattern.Detect(probe.Text, where);
        var spans = pattern.Spans(probe.Text, where).Where(s => s.Start >= 0).ToList();
        bool Covers(string marker)
        {
            int at = probe.Text.IndexOf(marker, StringComparison.Ordinal);
            return at >= 0 && spans.Any(s => s.Start <= at && at + marker.Length <= s.End);
        }
        if (!Covers("ASSISTANT_MSG_2"))
            throw new SpeculatorsException(
                $"{where}: the detected assistant pattern {Quote(pattern.Pattern)} (role marker {Quote(pattern.RoleMarker!)}, suffix {Quote(pattern.Suffix!)}) " +
                $"does not capture the probe's last assistant message in {Quote(probe.Text)}, so it would supervise nothing. " +
                "Pass --assistant-pattern REGEX (group 1 = assistant text) or use --mask-strategy boundary.");
        if (!Covers("ASSISTANT_MSG_1"))
            Log.Warn($"{where}: the detected assistant pattern {Quote(pattern.Pattern)} captures only the last assistant turn of the probe; earlier assistant turns will not be supervised.");
        return new LossMasker(template, tokenizer, kwargs, LossMaskStrategy.Pattern, pattern, $"pattern (detected from probe renders{why}): {pattern.Pattern}");
    }

    /// <summary>Null when the generation spans mark at least one token of the probe; otherwise why not.</summary>
    static string? GenerationProbe(ChatTemplate template, HfTokenizer tokenizer, JsonObject? kwargs)
    {
        var r = ProbeRender(template, kwargs, [("user", "test"), ("assistant", "test")], out string? err);
        if (r == null) return $"the probe conversation [user \"test\", assistant \"test\"] does not render ({err})";
        var enc = tokenizer.Encode(r.Text, addSpecialTokens: false);
        var mask = LossMaskSpans.FromSpans(enc.Offsets, r.GenerationSpansUtf16);
        return mask.Any(b => b != 0) ? null : "they mark no token of the probe conversation [user \"test\", assistant \"test\"]";
    }

    static RenderResult? ProbeRender(ChatTemplate template, JsonObject? kwargs, (string Role, string Content)[] turns, out string? error)
    {
        var messages = new JsonArray();
        foreach (var (role, content) in turns) messages.Add(new JsonObject { ["role"] = role, ["content"] = content });
        try
        {
            error = null;
            return template.Render(messages, null, addGenerationPrompt: false, kwargs);
        }
        catch (SpeculatorsException e)
        {
            error = e.Message;
            return null;
        }
    }

    /// <summary>JsonNodes built by parsing materialize lazily; walk once so concurrent renders only read.</summary>
    static void Materialize(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o: foreach (var kv in o) Materialize(kv.Value); break;
            case JsonArray a: foreach (var x in a) Materialize(x); break;
        }
    }

    static string Quote(string s) => System.Text.Json.JsonSerializer.Serialize(s.Length > 300 ? s[..300] + "…" : s);

    /// <summary>
    /// Renders and tokenizes one conversation into rows (one row, or one per assistant turn for boundary).
    /// Rows are not clipped; <paramref name="maxLength"/> only decides, for boundary, which turns are skipped
    /// because their prompt alone fills it. Template errors come back as <see cref="MaskFailure.TemplateError"/>.
    /// </summary>
    public MaskedConversation Mask(JsonArray messages, JsonArray? tools, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(messages);
        try
        {
            return Strategy switch
            {
                LossMaskStrategy.Generation => MaskGeneration(messages, tools),
                LossMaskStrategy.Pattern => MaskPattern(messages, tools),
                LossMaskStrategy.Boundary => MaskBoundary(messages, tools, maxLength),
                _ => throw new InvalidOperationException("strategy not resolved"),
            };
        }
        catch (TemplateFailure f)
        {
            return MaskedConversation.Failed(MaskFailure.TemplateError, f.Message);
        }
    }

    sealed class TemplateFailure(string message) : Exception(message);

    RenderResult Render(JsonArray messages, JsonArray? tools, bool addGenerationPrompt)
    {
        try
        {
            return _template.Render(messages, tools, addGenerationPrompt, _kwargs);
        }
        catch (SpeculatorsException e)
        {
            throw new TemplateFailure(e.Message);
        }
    }

    MaskedConversation MaskGeneration(JsonArray messages, JsonArray? tools)
    {
        var r = Render(messages, tools, false);
        var enc = _tokenizer.Encode(r.Text, addSpecialTokens: false);
        var mask = LossMaskSpans.FromSpans(enc.Offsets, r.GenerationSpansUtf16);
        return new MaskedConversation([new MaskedRow(enc.Ids, mask)]);
    }

    MaskedConversation MaskPattern(JsonArray messages, JsonArray? tools)
    {
        var r = Render(messages, tools, false);
        var enc = _tokenizer.Encode(r.Text, addSpecialTokens: false);
        var (mask, matches) = Pattern!.Apply(r.Text, enc.Offsets, _template.SourceName);
        if (matches == 0)
            return MaskedConversation.Failed(MaskFailure.NoAssistantMatch, "the assistant pattern matches nothing in the rendered conversation");
        return new MaskedConversation([new MaskedRow(enc.Ids, mask)]);
    }

    MaskedConversation MaskBoundary(JsonArray messages, JsonArray? tools, int maxLength)
    {
        var rows = new List<MaskedRow>();
        int skippedForLength = 0;
        for (int j = 1; j < messages.Count; j++)
        {
            if (messages[j] is not JsonObject turn || (string?)turn["role"] != "assistant") continue;
            var history = Prefix(messages, j);
            int[] prompt = Ids(Render(history, tools, true).Text);
            if (prompt.Length >= maxLength)
            {
                // Not a stop: templates that drop history reasoning shrink later prompts.
                skippedForLength++;
                continue;
            }
            int[] full = Ids(Render(Prefix(messages, j + 1), tools, false).Text);
            int boundary;
            if (StartsWith(full, prompt)) boundary = prompt.Length;
            else
            {
                boundary = CommonPrefix(prompt, full);
                int[] hist = Ids(Render(history, tools, false).Text);
                if (!StartsWith(full, hist) || boundary < hist.Length)
                    return MaskedConversation.Failed(MaskFailure.BoundaryUnstable,
                        $"the prompt and full renders diverge inside the history at assistant turn {j}; cannot derive a boundary loss mask");
            }
            var mask = new byte[full.Length];
            mask.AsSpan(boundary).Fill(1);
            rows.Add(new MaskedRow(full, mask));
        }
        if (rows.Count == 0)
            return MaskedConversation.Failed(MaskFailure.NoTrainableTurn, skippedForLength > 0
                ? $"every assistant turn's prompt has at least {maxLength} tokens (--seq-length)"
                : "no assistant turn after the first message (a turn needs preceding context)") with { TurnsSkippedForLength = skippedForLength };
        return new MaskedConversation(rows) { TurnsSkippedForLength = skippedForLength };
    }

    int[] Ids(string text) => _tokenizer.EncodeToIds(text, addSpecialTokens: false);

    static JsonArray Prefix(JsonArray messages, int count)
    {
        var a = new JsonArray();
        for (int i = 0; i < count; i++) a.Add(messages[i]?.DeepClone());
        return a;
    }

    static bool StartsWith(int[] a, int[] prefix) => a.Length >= prefix.Length && a.AsSpan(0, prefix.Length).SequenceEqual(prefix);

    static int CommonPrefix(int[] a, int[] b)
    {
        int n = Math.Min(a.Length, b.Length), i = 0;
        while (i < n && a[i] == b[i]) i++;
        return i;
    }
}
