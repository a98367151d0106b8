using System.Text.Json.Nodes;
using Speculators.Data;

namespace Speculators.Tests.Data;

public class NormalizerTests
{
    // One file mixing every input form of speculators.md §6.1–6.2 (line numbers matter below).
    static readonly string[] Lines =
    [
        /* 1 */ """{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}""",
        /* 2 */ """{"conversations": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}""",
        /* 3 */ """{"conversations": [{"from": "human", "value": "mixed"}, {"role": "assistant", "content": "ok"}, {"from": null, "value": null, "role": "user", "content": "nulls"}, {"from": "gpt", "value": "", "content": "from content"}]}""",
        /* 4 */ """{"messages": [{"role": "user", "content": "ultrachat"}, {"role": "assistant", "content": "form"}], "prompt": "ultrachat"}""",
        /* 5 */ """{"conversations": [{"from": "human", "value": "who?"}, {"from": "bing", "value": "me"}, {"from": "bing", "value": "again"}]}""",
        /* 6 */ """{"conversations": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get", "arguments": "{}"}}]}, {"role": "tool", "content": "sunny", "tool_call_id": "c1", "name": "get"}, {"role": "assistant", "content": "Sunny."}], "tools": "[{\"type\": \"function\", \"function\": {\"name\": \"get\"}}]"}""",
        /* 7 */ """{"conversations": [{"role": "user", "content": "think"}, {"role": "assistant", "content": "42", "reasoning_content": "hmm"}, {"role": "user", "content": "again"}, {"role": "assistant", "content": "43", "thinking": "hm2", "tool_calls": []}], "tools": [{"type": "function"}]}""",
        /* 8 */ """{"conversations": [{"from": "human", "value": "broken"}""",
        /* 9 */ """{"conversations": []}""",
        /* 10 */ """{"conversations": [{"role": "user", "content": "alone"}]}""",
        /* 11 */ """{"conversations": [{"role": "user", "content": "n"}, {"role": "assistant", "content": 5}]}""",
        /* 12 */ """{"input_ids": [1, 2, 3], "loss_mask": [0, 1, 1]}""",
        /* 13 */ """{"input_ids": [1, 2, 3], "loss_mask": [0, 1]}""",
        /* 14 */ """{"question": "1+1?", "answer": "2"}""",
        /* 15 */ """{"conversations": [{"role": "user", "content": ["look", {"type": "text", "text": "here"}]}, {"role": "assistant", "content": null}], "tools": "{not json"}""",
        /* 16 */ """{"input": [{"role": "user", "content": "nemo"}], "output": "tron"}""",
        /* 17 */ """{"text": "no conversation"}""",
        /* 18 */ """{"conversations": [{"from": "human", "value": "x"}, "just a string"]}""",
        /* 19 */ """{"conversations": [{"from": "Bing", "value": "case matters"}, {"from": "bing", "value": "third"}]}""",
    ];

    static (List<NormalizeResult> Results, Normalizer N, string Path, string Log) Run(TempDir dir, bool strict = false)
    {
        string path = dir.File("mixed.jsonl");
        File.WriteAllText(path, string.Join("\n", Lines) + "\n");
        var n = new Normalizer(strict);
        var log = new StringWriter();
        var old = Speculators.Util.Log.Writer;
        Speculators.Util.Log.Writer = log;
        try { return (ConversationReader.Read(path).Select(n.Normalize).ToList(), n, path, log.ToString()); }
        finally { Speculators.Util.Log.Writer = old; }
    }

    static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    static string Msgs(NormalizeResult r) => r.Conversation!.Messages.ToJsonString(Relaxed);

