using System.Text.Json.Nodes;
using Speculators.Jinja;
using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>The shared chat-template fixtures: scenarios.json and the Python jinja2 goldens.</summary>
internal static class ChatGoldens
{
    public static readonly DateTime Clock = new(2026, 1, 15, 12, 0, 0);

    public static JsonObject Scenario(string id) =>
        JsonNode.Parse(File.ReadAllText(TestPaths.Data("chat_templates", "scenarios.json")))!.AsArray()
            .Select(n => n!.AsObject()).Single(o => (string)o["id"]! == id);

    public static JsonObject Golden(string template, string scenario) =>
        File.ReadLines(TestPaths.Data("chat_templates", "goldens.jsonl"))
            .Where(l => !string.IsNullOrWhiteSpace(l)).Select(l => JsonNode.Parse(l)!.AsObject())
            .Single(g => (string)g["template"]! == template && (string)g["scenario"]! == scenario);

    public static List<(int, int)> Spans(JsonObject golden) =>
        golden["generation_spans"]!.AsArray().Select(s => ((int)s![0]!, (int)s[1]!)).ToList();
}

public class ChatTemplateTests
{
    static RenderResult RenderScenario(ChatTemplate ct, string scenario)
    {
        var s = ChatGoldens.Scenario(scenario);
        return ct.Render(s["messages"]!.AsArray(), s["tools"]?.AsArray(), (bool?)s["add_generation_prompt"] ?? false, s["kwargs"]?.AsObject());
    }

    [Theory]
    [InlineData("llama3_training.jinja", "multi_turn")]
    [InlineData("qwen3_training.jinja", "tool_call_round_trip")]
    [InlineData("qwen3_5_think_training.jinja", "unicode_and_escapes")]
    [InlineData("gptoss_training.jinja", "reasoning_content_field")]
    [InlineData("qwen3.jinja", "thinking_disabled")]
    public void FromFileMatchesTheGoldens(string template, string scenario)
    {
        var ct = ChatTemplate.FromFile(TestPaths.Data("chat_templates", template), "<s>", "</s>", new TemplateOptions { Now = () => ChatGoldens.Clock });
        var golden = ChatGoldens.Golden(template, scenario);
        var r = RenderScenario(ct, scenario);
        Assert.Equal((string)golden["text"]!, r.Text);
        Assert.Equal(ChatGoldens.Spans(golden), r.GenerationSpans);
        Assert.Equal(template.Contains("_training"), ct.HasGenerationBlocks);
    }

