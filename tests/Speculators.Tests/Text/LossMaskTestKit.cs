using System.Text.Json.Nodes;
using Speculators.Jinja;
using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>Shared fixtures of the loss-mask tests: the real tokenizers (loaded once) and conversations.</summary>
internal static class LossMaskTestKit
{
    static readonly Lazy<HfTokenizer> QwenTok = new(() => HfTokenizer.Load(TestPaths.Data("tokenizers", "qwen3")));
    static readonly Lazy<HfTokenizer> LlamaTok = new(() => HfTokenizer.Load(TestPaths.Data("tokenizers", "llama3_1")));

    public static HfTokenizer Qwen3 => QwenTok.Value;
    public static HfTokenizer Llama31 => LlamaTok.Value;
    public static HfTokenizer Tokenizer(string name) => name == "qwen3" ? Qwen3 : Llama31;

    public static readonly DateTime Clock = new(2026, 1, 15, 12, 0, 0);

    /// <summary>A shared template file with the given model's special tokens (as prepare-data's --chat-template does).</summary>
    public static ChatTemplate TrainingTemplate(string file, HfTokenizer tok) =>
        ChatTemplate.FromString(File.ReadAllText(TestPaths.Data("chat_templates", file)), file, tok.Config.SpecialTokensMap, new TemplateOptions { Now = () => Clock });

    public static ChatTemplate ModelTemplate(string model) => ChatTemplate.FromModelDirectory(TestPaths.Data("tokenizers", model));

    public static JsonArray Msgs(params (string Role, string Content)[] turns)
    {
        var a = new JsonArray();
        foreach (var (r, c) in turns) a.Add(new JsonObject { ["role"] = r, ["content"] = c });
        return a;
    }

    public static readonly JsonArray Tools = JsonNode.Parse(
        """[{"type":"function","function":{"name":"search","description":"Search","parameters":{"type":"object","properties":{"q":{"type":"string"}}}}}]""")!.AsArray();

    /// <summary>Multi-turn: system, unicode (emoji with modifiers, ZWJ sequences, CJK, astral), special-token text inside messages, reasoning_content.</summary>
    public static JsonArray UnicodeThinkConversation()
    {
        var m = Msgs(
            ("system", "Be brief."),
            ("user", "Hi 🙂 日本語?"),
            ("assistant", "Hello ✓ 🎉 — ça va 👍🏽"),
            ("user", "Say <|im_end|> and <|eot_id|> literally"),
            ("assistant", "Done: <|im_start|> 👨‍👩‍👧 family 𠀀"));
        m[4]!["reasoning_content"] = "thinking 🤔 深く";
        return m;
    }

    /// <summary>A tool call round trip (OpenAI tool_calls with dict arguments, a tool message).</summary>
    public static JsonArray ToolConversation() => JsonNode.Parse(
        """
        [{"role":"user","content":"find cats"},
         {"role":"assistant","content":"Searching.","tool_calls":[{"type":"function","function":{"name":"search","arguments":{"q":"cats"}}}]},
         {"role":"tool","content":"3 results"},
         {"role":"assistant","content":"Found 3 cats 🐈."}]
        """)!.AsArray();

    /// <summary><c>&lt;think&gt;</c> written inside the content, three assistant turns.</summary>
    public static JsonArray ThinkInContentConversation() => Msgs(
        ("user", "q1"), ("assistant", "a1"),
        ("user", "q2 𝄞"), ("assistant", "<think>\nreason 🤔\n</think>\n\nanswer 𝄞"),
        ("user", "q3"), ("assistant", "a3\n\nwith\nlines"));

    /// <summary>Consecutive runs of equal mask value, decoded: (supervised, text).</summary>
    public static List<(bool Supervised, string Text)> Runs(HfTokenizer tok, MaskedRow row)
    {
        var runs = new List<(bool, string)>();
        int start = 0;
        for (int i = 1; i <= row.Length; i++)
        {
            if (i < row.Length && row.LossMask[i] == row.LossMask[start]) continue;
            runs.Add((row.LossMask[start] == 1, tok.Decode(row.InputIds[start..i])));
            start = i;
        }
        return runs;
    }

    public static List<string> SupervisedTexts(HfTokenizer tok, MaskedRow row) =>
        Runs(tok, row).Where(r => r.Supervised).Select(r => r.Text).ToList();
}
