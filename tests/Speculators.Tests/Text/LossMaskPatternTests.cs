using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Jinja;
using Speculators.Text;
using static Speculators.Tests.Text.LossMaskTestKit;

namespace Speculators.Tests.Text;

/// <summary>
/// Pattern strategy: the detection of legacy speculators against Python goldens for all 53 real templates, and masks on the
/// real Qwen3 / Llama-3.1 tokenizers and templates compared with the supervised text the template's structure implies.
/// </summary>
public class LossMaskPatternTests
{
    static readonly Lazy<JsonObject> Goldens = new(() => JsonNode.Parse(File.ReadAllText(
        Path.Combine(TestPaths.RepoRoot, "tests", "Speculators.Tests", "Text", "LossMaskFixtures", "pattern_goldens.json")))!.AsObject());

    static ChatTemplate SharedTemplate(string file) =>
        ChatTemplate.FromFile(TestPaths.Data("chat_templates", file), "<s>", "</s>", new TemplateOptions { Now = () => Clock });

    static JsonArray Probe() => Msgs([.. AssistantPattern.ProbeConversation]);

    /// <summary>UTF-16 index → code point index (Python's string positions).</summary>
    static int CodePoints(string s, int utf16)
    {
        int cp = 0;
        for (int i = 0; i < utf16; i++) if (!(char.IsLowSurrogate(s[i]) && i > 0 && char.IsHighSurrogate(s[i - 1]))) cp++;
        return cp;
    }

