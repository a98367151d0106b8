using Speculators.Text;

namespace Speculators.Tests.Text;

public class TokenizerConfigTests
{
    [Fact]
    public void RealConfigsExposeSpecialTokensAndTemplates()
    {
        var qwen = TokenizerConfig.Load(TestPaths.Data("tokenizers", "qwen3"));
        Assert.Null(qwen.BosToken);
        Assert.Equal("<|im_end|>", qwen.EosToken);
        Assert.Equal("<|endoftext|>", qwen.PadToken);
        Assert.Contains("<|im_start|>", qwen.AdditionalSpecialTokens);
        Assert.Equal(4116, qwen.GetChatTemplate()!.Length);
        Assert.False(qwen.AddBosToken);

        var llama2 = TokenizerConfig.Load(TestPaths.Data("tokenizers", "llama2"));
        Assert.Equal("<s>", llama2.BosToken);
        Assert.True(llama2.AddBosToken);
        Assert.Null(llama2.GetChatTemplate());
        Assert.True(llama2.ModelMaxLength > 1e29);
    }

    [Fact]
    public void AddedTokenDictsNamedTemplatesAndTemplateFiles()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>",
             "chat_template": [{"name": "default", "template": "A"}, {"name": "tool_use", "template": "B"}],
             "some_future_key": 3}
            """);
        var cfg = TokenizerConfig.Load(dir.Path);
        Assert.Equal("<s>", cfg.BosToken);
        Assert.Equal("A", cfg.GetChatTemplate());
        Assert.Equal("B", cfg.GetChatTemplate("tool_use"));
        Assert.Contains("tool_use", Assert.Throws<SpeculatorsException>(() => cfg.GetChatTemplate("nope")).Message);
        Assert.True(cfg.Extra!.ContainsKey("some_future_key"));
        Assert.Equal(new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" }, cfg.SpecialTokensMap);

        File.WriteAllText(dir.File("chat_template.jinja"), "J");
        Assert.Equal("J", TokenizerConfig.Load(dir.Path).GetChatTemplate());
    }

    [Fact]
    public void MalformedTemplateNamesTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer_config.json"), """{"chat_template": 5}""");
        var e = Assert.Throws<SpeculatorsException>(() => TokenizerConfig.Load(dir.Path));
        Assert.Contains("tokenizer_config.json", e.Message);
    }
}
