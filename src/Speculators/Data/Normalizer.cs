using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Util;

namespace Speculators.Data;

/// <summary>Why a row was skipped (counted per reason; <c>--strict</c> stops at the first).</summary>
public enum SkipReason
{
    /// <summary>The line/element is not valid JSON, or not a JSON object.</summary>
    MalformedJson,
    /// <summary>No <c>conversations</c> / <c>messages</c> list (nor a question/answer or input/output pair, nor input_ids + loss_mask).</summary>
    NoConversation,
    /// <summary>The conversation list is null or empty.</summary>
    EmptyConversation,
    /// <summary>A turn is not a JSON object, or the conversation is not a list.</summary>
    MalformedTurn,
    /// <summary>A turn's content is a number, boolean or object (strings and lists of content parts are accepted).</summary>
    NonStringContent,
    /// <summary>No turn maps to the assistant role.</summary>
    NoAssistantTurn,
    /// <summary>Pre-tokenized row whose <c>input_ids</c> and <c>loss_mask</c> differ in length.</summary>
    LengthMismatch,
    /// <summary>Pre-tokenized row whose <c>input_ids</c>/<c>loss_mask</c> are not lists of integers.</summary>
    BadTokenIds,
}

/// <summary>A conversation ready for a chat template: <c>messages</c> with role/content (+ tool fields), optional <c>tools</c>.</summary>
public sealed record NormalizedConversation(JsonArray Messages, JsonArray? Tools, RawRecord Source);

public enum NormalizedKind { Conversation, Pretokenized, Skipped }

/// <summary>The outcome for one row: a conversation, a pre-tokenized row (passed through), or a skip with its reason.</summary>
public sealed record NormalizeResult(NormalizedKind Kind, RawRecord Source, NormalizedConversation? Conversation, PreparedRow? Pretokenized, SkipReason? Skip, string? Message)
{
    public static NormalizeResult Skipped(RawRecord source, SkipReason reason, string message) => new(NormalizedKind.Skipped, source, null, null, reason, message);
}

/// <summary>Counters of what normalization did (thread-safe).</summary>
public sealed class NormalizationStats
{
    readonly object _gate = new();
    readonly Dictionary<SkipReason, long> _skipped = new();
    readonly Dictionary<string, long> _unknownRoles = new(StringComparer.Ordinal);
    long _conversations, _pretokenized, _toolsIgnored;

    public long Conversations { get { lock (_gate) return _conversations; } }
    public long Pretokenized { get { lock (_gate) return _pretokenized; } }
    /// <summary>Rows whose <c>tools</c> value was unusable (invalid JSON, not a list) and was dropped.</summary>
    public long ToolsIgnored { get { lock (_gate) return _toolsIgnored; } }
    public long SkippedTotal { get { lock (_gate) return _skipped.Values.Sum(); } }

    public long Skipped(SkipReason reason) { lock (_gate) return _skipped.GetValueOrDefault(reason); }
    /// <summary>Unknown role name → number of turns mapped to assistant.</summary>
    public IReadOnlyDictionary<string, long> UnknownRoles { get { lock (_gate) return new Dictionary<string, long>(_unknownRoles); } }

    internal void CountConversation() { lock (_gate) _conversations++; }
    internal void CountPretokenized() { lock (_gate) _pretokenized++; }
    internal void CountToolsIgnored() { lock (_gate) _toolsIgnored++; }
    internal void CountSkip(SkipReason r) { lock (_gate) _skipped[r] = _skipped.GetValueOrDefault(r) + 1; }
    /// <summary>Returns true the first time this role name is seen.</summary>
    internal bool CountUnknownRole(string role)
    {
        lock (_gate)
        {
            bool first = !_unknownRoles.ContainsKey(role);
            _unknownRoles[role] = _unknownRoles.GetValueOrDefault(role) + 1;
            return first;
        }
    }

    /// <summary>One-paragraph summary for the end of prepare-data.</summary>
    public string Summary()
    {
        lock (_gate)
        {
            var sb = new StringBuilder();
            sb.Append($"{_conversations} conversations, {_pretokenized} pre-tokenized rows");
            long skipped = _skipped.Values.Sum();
            if (skipped > 0)
                sb.Append($"; skipped {skipped} (" + string.Join(", ", _skipped.OrderBy(k => k.Key).Select(k => $"{k.Key}: {k.Value}")) + ")");
            if (_unknownRoles.Count > 0)
                sb.Append("; unknown roles mapped to assistant: " + string.Join(", ", _unknownRoles.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"'{k.Key}' ×{k.Value}")));
            if (_toolsIgnored > 0) sb.Append($"; unusable tools ignored in {_toolsIgnored} rows");
            return sb.ToString();
        }
    }
}

