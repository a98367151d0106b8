using Speculators.Text;
using Speculators.Util;
using static Speculators.Tests.Text.LossMaskTestKit;

namespace Speculators.Tests.Text;

/// <summary>How <see cref="LossMasker.Create"/> chooses the strategy (speculators.md §6.4 order) and why it refuses.</summary>
public class LossMaskSelectionTests
{
    [Fact]
    public void AutoUsesGenerationBlocksWhenTheyMarkTheProbe()
    {
        var m = LossMasker.Create(TrainingTemplate("qwen3_training.jinja", Qwen3), Qwen3);
        Assert.Equal(LossMaskStrategy.Generation, m.Strategy);
        Assert.StartsWith("generation", m.Description);
    }

    [Fact]
    public void AutoDetectsAPatternWithoutGenerationBlocks()
    {
        var m = LossMasker.Create(ModelTemplate("llama3_1"), Llama31);
        Assert.Equal(LossMaskStrategy.Pattern, m.Strategy);
        Assert.Contains(m.Pattern!.Pattern, m.Description);
        Assert.True(m.Pattern.Detected);
    }

    [Fact]
    public void EmptyGenerationBlocksFallBackToAPatternWithAWarning()
    {
        var t = ChatTemplate.FromString(
            "{% for m in messages %}<|im_start|>{{ m.role }}\n{% generation %}{% endgeneration %}{{ m.content }}<|im_end|>\n{% endfor %}", "empty-generation");
        var log = new StringWriter();
        var old = Log.Writer;
        Log.Writer = log;
        try
        {
            var m = LossMasker.Create(t, Qwen3);
            Assert.Equal(LossMaskStrategy.Pattern, m.Strategy);
        }
        finally { Log.Writer = old; }
        Assert.Contains("mark no token", log.ToString());
        var e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(t, Qwen3, new LossMaskOptions { Strategy = LossMaskStrategy.Generation }));
        Assert.Contains("mark no token", e.Message);
    }

    [Fact]
    public void GenerationWithoutBlocksIsAnErrorThatSaysWhatToDo()
    {
        var e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(ModelTemplate("qwen3"), Qwen3, new LossMaskOptions { Strategy = LossMaskStrategy.Generation }));
        Assert.Contains("{% generation %}", e.Message);
        Assert.Contains("--chat-template", e.Message);
    }

    [Fact]
    public void ATemplateThatFailsTheProbeCannotBeDetected()
    {
        var t = ChatTemplate.FromString("{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}", "alternating.jinja");
        var e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(t, Qwen3));
        Assert.Contains("alternate", e.Message);
        Assert.Contains("--assistant-pattern", e.Message);
        // Boundary needs no probe.
        Assert.Equal(LossMaskStrategy.Boundary, LossMasker.Create(t, Qwen3, new LossMaskOptions { Strategy = LossMaskStrategy.Boundary }).Strategy);
    }

    [Fact]
    public void KwargsMayNotSetTheRenderersOwnVariables()
    {
        var e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(ModelTemplate("qwen3"), Qwen3,
            new LossMaskOptions { TemplateKwargs = new System.Text.Json.Nodes.JsonObject { ["add_generation_prompt"] = true } }));
        Assert.Contains("--kwargs", e.Message);
        Assert.Contains("add_generation_prompt", e.Message);
    }

    [Fact]
    public void ADetectedPatternThatCapturesNothingIsRefused()
    {
        // The assistant text is followed by the next role marker only: the detected suffix never follows the last message.
        var t = ChatTemplate.FromString("{% for m in messages %}[{{ m.role }}]{{ m.content }}{% if not loop.last %}|{{ loop.index }}|{% endif %}{% endfor %}", "odd.jinja");
        var e = Assert.Throws<SpeculatorsException>(() => LossMasker.Create(t, Qwen3, new LossMaskOptions { Strategy = LossMaskStrategy.Pattern }));
        Assert.Contains("does not capture", e.Message);
    }
}
