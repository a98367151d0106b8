using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Data.Preparation;
using Speculators.Quickstart;
using Speculators.Text;

namespace Speculators.Tests.Quickstart;

public class QuickstartTokenizerTests
{
    [Fact]
    public void BuildsAChatModelTokenizerWhoseGenerationSpansAreTheAnswers()
    {
        using var dir = new TempDir();
        var examples = SyntheticCorpus.Generate(1200, 5, heldOut: false);
        var tok = QuickstartTokenizer.Build(SyntheticCorpus.TokenizerTrainingText(examples), 512, dir.Path, 256);

        Assert.Equal(512, tok.VocabSize);
        // Special tokens follow the learned vocabulary; EOS and padding come from tokenizer_config.json.
        Assert.Equal(509, tok.TokenToId(QuickstartTokenizer.EndOfText));
        Assert.Equal(510, tok.TokenToId(QuickstartTokenizer.ImStart));
        Assert.Equal(511, tok.TokenToId(QuickstartTokenizer.ImEnd));
        Assert.Equal(511, tok.EosTokenId);
        Assert.Equal(509, tok.PadTokenId);
        var gen = JsonNode.Parse(File.ReadAllText(dir.File("generation_config.json")))!;
        Assert.Equal(511, gen["eos_token_id"]!.GetValue<int>());
        var cfg = JsonNode.Parse(File.ReadAllText(dir.File("tokenizer_config.json")))!;
        Assert.Equal(256, cfg["model_max_length"]!.GetValue<int>());
        Assert.Equal(QuickstartTokenizer.ChatTemplate, cfg["chat_template"]!.GetValue<string>());

        // Every corpus text round-trips, and the vocabulary learned the corpus (far fewer tokens than bytes).
        long bytes = 0, tokens = 0;
        foreach (var text in SyntheticCorpus.TokenizerTrainingText(examples.Take(200)))
        {
            var ids = tok.EncodeToIds(text, addSpecialTokens: false);
            Assert.Equal(text, tok.Decode(ids));
            bytes += System.Text.Encoding.UTF8.GetByteCount(text);
            tokens += ids.Length;
        }
        Assert.True(tokens * 2 < bytes, $"{tokens} tokens for {bytes} bytes");

        // The template renders ChatML exactly, and the generation span is the answer plus its end-of-turn token.
        var template = ChatTemplate.FromModelDirectory(dir.Path);
        var e = examples[0];
        var r = template.Render(e.ToMessages(), addGenerationPrompt: false);
        Assert.Equal($"<|im_start|>user\n{e.Prompt}<|im_end|>\n<|im_start|>assistant\n{e.Answer}<|im_end|>\n", r.Text);
        var prompt = template.Render(e.ToMessages(includeAnswer: false), addGenerationPrompt: true);
        Assert.Equal($"<|im_start|>user\n{e.Prompt}<|im_end|>\n<|im_start|>assistant\n", prompt.Text);
    }

    [Fact]
    public void PrepareDataChoosesTheGenerationStrategyAndSupervisesExactlyTheAnswers()
    {
        using var dir = new TempDir();
        var examples = SyntheticCorpus.Generate(60, 9, heldOut: false);
        string model = dir.File("model");
        var tok = QuickstartTokenizer.Build(SyntheticCorpus.TokenizerTrainingText(SyntheticCorpus.Generate(600, 9, false)), 400, model, 256);
        string data = dir.File("train.jsonl");
        File.WriteAllLines(data, examples.Select(x => new JsonObject { ["conversations"] = x.ToMessages() }.ToJsonString()));
        var summary = PrepareData.Run(new PrepareDataOptions { Model = model, Data = [data], Output = dir.File("prepared"), Tokenizer = tok });
        Assert.Equal(LossMaskStrategy.Generation, summary.Strategy);
        Assert.Equal(60, summary.Rows);

        using var ds = PreparedDataset.Open(dir.File("prepared"));
        var answers = examples.Select(x => x.Answer + QuickstartTokenizer.ImEnd).ToHashSet();
        for (int i = 0; i < ds.Count; i++)
        {
            var row = ds.GetRow(i);
            var supervised = row.InputIds.Where((_, t) => row.LossMask[t] != 0).Select(x => (int)x).ToArray();
            Assert.Contains(tok.Decode(supervised), answers);
        }
    }
}