/// <summary>
/// speculators' <c>_normalize_conversation</c> (speculators.md §6.2, HEAD) plus the row shapes of its
/// presets, decided per row:
/// <list type="bullet">
/// <item><c>input_ids</c> + <c>loss_mask</c> → pre-tokenized row, passed through (lengths must match);</item>
/// <item><c>conversations</c>, else <c>messages</c> (UltraChat/OpenAI form) → the turns;
/// else <c>question</c> + <c>answer</c> (gsm8k) → user/assistant; else <c>input</c> list +
/// <c>output</c> (Nemotron) → the input turns then an assistant turn;</item>
/// <item>per turn: role = <c>from</c> if present and not null, else <c>role</c>; content = <c>value</c> if truthy else
/// <c>content</c> if truthy else ""; <c>human</c>/<c>user</c> → user, <c>gpt</c>/<c>assistant</c> →
/// assistant, <c>system</c>, <c>tool</c> kept, any other role → assistant (one warning per role
/// name, counted); <c>tool_calls</c>, <c>tool_call_id</c> kept when truthy; <c>thinking</c> or
/// <c>reasoning_content</c> copied to both keys; other keys dropped. String and content-part list
/// contents are kept (bare strings inside a list become <c>{"type":"text","text":…}</c>); other content types skip the row;</item>
/// <item><c>tools</c>: a list, or a JSON string holding one; anything else is ignored with a warning (as Python does).</item>
/// </list>
/// Bad rows come back as <see cref="NormalizedKind.Skipped"/> with a reason and are counted in
/// <see cref="Stats"/>; with <c>strict</c> the first one throws a <see cref="SpeculatorsException"/>
/// naming file and line.
/// </summary>
public sealed class Normalizer
{
    readonly bool _strict;
    public NormalizationStats Stats { get; } = new();

    public Normalizer(bool strict = false) { _strict = strict; }

    /// <summary>Normalizes one row (thread-safe).</summary>
    public NormalizeResult Normalize(RawRecord record)
    {
        var result = NormalizeCore(record);
        switch (result.Kind)
        {
            case NormalizedKind.Skipped:
                Stats.CountSkip(result.Skip!.Value);
                if (_strict) throw new SpeculatorsException($"{record.Location}: {result.Message} (--strict stops at the first bad row)");
                break;
            case NormalizedKind.Conversation: Stats.CountConversation(); break;
            case NormalizedKind.Pretokenized: Stats.CountPretokenized(); break;
        }
        return result;
    }