    [Fact]
    public void EveryRuleOfSection62InOneMixedFile()
    {
        using var dir = new TempDir();
        var (res, n, path, log) = Run(dir);
        Assert.Equal(19, res.Count);

        Assert.Equal("""[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello"}]""", Msgs(res[0]));
        Assert.Equal("""[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}]""", Msgs(res[1]));
        // Mixed forms in one conversation; a null "from" falls back to "role"; value "" falls back to content.
        Assert.Equal("""[{"role":"user","content":"mixed"},{"role":"assistant","content":"ok"},{"role":"user","content":"nulls"},{"role":"assistant","content":"from content"}]""", Msgs(res[2]));
        Assert.Equal("""[{"role":"user","content":"ultrachat"},{"role":"assistant","content":"form"}]""", Msgs(res[3]));
        // Unknown roles → assistant, one warning per role name, every turn counted.
        Assert.Equal("""[{"role":"user","content":"who?"},{"role":"assistant","content":"me"},{"role":"assistant","content":"again"}]""", Msgs(res[4]));
        // Tool calls kept, tool_call_id kept, other keys ("name") dropped, tools parsed from the JSON string.
        Assert.Equal("""[{"role":"user","content":"weather?"},{"role":"assistant","content":"","tool_calls":[{"type":"function","function":{"name":"get","arguments":"{}"}}]},{"role":"tool","content":"sunny","tool_call_id":"c1"},{"role":"assistant","content":"Sunny."}]""", Msgs(res[5]));
        Assert.Equal("""[{"type":"function","function":{"name":"get"}}]""", res[5].Conversation!.Tools!.ToJsonString(Relaxed));
        // thinking / reasoning_content copied to both keys; empty tool_calls dropped; tools as a list.
        Assert.Equal("""[{"role":"user","content":"think"},{"role":"assistant","content":"42","thinking":"hmm","reasoning_content":"hmm"},{"role":"user","content":"again"},{"role":"assistant","content":"43","thinking":"hm2","reasoning_content":"hm2"}]""", Msgs(res[6]));
        Assert.Equal("""[{"type":"function"}]""", res[6].Conversation!.Tools!.ToJsonString());

        AssertSkip(res[7], SkipReason.MalformedJson, $"{path}:8");
        AssertSkip(res[8], SkipReason.EmptyConversation, $"{path}:9");
        AssertSkip(res[9], SkipReason.NoAssistantTurn, $"{path}:10");
        AssertSkip(res[10], SkipReason.NonStringContent, $"{path}:11");
        Assert.Equal(NormalizedKind.Pretokenized, res[11].Kind);
        Assert.Equal(new long[] { 1, 2, 3 }, res[11].Pretokenized!.Value.InputIds);
        Assert.Equal(new long[] { 0, 1, 1 }, res[11].Pretokenized!.Value.LossMask);
        AssertSkip(res[12], SkipReason.LengthMismatch, $"{path}:13");
        Assert.Equal("""[{"role":"user","content":"1+1?"},{"role":"assistant","content":"2"}]""", Msgs(res[13]));
        // Content-part lists kept (bare strings become text parts); null content → ""; invalid tools ignored.
        Assert.Equal("""[{"role":"user","content":[{"type":"text","text":"look"},{"type":"text","text":"here"}]},{"role":"assistant","content":""}]""", Msgs(res[14]));
        Assert.Null(res[14].Conversation!.Tools);
        Assert.Equal("""[{"role":"user","content":"nemo"},{"role":"assistant","content":"tron"}]""", Msgs(res[15]));
        AssertSkip(res[16], SkipReason.NoConversation, $"{path}:17");
        AssertSkip(res[17], SkipReason.MalformedTurn, $"{path}:18");
        Assert.Equal("""[{"role":"assistant","content":"case matters"},{"role":"assistant","content":"third"}]""", Msgs(res[18]));

        var s = n.Stats;
        Assert.Equal(11, s.Conversations);
        Assert.Equal(1, s.Pretokenized);
        Assert.Equal(7, s.SkippedTotal);
        Assert.Equal(1, s.Skipped(SkipReason.MalformedJson));
        Assert.Equal(1, s.Skipped(SkipReason.NoAssistantTurn));
        Assert.Equal(1, s.ToolsIgnored);
        Assert.Equal(new Dictionary<string, long> { ["bing"] = 3, ["Bing"] = 1 }, s.UnknownRoles);
        // One warning per role name, naming where it was first seen.
        Assert.Equal(1, CountOf(log, "unknown role 'bing'"));
        Assert.Equal(1, CountOf(log, "unknown role 'Bing'"));
        Assert.Contains($"{path}:5", log);
        Assert.Contains("NoAssistantTurn: 1", s.Summary());
    }

