using System.Text.Json.Nodes;
using Speculators.Text;
using static Speculators.Tests.Text.LossMaskTestKit;

namespace Speculators.Tests.Text;

/// <summary>
/// Generation strategy on the real Qwen3 and Llama-3.1 tokenizers with the TRL training templates: the supervised tokens
/// must decode to exactly the text inside the <c>{% generation %}</c> blocks and the rest to exactly the text outside.
/// </summary>
public class LossMaskGenerationTests
{
    public static TheoryData<string, string, string> Cases() => new()
    {
        { "qwen3", "qwen3_training.jinja", "unicode_think" },
        { "qwen3", "qwen3_training.jinja", "tools" },
        { "qwen3", "qwen3_training.jinja", "think_in_content" },
        { "llama3_1", "llama3_training.jinja", "unicode_think" },
        { "llama3_1", "llama3_training.jinja", "tools" },
        { "llama3_1", "llama3_training.jinja", "think_in_content" },
    };

    static (JsonArray Messages, JsonArray? Tools) Conversation(string name) => name switch
    {
        "unicode_think" => (UnicodeThinkConversation(), null),
        "tools" => (ToolConversation(), (JsonArray)Tools.DeepClone()),
        _ => (ThinkInContentConversation(), null),
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void SupervisedTokensDecodeToExactlyTheGenerationSpans(string model, string templateFile, string conversation)
    {
        var tok = Tokenizer(model);
        var template = TrainingTemplate(templateFile, tok);
        var masker = LossMasker.Create(template, tok, new LossMaskOptions { Strategy = LossMaskStrategy.Generation });
        Assert.Equal(LossMaskStrategy.Generation, masker.Strategy);

        var (messages, tools) = Conversation(conversation);
        var truth = template.Render((JsonArray)messages.DeepClone(), (JsonArray?)tools?.DeepClone());
        var result = masker.Mask(messages, tools, int.MaxValue);
        Assert.Equal(MaskFailure.None, result.Failure);
        var row = Assert.Single(result.Rows);
        Assert.Equal(tok.EncodeToIds(truth.Text, addSpecialTokens: false), row.InputIds);

        // Expected runs from the renderer's spans: text outside, text inside, alternating.
        var expected = new List<(bool, string)>();
        int at = 0;
        foreach (var (s, e) in truth.GenerationSpansUtf16.OrderBy(x => x.Start))
        {
            if (s > at) expected.Add((false, truth.Text[at..s]));
            if (expected.Count > 0 && expected[^1].Item1) expected[^1] = (true, expected[^1].Item2 + truth.Text[s..e]);
            else expected.Add((true, truth.Text[s..e]));
            at = e;
        }
        if (at < truth.Text.Length) expected.Add((false, truth.Text[at..]));
        Assert.True(expected.Count(x => x.Item1) >= 2, "the conversation should have several assistant spans");
        Assert.Equal(expected, Runs(tok, row));
    }

    [Fact]
    public void QwenSpecialTokenTextInsideTheAssistantMessageIsSupervisedAsTheSpecialToken()
    {
        var tok = Qwen3;
        var masker = LossMasker.Create(TrainingTemplate("qwen3_training.jinja", tok), tok);
        var row = masker.Mask(UnicodeThinkConversation(), null, int.MaxValue).Rows.Single();
        int imStart = tok.TokenToId("<|im_start|>")!.Value;
        // The assistant writes "<|im_start|>" literally: one supervised special token inside the last span.
        var supervisedImStart = Enumerable.Range(0, row.Length).Where(i => row.InputIds[i] == imStart && row.LossMask[i] == 1).ToList();
        Assert.Single(supervisedImStart);
        Assert.Contains("Done: <|im_start|> 👨‍👩‍👧 family 𠀀<|im_end|>\n", SupervisedTexts(tok, row).Last());
    }

    [Fact]
    public void ASpanEndingInACharacterSplitOverSeveralTokensIncludesAllOfThem()
    {
        var tok = Qwen3;
        // A character the byte-level vocabulary splits into several tokens that share its range.
        string? split = new[] { "𠀀", "𝄞", "🫨", "\U0001FA7B", "𓀀" }.FirstOrDefault(c => tok.EncodeToIds(c, false).Length >= 2);
        Assert.NotNull(split);
        var template = ChatTemplate.FromString(
            "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}!{% else %}{{ m.content }}|{% endif %}{% endfor %}",
            "split-test");
        var masker = LossMasker.Create(template, tok, new LossMaskOptions { Strategy = LossMaskStrategy.Generation });
        var row = masker.Mask(Msgs(("user", "q"), ("assistant", "ok " + split)), null, int.MaxValue).Rows.Single();
        Assert.Equal(["ok " + split], SupervisedTexts(tok, row));
        var enc = tok.Encode("q|ok " + split + "!", false);
        int sharing = enc.Offsets.Count(o => o == enc.Offsets[^2]);
        Assert.True(sharing >= 2, "precondition: the last character of the span is split over several tokens");
    }

    [Fact]
    public void ATokenStraddlingASpanBoundaryIsSupervised()
    {
        var tok = Qwen3;
        // The span covers "believ" inside "unbelievable": every token overlapping it counts (transformers' char_to_token rule).
        var template = ChatTemplate.FromString("un{% generation %}believ{% endgeneration %}able and more text", "straddle");
        var masker = LossMasker.Create(template, tok, new LossMaskOptions { Strategy = LossMaskStrategy.Generation });
        var row = masker.Mask(Msgs(("user", "x")), null, int.MaxValue).Rows.Single();
        var enc = tok.Encode("unbelievable and more text", false);
        for (int i = 0; i < enc.Ids.Length; i++)
        {
            var (s, e) = enc.Offsets[i];
            bool overlaps = s < 8 && e > 2;
            Assert.Equal(overlaps ? 1 : 0, row.LossMask[i]);
        }
        string supervised = string.Concat(SupervisedTexts(tok, row));
        Assert.Contains("believ", supervised);
        Assert.DoesNotContain("and", supervised);
    }

    [Fact]
    public void FromSpansOverlapRule()
    {
        (int, int)[] offsets = [(0, 3), (3, 5), (5, 6), (5, 6), (6, 10), (0, 0), (10, 12)];
        // Span [4, 6): straddles token 1, covers the two tokens sharing [5,6); [6, 6) is empty; [11, 20) reaches into the last token.
        var mask = LossMaskSpans.FromSpans(offsets, [(4, 6), (6, 6), (11, 20)]);
        Assert.Equal(new byte[] { 0, 1, 1, 1, 0, 0, 1 }, mask);
        // Overlapping and nested spans are merged; zero-length tokens are never supervised.
        Assert.Equal(new byte[] { 1, 1, 1, 1, 1, 0, 0 }, LossMaskSpans.FromSpans(offsets, [(2, 7), (0, 1), (3, 4)]));
        Assert.Equal(new byte[7], LossMaskSpans.FromSpans(offsets, []));
    }
}