    NormalizeResult NormalizeCore(RawRecord record)
    {
        if (record.Error != null || record.Row == null)
            return NormalizeResult.Skipped(record, SkipReason.MalformedJson, record.Error ?? "no data");
        var row = record.Row;

        if (row.ContainsKey("input_ids") && row.ContainsKey("loss_mask"))
            return Pretokenized(record, row);

        JsonNode? turnsNode;
        if (row.TryGetPropertyValue("conversations", out var conv) && conv != null) turnsNode = conv;
        else if (row.TryGetPropertyValue("messages", out var msgs) && msgs != null) turnsNode = msgs;
        else if (row["question"] is JsonValue q && row["answer"] is JsonValue a)
            turnsNode = new JsonArray(
                new JsonObject { ["role"] = "user", ["content"] = q.DeepClone() },
                new JsonObject { ["role"] = "assistant", ["content"] = a.DeepClone() });
        else if (row["input"] is JsonArray input && row.ContainsKey("output"))
        {
            var turns = new JsonArray();
            foreach (var t in input) turns.Add(t?.DeepClone());
            turns.Add(new JsonObject { ["role"] = "assistant", ["content"] = row["output"]?.DeepClone() });
            turnsNode = turns;
        }
        else if (row.ContainsKey("conversations") || row.ContainsKey("messages"))
            return NormalizeResult.Skipped(record, SkipReason.EmptyConversation, "the conversation is null");
        else
            return NormalizeResult.Skipped(record, SkipReason.NoConversation,
                $"no 'conversations' or 'messages' list (nor input_ids + loss_mask); keys: {string.Join(", ", row.Select(kv => kv.Key))}");

        if (turnsNode is not JsonArray turnList)
            return NormalizeResult.Skipped(record, SkipReason.MalformedTurn, $"the conversation is {Describe(turnsNode)}, not a list of turns");
        if (turnList.Count == 0)
            return NormalizeResult.Skipped(record, SkipReason.EmptyConversation, "the conversation has no turns");

        var messages = new JsonArray();
        bool hasAssistant = false;
        for (int i = 0; i < turnList.Count; i++)
        {
            if (turnList[i] is not JsonObject turn)
                return NormalizeResult.Skipped(record, SkipReason.MalformedTurn, $"turn {i} is {Describe(turnList[i])}, not an object");
            string role = MapRole(turn, record);
            hasAssistant |= role == "assistant";

            JsonNode? content = Truthy(turn["value"]) ? turn["value"] : Truthy(turn["content"]) ? turn["content"] : null;
            JsonNode contentOut;
            switch (content)
            {
                case null: contentOut = JsonValue.Create(""); break;
                case JsonValue v when v.GetValueKind() == JsonValueKind.String: contentOut = v.DeepClone(); break;
                case JsonArray parts:
                    {
                        var list = new JsonArray();
                        for (int k = 0; k < parts.Count; k++)
                        {
                            var part = parts[k];
                            if (part is JsonValue pv && pv.GetValueKind() == JsonValueKind.String)
                                list.Add(new JsonObject { ["type"] = "text", ["text"] = pv.GetValue<string>() });
                            else if (part is JsonObject po && po["type"] is JsonValue tv && tv.GetValueKind() == JsonValueKind.String)
                                list.Add(po.DeepClone());
                            else
                                return NormalizeResult.Skipped(record, SkipReason.NonStringContent,
                                    $"turn {i} content part {k} is {Describe(part)}; expected a string or an object with a \"type\"");
                        }
                        contentOut = list;
                        break;
                    }
                default:
                    return NormalizeResult.Skipped(record, SkipReason.NonStringContent, $"turn {i} ({role}) content is {Describe(content)}; expected a string");
            }

            var m = new JsonObject { ["role"] = role, ["content"] = contentOut };
            if (Truthy(turn["tool_calls"])) m["tool_calls"] = turn["tool_calls"]!.DeepClone();
            if (Truthy(turn["tool_call_id"])) m["tool_call_id"] = turn["tool_call_id"]!.DeepClone();
            var thinking = Truthy(turn["thinking"]) ? turn["thinking"] : Truthy(turn["reasoning_content"]) ? turn["reasoning_content"] : null;
            if (thinking != null)
            {
                m["thinking"] = thinking.DeepClone();
                m["reasoning_content"] = thinking.DeepClone();
            }
            messages.Add(m);
        }
        if (!hasAssistant)
            return NormalizeResult.Skipped(record, SkipReason.NoAssistantTurn, "the conversation has no assistant turn");

        JsonArray? tools = ParseTools(row["tools"], record);
        return new NormalizeResult(NormalizedKind.Conversation, record, new NormalizedConversation(messages, tools, record), null, null, null);
    }

    string MapRole(JsonObject turn, RawRecord record)
    {
        // A null "from" counts as absent: rows mixing ShareGPT and OpenAI turns come out of Arrow/parquet
        // (and datasets' JSON loader) with every key present and nulls where a form does not use it.
        JsonNode? roleNode = turn["from"] ?? turn["role"];
        string? role = roleNode is JsonValue rv && rv.GetValueKind() == JsonValueKind.String ? rv.GetValue<string>() : null;
        switch (role)
        {
            case "human" or "user": return "user";
            case "gpt" or "assistant": return "assistant";
            case "system": return "system";
            case "tool": return "tool";
        }
        string name = role ?? roleNode?.ToJsonString() ?? "";
        if (Stats.CountUnknownRole(name))
            Log.Warn($"mapping unknown role '{name}' to 'assistant' (first seen at {record.Location}); further turns with this role are counted, not reported");
        return "assistant";
    }

