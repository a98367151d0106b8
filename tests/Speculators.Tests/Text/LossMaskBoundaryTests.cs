using System.Text.Json.Nodes;
using Speculators.Text;
using static Speculators.Tests.Text.LossMaskTestKit;

namespace Speculators.Tests.Text;

/// <summary>
/// Boundary strategy (speculators HEAD, §6.3) on the real Qwen3 and Llama-3.1 templates and tokenizers: one row per
/// assistant turn j ≥ 1; its context decodes to the generation-prompt render of the preceding messages and its
/// supervised part to what the template appends for the turn.
/// </summary>
public class LossMaskBoundaryTests
{
    static LossMasker Boundary(ChatTemplate t, HfTokenizer tok, JsonObject? kwargs = null) =>
        LossMasker.Create(t, tok, new LossMaskOptions { Strategy = LossMaskStrategy.Boundary, TemplateKwargs = kwargs });

    static JsonArray Prefix(JsonArray m, int n) => new(m.Take(n).Select(x => x!.DeepClone()).ToArray());

    [Fact]
    public void QwenOneRowPerAssistantTurn()
    {
        var tok = Qwen3;
        var template = ModelTemplate("qwen3");
        var conv = Msgs(("assistant", "I speak first"), ("user", "Hi 🙂 日本語"), ("assistant", "Hello ✓ <|im_end|> 👍🏽"), ("user", "more"), ("assistant", "a2"));
        conv[4]!["reasoning_content"] = "why 🤔";
        var result = Boundary(template, tok).Mask(conv, null, 4096);
        Assert.Equal(MaskFailure.None, result.Failure);
        Assert.Equal(2, result.Rows.Count); // the assistant message at j = 0 has no context

        string[] supervised = ["<think>\n\n</think>\n\nHello ✓ <|im_end|> 👍🏽<|im_end|>\n", "<think>\nwhy 🤔\n</think>\n\na2<|im_end|>\n"];
        int[] turns = [2, 4];
        for (int r = 0; r < 2; r++)
        {
            var row = result.Rows[r];
            string prompt = template.Render(Prefix(conv, turns[r]), addGenerationPrompt: true).Text;
            string full = template.Render(Prefix(conv, turns[r] + 1)).Text;
            Assert.Equal(tok.EncodeToIds(full, false), row.InputIds);
            var runs = Runs(tok, row);
            Assert.Equal([(false, prompt), (true, supervised[r])], runs);
            Assert.EndsWith("<|im_start|>assistant\n", prompt);
        }
    }

    [Fact]
    public void LlamaSupervisesTrimmedContentAndEndOfTurn()
    {
        var tok = Llama31;
        var template = ModelTemplate("llama3_1");
        var conv = ThinkInContentConversation();
        var result = Boundary(template, tok).Mask(conv, null, 4096);
        Assert.Equal(3, result.Rows.Count);
        string[] contents = ["a1", "<think>\nreason 🤔\n</think>\n\nanswer 𝄞", "a3\n\nwith\nlines"];
        for (int r = 0; r < 3; r++)
        {
            var row = result.Rows[r];
            string prompt = template.Render(Prefix(conv, 2 * r + 1), addGenerationPrompt: true).Text;
            Assert.Equal([(false, prompt), (true, contents[r] + "<|eot_id|>")], Runs(tok, row));
            Assert.Equal(1, row.InputIds.Count(id => id == tok.BosTokenId));
        }
    }

    [Fact]
    public void QwenToolCallsEachAssistantTurnIsARow()
    {
        var tok = Qwen3;
        var template = ModelTemplate("qwen3");
        var result = Boundary(template, tok).Mask(ToolConversation(), (JsonArray)Tools.DeepClone(), 4096);
        Assert.Equal(2, result.Rows.Count);
        Assert.Equal(["<think>\n\n</think>\n\nSearching.\n<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"cats\"}}\n</tool_call><|im_end|>\n"],
            SupervisedTexts(tok, result.Rows[0]));
        Assert.Equal(["<think>\n\n</think>\n\nFound 3 cats 🐈.<|im_end|>\n"], SupervisedTexts(tok, result.Rows[1]));
    }

    [Fact]
    public void DivergentGenerationPromptFallsBackToTheCommonPrefix()
    {
        // enable_thinking=false: the generation prompt ends with an empty <think></think>, while the full render carries the
        // recorded reasoning. The history agrees, so the boundary is the common token prefix (right after "<think>").
        var tok = Qwen3;
        var template = ModelTemplate("qwen3");
        var conv = Msgs(("user", "q"), ("assistant", "answer"));
        conv[1]!["reasoning_content"] = "R";
        var kwargs = new JsonObject { ["enable_thinking"] = false };
        var row = Boundary(template, tok, kwargs).Mask(conv, null, 4096).Rows.Single();
        string history = template.Render(Prefix(conv, 1), kwargs: kwargs).Text;
        Assert.Equal([(false, history + "<|im_start|>assistant\n<think>"), (true, "\nR\n</think>\n\nanswer<|im_end|>\n")], Runs(tok, row));
    }

    [Fact]
    public void HistoryThatChangesIsBoundaryUnstable()
    {
        var tok = Qwen3;
        var template = ChatTemplate.FromString(
            "{{ messages|length }} turns\n{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}", "counting");
        var r = Boundary(template, tok).Mask(Msgs(("user", "q"), ("assistant", "a")), null, 4096);
        Assert.Equal(MaskFailure.BoundaryUnstable, r.Failure);
        Assert.Contains("assistant turn 1", r.Message);
        Assert.Empty(r.Rows);
    }

    [Fact]
    public void TurnsWhosePromptFillsTheSequenceLengthAreSkipped()
    {
        var tok = Qwen3;
        var template = ModelTemplate("qwen3");
        var conv = Msgs(("user", "a long question " + string.Concat(Enumerable.Repeat("word ", 40))), ("assistant", "x"), ("user", "q"), ("assistant", "y"));
        int firstPrompt = tok.EncodeToIds(template.Render(Prefix(conv, 1), addGenerationPrompt: true).Text, false).Length;
        var r = Boundary(template, tok).Mask(conv, null, firstPrompt);
        Assert.Equal(MaskFailure.NoTrainableTurn, r.Failure);
        Assert.Equal(2, r.TurnsSkippedForLength);
        r = Boundary(template, tok).Mask(conv, null, firstPrompt + 1);
        Assert.Single(r.Rows);
        Assert.Equal(1, r.TurnsSkippedForLength);
        Assert.Equal(MaskFailure.NoTrainableTurn, Boundary(template, tok).Mask(Msgs(("assistant", "alone"), ("user", "u")), null, 4096).Failure);
    }

    [Fact]
    public void TemplateErrorsAreReportedPerConversation()
    {
        var template = ChatTemplate.FromString("{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.role }}: {{ m.content }}\n{% endfor %}", "strict.jinja");
        var masker = Boundary(template, Qwen3);
        var r = masker.Mask(Msgs(("system", "s"), ("user", "u"), ("assistant", "a")), null, 4096);
        Assert.Equal(MaskFailure.TemplateError, r.Failure);
        Assert.Contains("System role not supported", r.Message);
        Assert.Single(masker.Mask(Msgs(("user", "u"), ("assistant", "a")), null, 4096).Rows);
    }
}
