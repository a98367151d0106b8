using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Data;

namespace Speculators.Inference;

/// <summary>What kind of row a prompt came from.</summary>
public enum PromptKind
{
    /// <summary><c>{"input_ids": [...]}</c>: token ids used as they are.</summary>
    TokenIds,
    /// <summary><c>{"turns": ["...", ...]}</c> (MT-bench, Spec-Bench) or <c>{"prompt": "..."}</c>: user turns.</summary>
    Turns,
    /// <summary><c>{"messages": [...]}</c> / <c>{"conversations": [...]}</c>: a chat, rendered with the generation prompt.</summary>
    Messages,
}

/// <summary>One evaluation prompt as read from a prompt file.</summary>
/// <param name="Location">file:line, for messages</param>
/// <param name="Kind">row kind</param>
/// <param name="InputIds">token ids (<see cref="PromptKind.TokenIds"/>)</param>
/// <param name="Turns">user turns (<see cref="PromptKind.Turns"/>)</param>
/// <param name="Messages">normalized messages without trailing assistant turns (<see cref="PromptKind.Messages"/>)</param>
/// <param name="Tools">tool definitions of a chat row, if any</param>
public sealed record PromptSpec(string Location, PromptKind Kind, long[]? InputIds, IReadOnlyList<string>? Turns, JsonArray? Messages, JsonArray? Tools)
{
    /// <summary>Generation rounds: all MT-bench turns when <paramref name="allTurns"/>, otherwise one.</summary>
    public int TurnCount(bool allTurns) => Kind == PromptKind.Turns && allTurns ? Turns!.Count : 1;

    /// <summary>True when the prompt needs the verifier's tokenizer and chat template.</summary>
    public bool NeedsChatTemplate => Kind != PromptKind.TokenIds;

    /// <summary>A prompt given as token ids.</summary>
    public static PromptSpec FromTokens(IEnumerable<long> ids, string location = "prompt") =>
        new(location, PromptKind.TokenIds, ids.ToArray(), null, null, null);

    /// <summary>A prompt given as user turns (MT-bench style).</summary>
    public static PromptSpec FromTurns(IEnumerable<string> turns, string location = "prompt") =>
        new(location, PromptKind.Turns, null, turns.ToList(), null, null);

    /// <summary>A prompt given as chat messages (<c>role</c>/<c>content</c>), answered after the last one.</summary>
    public static PromptSpec FromMessages(JsonArray messages, JsonArray? tools = null, string location = "prompt") =>
        new(location, PromptKind.Messages, null, null, (JsonArray)messages.DeepClone(), (JsonArray?)tools?.DeepClone());
}

/// <summary>
/// Reads evaluation prompt files (<c>.jsonl</c>, <c>.json</c>, <c>.parquet</c>… — anything the data readers read). Each row is
/// one of: MT-bench style <c>{"turns": [...]}</c> (first turn, or every turn with the model's own answers fed back under
/// <c>--all-turns</c>), <c>{"prompt": "text"}</c> (one user turn), chat <c>{"messages": [...]}</c> or <c>{"conversations": [...]}</c>
/// (ShareGPT <c>from</c>/<c>value</c> too; normalized like training data, trailing assistant turns dropped so the model answers
/// the last user turn), or raw <c>{"input_ids": [...]}</c>. A bad row stops with its file:line.
/// </summary>
public static class PromptFile
{
    public static IReadOnlyList<PromptSpec> Load(string path)
    {
        if (!File.Exists(path) && !Directory.Exists(path))
            throw new SpeculatorsException($"--prompts {path}: file not found.");
        var normalizer = new Normalizer(strict: false);
        var prompts = new List<PromptSpec>();
        foreach (var record in ConversationReader.Read(path))
        {
            if (record.Error != null || record.Row == null)
                throw new SpeculatorsException($"{record.Location}: {record.Error ?? "not a JSON object"}.");
            prompts.Add(Parse(record, normalizer));
        }
        if (prompts.Count == 0) throw new SpeculatorsException($"--prompts {path}: no prompts found.");
        return prompts;
    }