    JsonArray? ParseTools(JsonNode? node, RawRecord record)
    {
        if (!Truthy(node)) return null;
        if (node is JsonArray a) return (JsonArray)a.DeepClone();
        string problem;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            try
            {
                var parsed = JsonNode.Parse(v.GetValue<string>());
                if (parsed is JsonArray pa) return pa;
                if (parsed == null) return null;
                problem = $"the tools JSON is {Describe(parsed)}, not a list";
            }
            catch (JsonException e)
            {
                problem = "invalid JSON in tools: " + e.Message;
            }
        }
        else problem = $"tools is {Describe(node)}; expected a list or a JSON string";
        if (_strict) throw new SpeculatorsException($"{record.Location}: {problem} (--strict stops at the first bad row)");
        Stats.CountToolsIgnored();
        Log.Warn($"{record.Location}: {problem}; proceeding without tools");
        return null;
    }

    NormalizeResult Pretokenized(RawRecord record, JsonObject row)
    {
        long[]? ids = IntList(row["input_ids"]);
        long[]? mask = IntList(row["loss_mask"]);
        if (ids == null) return NormalizeResult.Skipped(record, SkipReason.BadTokenIds, $"input_ids is {Describe(row["input_ids"])}; expected a list of integers");
        if (mask == null) return NormalizeResult.Skipped(record, SkipReason.BadTokenIds, $"loss_mask is {Describe(row["loss_mask"])}; expected a list of integers");
        if (ids.Length != mask.Length)
            return NormalizeResult.Skipped(record, SkipReason.LengthMismatch, $"input_ids has {ids.Length} tokens but loss_mask has {mask.Length}");
        return new NormalizeResult(NormalizedKind.Pretokenized, record, null, new PreparedRow(ids, mask), null, null);
    }

    static long[]? IntList(JsonNode? node)
    {
        if (node is not JsonArray a) return null;
        var result = new long[a.Count];
        for (int i = 0; i < a.Count; i++)
        {
            if (a[i] is not JsonValue v) return null;
            switch (v.GetValueKind())
            {
                case JsonValueKind.Number:
                    if (v.TryGetValue(out long l)) result[i] = l;
                    else if (v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) result[i] = (long)d;
                    else return null;
                    break;
                case JsonValueKind.True: result[i] = 1; break;
                case JsonValueKind.False: result[i] = 0; break;
                default: return null;
            }
        }
        return result;
    }

    /// <summary>Python truthiness of a JSON value (None, "", [], {}, 0, false are falsy).</summary>
    internal static bool Truthy(JsonNode? n) => n switch
    {
        null => false,
        JsonArray a => a.Count > 0,
        JsonObject o => o.Count > 0,
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => v.GetValue<string>().Length > 0,
            JsonValueKind.False => false,
            JsonValueKind.True => true,
            JsonValueKind.Number => !(v.TryGetValue(out double d) && d == 0),
            JsonValueKind.Null => false,
            _ => true,
        },
        _ => true,
    };

    static string Describe(JsonNode? n) => n switch
    {
        null => "null",
        JsonArray a => $"a list of {a.Count}",
        JsonObject => "an object",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => $"the number {v.ToJsonString()}",
            JsonValueKind.True or JsonValueKind.False => $"the boolean {v.ToJsonString()}",
            _ => v.ToJsonString(),
        },
        _ => n.ToJsonString(),
    };

    /// <summary>
    /// speculators' <c>_adapt_conv_for_vllm</c>: content-part lists in the form vLLM's chat API takes
    /// (<c>{"type":"image","path":p}</c> → <c>{"type":"image_url","image_url":{"url":"file://&lt;abs&gt;"}}</c>,
    /// <c>url</c> kept; inline base64/bytes rejected). String contents are unchanged.
    /// </summary>
    public static JsonArray AdaptForVllm(JsonArray messages)
    {
        var result = new JsonArray();
        foreach (var node in messages)
        {
            if (node is not JsonObject m || m["content"] is not JsonArray parts) { result.Add(node?.DeepClone()); continue; }
            var copy = (JsonObject)m.DeepClone();
            var adapted = new JsonArray();
            foreach (var part in parts) adapted.Add(AdaptPart(part));
            copy["content"] = adapted;
            result.Add(copy);
        }
        return result;
    }

    static JsonNode AdaptPart(JsonNode? part)
    {
        if (part is JsonValue sv && sv.GetValueKind() == JsonValueKind.String) return new JsonObject { ["type"] = "text", ["text"] = sv.GetValue<string>() };
        if (part is not JsonObject p || p["type"] is not JsonValue tv || tv.GetValueKind() != JsonValueKind.String)
            throw new SpeculatorsException($"content part {part?.ToJsonString() ?? "null"} has no \"type\".");
        string type = tv.GetValue<string>();
        if (type == "text") return new JsonObject { ["type"] = "text", ["text"] = p["text"]?.DeepClone() };
        if (type is "image" or "video" or "audio")
        {
            if (p["path"] is JsonValue path && path.GetValueKind() == JsonValueKind.String && path.GetValue<string>().Length > 0)
                return MediaUrl(type, "file://" + Path.GetFullPath(path.GetValue<string>()));
            if (p["url"] is JsonValue url && url.GetValueKind() == JsonValueKind.String && url.GetValue<string>().Length > 0)
                return MediaUrl(type, url.GetValue<string>());
            if (Truthy(p["base64"]) || Truthy(p[type]))
                throw new SpeculatorsException($"inline {type} data in a content part is not supported; refer to {type} inputs by file path or URL.");
            throw new SpeculatorsException($"unknown {type} content part with keys {string.Join(", ", p.Select(kv => kv.Key))}.");
        }
        throw new SpeculatorsException($"unknown content part type '{type}'.");
    }

    static JsonObject MediaUrl(string modality, string url) =>
        new() { ["type"] = modality + "_url", [modality + "_url"] = new JsonObject { ["url"] = url } };
}