    [Fact]
    public void StrictStopsAtTheFirstBadRowWithFileAndLine()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<SpeculatorsException>(() => Run(dir, strict: true));
        Assert.Contains("mixed.jsonl:8", e.Message);
        Assert.Contains("malformed JSON", e.Message);
    }

    [Fact]
    public void ParquetWithMixedTurnFormsNormalizes()
    {
        var n = new Normalizer();
        var res = ConversationReader.Read(DataFixtures.Path("conversations_mixed.parquet")).Select(n.Normalize).ToList();
        var first = res[0].Conversation!.Messages;
        Assert.Equal(("user", "Hi"), ((string)first[0]!["role"]!, (string)first[0]!["content"]!));
        Assert.Equal(("assistant", "Hello 👋"), ((string)first[1]!["role"]!, (string)first[1]!["content"]!));
        Assert.Equal("""[{"role":"system","content":"Be brief."},{"role":"user","content":"2+2?"},{"role":"assistant","content":"4"}]""", Msgs(res[1]));
        Assert.Equal("add", (string)res[1].Conversation!.Tools![0]!["function"]!["name"]!);
        Assert.Equal("""[{"role":"user","content":"mixed"},{"role":"assistant","content":"yes"}]""", Msgs(res[2]));
        Assert.Equal(SkipReason.EmptyConversation, res[3].Skip);
        Assert.Equal(SkipReason.NoAssistantTurn, res[4].Skip);
        Assert.Empty(n.Stats.UnknownRoles);
    }

    [Fact]
    public void AdaptsContentPartsForVllm()
    {
        var msgs = JsonNode.Parse("""[{"role":"user","content":["hi",{"type":"image","path":"img/a.png"},{"type":"audio","url":"http://x/a.wav"}]},{"role":"assistant","content":"ok"}]""")!.AsArray();
        var adapted = Normalizer.AdaptForVllm(msgs);
        var parts = adapted[0]!["content"]!.AsArray();
        Assert.Equal("""{"type":"text","text":"hi"}""", parts[0]!.ToJsonString());
        Assert.Equal("image_url", (string)parts[1]!["type"]!);
        Assert.Equal("file://" + Path.GetFullPath("img/a.png"), (string)parts[1]!["image_url"]!["url"]!);
        Assert.Equal("http://x/a.wav", (string)parts[2]!["audio_url"]!["url"]!);
        Assert.Equal("ok", (string)adapted[1]!["content"]!);
        var inline = JsonNode.Parse("""[{"role":"user","content":[{"type":"image","base64":"AAAA"}]}]""")!.AsArray();
        Assert.Contains("file path or URL", Assert.Throws<SpeculatorsException>(() => Normalizer.AdaptForVllm(inline)).Message);
    }

    static void AssertSkip(NormalizeResult r, SkipReason reason, string location)
    {
        Assert.Equal(NormalizedKind.Skipped, r.Kind);
        Assert.Equal(reason, r.Skip);
        Assert.Equal(location, r.Source.Location);
        Assert.False(string.IsNullOrEmpty(r.Message));
    }

    static int CountOf(string haystack, string needle)
    {
        int count = 0, i = 0;
        while ((i = haystack.IndexOf(needle, i, StringComparison.Ordinal)) >= 0) { count++; i += needle.Length; }
        return count;
    }
}