    /// <summary>Parses one row (see the class summary for the accepted forms).</summary>
    public static PromptSpec Parse(RawRecord record, Normalizer normalizer)
    {
        var row = record.Row!;
        string where = record.Location;
        if (row["input_ids"] is JsonNode idsNode)
        {
            if (idsNode is not JsonArray ids || ids.Count == 0)
                throw new SpeculatorsException($"{where}: \"input_ids\" must be a non-empty list of token ids.");
            var result = new long[ids.Count];
            for (int i = 0; i < ids.Count; i++)
            {
                if (ids[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.Number || !v.TryGetValue(out long id) || id < 0)
                    throw new SpeculatorsException($"{where}: \"input_ids\"[{i}] is {ids[i]?.ToJsonString() ?? "null"}; expected a non-negative integer.");
                result[i] = id;
            }
            return new PromptSpec(where, PromptKind.TokenIds, result, null, null, null);
        }
        if (row["turns"] is JsonNode turnsNode)
        {
            if (turnsNode is not JsonArray turns || turns.Count == 0)
                throw new SpeculatorsException($"{where}: \"turns\" must be a non-empty list of strings.");
            var list = new List<string>();
            for (int i = 0; i < turns.Count; i++)
            {
                if (turns[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                    throw new SpeculatorsException($"{where}: \"turns\"[{i}] is {turns[i]?.ToJsonString() ?? "null"}; expected a string.");
                list.Add(v.GetValue<string>());
            }
            return new PromptSpec(where, PromptKind.Turns, null, list, null, null);
        }
        if (row["prompt"] is JsonValue p && p.GetValueKind() == JsonValueKind.String && !row.ContainsKey("messages") && !row.ContainsKey("conversations"))
            return new PromptSpec(where, PromptKind.Turns, null, [p.GetValue<string>()], null, null);
        if (row.ContainsKey("messages") || row.ContainsKey("conversations"))
        {
            // The training normalizer requires an assistant turn; a prompt usually ends on the user. Give it a
            // placeholder answer to normalize, then drop the trailing assistant turns (placeholder and recorded ones).
            var probe = (JsonObject)row.DeepClone();
            string key = probe["conversations"] is JsonArray ? "conversations" : "messages";
            if (probe[key] is JsonArray turns) turns.Add(new JsonObject { ["role"] = "assistant", ["content"] = "" });
            var norm = normalizer.Normalize(record with { Row = probe });
            if (norm.Kind != NormalizedKind.Conversation || norm.Conversation == null)
                throw new SpeculatorsException($"{where}: {norm.Message ?? "not a conversation"}.");
            var messages = (JsonArray)norm.Conversation.Messages.DeepClone();
            while (messages.Count > 0 && messages[^1]?["role"]?.GetValue<string>() == "assistant") messages.RemoveAt(messages.Count - 1);
            if (messages.Count == 0)
                throw new SpeculatorsException($"{where}: the conversation has only assistant turns; nothing to answer.");
            return new PromptSpec(where, PromptKind.Messages, null, null, messages, (JsonArray?)norm.Conversation.Tools?.DeepClone());
        }
        throw new SpeculatorsException(
            $"{where}: expected \"turns\", \"prompt\", \"messages\", \"conversations\" or \"input_ids\"; found keys {string.Join(", ", row.Select(kv => kv.Key))}.");
    }
}

/// <summary>What evaluation needs from the verifier's tokenizer and chat template.</summary>
public interface IPromptRenderer
{
    /// <summary>Chat messages (+ tools) rendered with the generation prompt and tokenized without extra special tokens.</summary>
    long[] RenderChat(JsonArray messages, JsonArray? tools);
    /// <summary>An answer's text for feeding it back as the next turn's history (special tokens skipped).</summary>
    string DecodeAnswer(IReadOnlyList<long> tokens);
}

/// <summary>Turns a <see cref="PromptSpec"/> into token ids for a given turn and the model's earlier answers.</summary>
public static class PromptBuilder
{
    /// <summary>
    /// Token ids of turn <paramref name="turn"/>: the MT-bench user turns so far interleaved with the model's own
    /// <paramref name="answers"/> to the earlier turns; or the chat / raw ids for turn 0.
    /// </summary>
    public static long[] Build(PromptSpec prompt, int turn, IReadOnlyList<IReadOnlyList<long>> answers, IPromptRenderer? renderer)
    {
        switch (prompt.Kind)
        {
            case PromptKind.TokenIds:
                return prompt.InputIds!;
            case PromptKind.Turns:
            {
                var r = renderer ?? throw new SpeculatorsException($"{prompt.Location}: text prompts need the verifier's tokenizer and chat template.");
                var messages = new JsonArray();
                for (int t = 0; t <= turn; t++)
                {
                    messages.Add(new JsonObject { ["role"] = "user", ["content"] = prompt.Turns![t] });
                    if (t < turn) messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = r.DecodeAnswer(answers[t]) });
                }
                return r.RenderChat(messages, null);
            }
            case PromptKind.Messages:
            {
                var r = renderer ?? throw new SpeculatorsException($"{prompt.Location}: chat prompts need the verifier's tokenizer and chat template.");
                return r.RenderChat((JsonArray)prompt.Messages!.DeepClone(), (JsonArray?)prompt.Tools?.DeepClone());
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(prompt));
        }
    }
}