    [Fact]
    public void DetectionAndMatchesEqualPythonOnAll53Templates()
    {
        var templates = Goldens.Value["templates"]!.AsObject();
        Assert.Equal(53, templates.Count);
        var conversations = Goldens.Value["conversations"]!.AsArray().ToDictionary(c => (string)c!["name"]!, c => c!.AsObject());
        int detected = 0, compared = 0;
        foreach (var (file, node) in templates)
        {
            var g = node!.AsObject();
            var template = SharedTemplate(file);
            if (g["probe_error"] != null)
            {
                Assert.ThrowsAny<SpeculatorsException>(() => template.Render(Probe()));
                continue;
            }
            string probe = template.Render(Probe()).Text;
            if (!(bool)g["detected"]!)
            {
                Assert.Throws<SpeculatorsException>(() => AssistantPattern.Detect(probe, file));
                continue;
            }
            var p = AssistantPattern.Detect(probe, file);
            Assert.True((string)g["role_marker"]! == p.RoleMarker, $"{file}: role marker {p.RoleMarker}");
            Assert.True((string)g["suffix"]! == p.Suffix, $"{file}: suffix {p.Suffix}");
            Assert.True((string?)g["boundary"] == p.Boundary, $"{file}: boundary {p.Boundary}");
            detected++;
            foreach (var c in g["conversations"]!.AsArray())
            {
                var conv = conversations[(string)c!["name"]!];
                var messages = (JsonArray)conv["messages"]!.DeepClone();
                var tools = (JsonArray?)conv["tools"]?.DeepClone();
                if (c["error_type"] != null)
                {
                    Assert.ThrowsAny<SpeculatorsException>(() => template.Render(messages, tools));
                    continue;
                }
                string text = template.Render(messages, tools).Text;
                Assert.True((string)c["sha256"]! == Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text))).ToLowerInvariant(),
                    $"{file} / {c["name"]}: the render differs from Python's ({text.Length} vs {c["length"]} characters): {text}");
                var expected = c["spans"]!.AsArray().Select(s => ((int)s![0]!, (int)s[1]!)).ToList();
                Assert.Equal(p.RegexSpans(text, file), p.LiteralSpans(text));
                var actual = p.Spans(text, file).Select(s => (CodePoints(text, s.Start), CodePoints(text, s.End))).ToList();
                Assert.True(expected.SequenceEqual(actual), $"{file} / {c["name"]}: expected [{string.Join(", ", expected)}], got [{string.Join(", ", actual)}]");
                compared++;
            }
        }
        Assert.True(detected >= 45, $"only {detected} templates detected");
        Assert.True(compared >= 120, $"only {compared} conversations compared");
    }

    [Fact]
    public void LiteralScanEqualsTheRegexOnRandomText()
    {
        // The detected pattern is applied by ordinal searches; it must find what the regex finds, including boundaries that
        // overlap the suffix, repeated markers, surrogate pairs and unterminated turns.
        var rng = new Random(5);
        string[] pieces = ["<a>", "</a>", "<a", "a>", "<", ">", "x", "y", "\n", "\n", "😀", "é", "<a></a>", "</a", "<|start|"];
        foreach (var (marker, suffix) in new[] { ("<a>", "</a>"), ("[x]", "\n"), ("<a>x", "a>"), ("y<", "<|s"), ("<assistant>", "<a") })
        {
            string probe = $"u USER_MSG_1 {marker}ASSISTANT_MSG_1{suffix}USER_MSG_2 {marker}ASSISTANT_MSG_2{suffix}";
            var p = AssistantPattern.Detect(probe, "random");
            for (int n = 0; n < 400; n++)
            {
                var sb = new StringBuilder();
                int len = rng.Next(1, 30);
                for (int i = 0; i < len; i++) sb.Append(rng.Next(4) == 0 ? p.RoleMarker : pieces[rng.Next(pieces.Length)]);
                string text = sb.ToString();
                Assert.Equal(p.RegexSpans(text, "random"), p.LiteralSpans(text));
            }
        }
    }

    [Fact]
    public void QwenPatternSupervisesTheAssistantContentAsTheTemplateRendersIt()
    {
        var tok = Qwen3;
        var masker = LossMasker.Create(ModelTemplate("qwen3"), tok);
        Assert.Equal(LossMaskStrategy.Pattern, masker.Strategy);
        Assert.Equal("<|im_start|>assistant\n", masker.Pattern!.RoleMarker);
        Assert.Equal("<|im_end|>\n", masker.Pattern.Suffix);

        // Earlier turns are rendered without reasoning; the last one (after the last user query) gets its <think> block.
        var row = masker.Mask(ThinkInContentConversation(), null, int.MaxValue).Rows.Single();
        Assert.Equal(["a1", "answer 𝄞", "<think>\n\n</think>\n\na3\n\nwith\nlines"], SupervisedTexts(tok, row));

        row = masker.Mask(UnicodeThinkConversation(), null, int.MaxValue).Rows.Single();
        // The second assistant message contains "<|im_start|>", which the pattern's lookahead refuses: only the first turn matches (as in Python).
        Assert.Equal(["Hello ✓ 🎉 — ça va 👍🏽"], SupervisedTexts(tok, row));

        row = masker.Mask(ToolConversation(), (JsonArray)Tools.DeepClone(), int.MaxValue).Rows.Single();
        Assert.Equal(["Searching.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"cats\"}}\n</tool_call>", "<think>\n\n</think>\n\nFound 3 cats 🐈."],
            SupervisedTexts(tok, row));
    }

    [Fact]
    public void LlamaPatternSupervisesTheTrimmedContent()
    {
        var tok = Llama31;
        var masker = LossMasker.Create(ModelTemplate("llama3_1"), tok);
        Assert.Equal(LossMaskStrategy.Pattern, masker.Strategy);
        Assert.Equal("<|start_header_id|>assistant<|end_header_id|>\n\n", masker.Pattern!.RoleMarker);
        Assert.Equal("<|eot_id|>", masker.Pattern.Suffix);
        var conv = ThinkInContentConversation();
        var row = masker.Mask(conv, null, int.MaxValue).Rows.Single();
        Assert.Equal(["a1", "<think>\nreason 🤔\n</think>\n\nanswer 𝄞", "a3\n\nwith\nlines"], SupervisedTexts(tok, row));
        Assert.Equal(tok.BosTokenId, row.InputIds[0]); // the template writes BOS; add_special_tokens=false adds no second one
        Assert.NotEqual(tok.BosTokenId, row.InputIds[1]);

        row = masker.Mask(UnicodeThinkConversation(), null, int.MaxValue).Rows.Single();
        Assert.Equal(["Hello ✓ 🎉 — ça va 👍🏽", "Done: <|im_start|> 👨‍👩‍👧 family 𠀀"], SupervisedTexts(tok, row));
    }

    [Fact]
    public void GivenPatternInPythonSyntax()
    {
        var tok = Qwen3;
        var masker = LossMasker.Create(ModelTemplate("qwen3"), tok,
            new LossMaskOptions { AssistantPattern = @"<\|im_start\|>assistant\n(?P<body>.*?)<\|im_end\|>" });
        Assert.Equal(LossMaskStrategy.Pattern, masker.Strategy);
        Assert.False(masker.Pattern!.Detected);
        var row = masker.Mask(UnicodeThinkConversation(), null, int.MaxValue).Rows.Single();
        // Unlike the detected pattern, this one has no lookahead, so the second turn (with "<|im_start|>" inside) matches too.
        Assert.Equal(["Hello ✓ 🎉 — ça va 👍🏽", "<think>\nthinking 🤔 深く\n</think>\n\nDone: <|im_start|> 👨‍👩‍👧 family 𠀀"], SupervisedTexts(tok, row));
    }

    [Fact]
    public void PythonRegexSyntaxIsTranslated()
    {
        Assert.Equal(@"(?<a>x)\k<a>\z[\Z(?P<]", AssistantPattern.TranslatePython(@"(?P<a>x)(?P=a)\Z[\Z(?P<]"));
        Assert.Equal(@"\\Z", AssistantPattern.TranslatePython(@"\\Z"));
        Assert.Equal("[]a](?<b>.)", AssistantPattern.TranslatePython("[]a](?P<b>.)"));
    }

    [Fact]
    public void BadGivenPatternsNameTheFlag()
    {
        var e = Assert.Throws<SpeculatorsException>(() => AssistantPattern.FromUser("assistant: .*"));
        Assert.Contains("--assistant-pattern", e.Message);
        Assert.Contains("no capturing group", e.Message);
        e = Assert.Throws<SpeculatorsException>(() => AssistantPattern.FromUser("(unclosed"));
        Assert.Contains("not a valid regex", e.Message);
        e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(ModelTemplate("qwen3"), Qwen3,
            new LossMaskOptions { AssistantPattern = "(x)", Strategy = LossMaskStrategy.Boundary }));
        Assert.Contains("cannot be combined", e.Message);
    }

    [Fact]
    public void ConversationsThePatternDoesNotMatchAreReported()
    {
        var masker = LossMasker.Create(ModelTemplate("qwen3"), Qwen3, new LossMaskOptions { AssistantPattern = "NEVER(x)" });
        var r = masker.Mask(ThinkInContentConversation(), null, int.MaxValue);
        Assert.Equal(MaskFailure.NoAssistantMatch, r.Failure);
        Assert.Empty(r.Rows);
    }

    [Fact]
    public void DetectionReproducesPythonStringQuirks()
    {
        // Expected values printed by gen_pattern_goldens.detect (Python).
        // No USER_MSG_2: Python slices the prefix from index 9 and the first tail up to index -1.
        var p = AssistantPattern.Detect("0123456789[assistant]ASSISTANT_MSG_1 END ASSISTANT_MSG_2 END!", "quirk");
        Assert.Equal("[assistant]ASSISTANT_MSG_1 END ", p.RoleMarker);
        Assert.Equal(" END", p.Suffix);
        Assert.Equal("[assistant]", p.Boundary);
        // Thinking blocks are stripped from the role marker.
        p = AssistantPattern.Detect("<u>USER_MSG_1</u><a>ASSISTANT_MSG_1</a><u>USER_MSG_2</u><a>assistant<think>\n\n</think>\n\nASSISTANT_MSG_2</a>", "think");
        Assert.Equal("<a>assistant", p.RoleMarker);
        Assert.Equal("</a>", p.Suffix);
        Assert.Equal("<a>", p.Boundary);
        // Tails "😀x" and "😁y" share a UTF-16 high surrogate but no code point: the common prefix is empty, so the suffix is the first tail.
        p = AssistantPattern.Detect("USER_MSG_1 [assistant]ASSISTANT_MSG_1😀xUSER_MSG_2 [assistant]ASSISTANT_MSG_2😁y", "surrogates");
        Assert.Equal("😀x", p.Suffix);
        // USER_MSG_2 before ASSISTANT_MSG_1: the first tail is empty, so the suffix falls back to a newline.
        p = AssistantPattern.Detect("x😀USER_MSG_2 <b>assistant ASSISTANT_MSG_1 😀a ASSISTANT_MSG_2 😁b", "order");
        Assert.Equal("<b>assistant ASSISTANT_MSG_1 😀a ", p.RoleMarker);
        Assert.Equal("\n", p.Suffix);
        Assert.Equal("<b>", p.Boundary);
    }
}
