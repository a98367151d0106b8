using System.Text.Json.Nodes;
using Speculators.Tests.Text;

namespace Speculators.Tests.Cli;

public class ChatTemplateCliTests
{
    static string WriteMessages(TempDir dir, string scenario, out string? toolsPath)
    {
        var s = ChatGoldens.Scenario(scenario);
        string path = dir.File(scenario + ".json");
        File.WriteAllText(path, s["messages"]!.ToJsonString());
        toolsPath = null;
        if (s["tools"] is JsonArray tools)
        {
            toolsPath = dir.File(scenario + ".tools.json");
            File.WriteAllText(toolsPath, tools.ToJsonString());
        }
        return path;
    }

    [Fact]
    public void RendersExactlyTheGoldenText()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "tool_call_round_trip", out var tools);
        var r = CliRunner.Ok("chat-template", "render", "--template", TestPaths.Data("chat_templates", "qwen3_5_nothink.jinja"),
            "--messages", msgs, "--tools", tools!, "--bos-token", "<s>", "--eos-token", "</s>");
        Assert.Equal((string)ChatGoldens.Golden("qwen3_5_nothink.jinja", "tool_call_round_trip")["text"]!, r.Stdout);
    }

    [Fact]
    public void SpansOutputIsJsonWithCodePointOffsets()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "unicode_and_escapes", out _);
        var r = CliRunner.Ok("chat-template", "render", "--template", TestPaths.Data("chat_templates", "llama3_training.jinja"),
            "--messages", msgs, "--bos-token", "<s>", "--spans");
        var o = JsonNode.Parse(r.Stdout)!.AsObject();
        var golden = ChatGoldens.Golden("llama3_training.jinja", "unicode_and_escapes");
        Assert.Equal((string)golden["text"]!, (string)o["text"]!);
        Assert.Equal(ChatGoldens.Spans(golden), o["generation_spans"]!.AsArray().Select(s => ((int)s![0]!, (int)s[1]!)).ToList());
    }

    [Fact]
    public void ModelDirectoryKwargsGenerationPromptAndBosOverride()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "thinking_disabled", out _);
        var r = CliRunner.Ok("chat-template", "render", "--model", TestPaths.Data("tokenizers", "qwen3"), "--messages", msgs,
            "--add-generation-prompt", "--kwargs", "{\"enable_thinking\": false}");
        Assert.Equal("<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n", r.Stdout);
        var thinking = CliRunner.Ok("chat-template", "render", "--model", TestPaths.Data("tokenizers", "qwen3"), "--messages", msgs, "--add-generation-prompt");
        Assert.Equal("<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n", thinking.Stdout);
        var llama = CliRunner.Ok("chat-template", "render", "--model", TestPaths.Data("tokenizers", "llama3_1"), "--messages", msgs, "--bos-token", "[BOS]");
        Assert.StartsWith("[BOS]<|start_header_id|>user", llama.Stdout);
    }

    [Fact]
    public void NowMakesDateStampsReproducible()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "generation_prompt", out _);
        var r = CliRunner.Ok("chat-template", "render", "--template", TestPaths.Data("chat_templates", "llama3_2.jinja"), "--messages", msgs,
            "--bos-token", "<s>", "--add-generation-prompt", "--now", "2026-01-15T12:00:00");
        Assert.Equal((string)ChatGoldens.Golden("llama3_2.jinja", "generation_prompt")["text"]!, r.Stdout);
        Assert.Contains("15 Jan 2026", r.Stdout);
    }

    [Fact]
    public void TemplateErrorExitsNonZeroWithTheMessage()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "single_turn_system", out _);
        var r = CliRunner.Run("chat-template", "render", "--template", TestPaths.Data("chat_templates", "gemma.jinja"), "--messages", msgs);
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("", r.Stdout);
        Assert.Contains("gemma.jinja: line 1, column 59: TemplateError: System role not supported", r.Stderr);
    }

    [Fact]
    public void BadArgumentsAreExplained()
    {
        using var dir = new TempDir();
        var msgs = WriteMessages(dir, "multi_turn", out _);
        var both = CliRunner.Run("chat-template", "render", "--messages", msgs);
        Assert.Equal(1, both.ExitCode);
        Assert.Contains("exactly one of --model", both.Stderr);
        File.WriteAllText(dir.File("obj.json"), "{\"role\": \"user\"}");
        var notList = CliRunner.Run("chat-template", "render", "--template", TestPaths.Data("chat_templates", "llama3.jinja"), "--messages", dir.File("obj.json"));
        Assert.Equal(1, notList.ExitCode);
        Assert.Contains("expected a JSON list of messages", notList.Stderr);
        var badKw = CliRunner.Run("chat-template", "render", "--template", TestPaths.Data("chat_templates", "llama3.jinja"), "--messages", msgs, "--kwargs", "[1]");
        Assert.Equal(1, badKw.ExitCode);
        Assert.Contains("--kwargs", badKw.Stderr);
        var badNow = CliRunner.Run("chat-template", "render", "--template", TestPaths.Data("chat_templates", "llama3.jinja"), "--messages", msgs, "--now", "yesterday");
        Assert.Equal(1, badNow.ExitCode);
        Assert.Contains("--now", badNow.Stderr);
    }

    [Fact]
    public void HelpDescribesTheOptions()
    {
        var r = CliRunner.Ok("chat-template", "render", "--help");
        foreach (var opt in new[] { "--model", "--template", "--messages", "--tools", "--add-generation-prompt", "--kwargs", "--bos-token", "--eos-token", "--now", "--spans" })
            Assert.Contains(opt, r.Stdout);
        Assert.Contains("apply_chat_template", r.Stdout);
    }
}