    // Expected texts rendered with Python jinja2 (transformers' settings) from the real tokenizer_config.json files,
    // with transformers' special_tokens_map (bos_token is null for Qwen3, so it is absent).
    [Theory]
    [InlineData("qwen3", "single_turn_system",
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nThe capital of France is Paris.<|im_end|>\n")]
    [InlineData("qwen3", "thinking_disabled",
        "<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n")]
    [InlineData("llama3_1", "multi_turn",
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello! How can I help you today?<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWrite a haiku about rain.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nSoft rain on the roof\nwhispers to the sleeping town\npuddles hold the sky<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nThanks.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nYou're welcome.<|eot_id|>")]
    public void FromModelDirectoryUsesItsTemplateAndSpecialTokens(string model, string scenario, string expected)
    {
        var ct = ChatTemplate.FromModelDirectory(TestPaths.Data("tokenizers", model));
        Assert.Equal(expected, RenderScenario(ct, scenario).Text);
        Assert.EndsWith("tokenizer_config.json", ct.SourceName);
        Assert.False(ct.HasGenerationBlocks);
    }

    [Fact]
    public void SpecialTokensMapFollowsTransformers()
    {
        var qwen = ChatTemplate.FromModelDirectory(TestPaths.Data("tokenizers", "qwen3"));
        Assert.False(qwen.SpecialTokens.ContainsKey("bos_token"));
        Assert.Equal("<|im_end|>", qwen.SpecialTokens["eos_token"]);
        Assert.Equal("<|endoftext|>", qwen.SpecialTokens["pad_token"]);
        Assert.Contains("<|im_start|>", (List<string>)qwen.SpecialTokens["additional_special_tokens"]!);
        var withBos = qwen.WithSpecialToken("bos_token", "<B>");
        Assert.Equal("<B>", withBos.SpecialTokens["bos_token"]);
        Assert.False(qwen.SpecialTokens.ContainsKey("bos_token"));
    }

    [Fact]
    public void ChatTemplateJinjaAndAddedTokenDictsAndKwargsOverride()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>", "chat_template": "ignored: chat_template.jinja wins"}
            """);
        File.WriteAllText(dir.File("chat_template.jinja"),
            "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}{% if flag %}!{% endif %}{{ tools is none }}");
        var ct = ChatTemplate.FromModelDirectory(dir.Path);
        var msgs = new JsonArray(new JsonObject { ["role"] = "user", ["content"] = "hi" });
        Assert.Equal("<B>user:hi<E>True", ct.Render(msgs).Text);
        Assert.Equal("<X>user:hi<E>!True", ct.Render(msgs, kwargs: new JsonObject { ["flag"] = true, ["bos_token"] = "<X>" }).Text);
        var e = Assert.Throws<SpeculatorsException>(() => ct.Render(msgs, kwargs: new JsonObject { ["messages"] = 1 }));
        Assert.Contains("'messages'", e.Message);
    }

    [Fact]
    public void NamedTemplatesPickToolUseWhenToolsAreGiven()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"chat_template": [{"name": "default", "template": "plain"}, {"name": "tool_use", "template": "tools={{ tools|length }}"}]}
            """);
        var ct = ChatTemplate.FromModelDirectory(dir.Path);
        var msgs = new JsonArray();
        Assert.Equal("plain", ct.Render(msgs).Text);
        Assert.Equal("tools=1", ct.Render(msgs, new JsonArray(new JsonObject { ["type"] = "function" })).Text);
        Assert.Equal("tools=0", ChatTemplate.FromModelDirectory(dir.Path, "tool_use").Render(msgs, new JsonArray()).Text);
        Assert.Throws<SpeculatorsException>(() => ChatTemplate.FromModelDirectory(dir.Path, "nope"));
    }

    [Fact]
    public void TemplateErrorsNameTheSourceLineAndColumn()
    {
        var path = TestPaths.Data("chat_templates", "gemma.jinja");
        var ct = ChatTemplate.FromFile(path, "<s>", "</s>");
        var e = Assert.Throws<SpeculatorsException>(() => RenderScenario(ct, "single_turn_system"));
        Assert.Equal($"{path}: line 1, column 59: TemplateError: System role not supported", e.Message);

        using var dir = new TempDir();
        File.WriteAllText(dir.File("bad.jinja"), "ok\n{% for m in messages %}{{ m.content }");
        var pe = Assert.Throws<SpeculatorsException>(() => ChatTemplate.FromFile(dir.File("bad.jinja"), null, null));
        Assert.StartsWith(dir.File("bad.jinja") + ": line 2, column 37: TemplateSyntaxError: unexpected '}'", pe.Message);
    }

    [Fact]
    public void MissingTemplatesAreReported()
    {
        var e = Assert.Throws<SpeculatorsException>(() => ChatTemplate.FromModelDirectory(TestPaths.Data("tokenizers", "llama2")));
        Assert.Contains("no chat template found", e.Message);
        Assert.Throws<SpeculatorsException>(() => ChatTemplate.FromFile("/nonexistent/t.jinja", null, null));
    }

    [Fact]
    public void JsonTemplateFileBringsItsSpecialTokens()
    {
        var ct = ChatTemplate.FromFile(TestPaths.Data("tokenizers", "llama3_1", "tokenizer_config.json"), null, "<END>");
        Assert.Equal("<|begin_of_text|>", ct.SpecialTokens["bos_token"]);
        Assert.Equal("<END>", ct.SpecialTokens["eos_token"]);
    }
}
