using System.Text.Json.Nodes;
using Speculators.Modeling;
using Speculators.Data;
using Speculators.Quickstart;
using Speculators.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Data;

public class RegenerationTests
{
    static string Model(TempDir dir) => TinyModelFactory.Create(dir.File("model"), new TinyModelOptions { Seed = 3, InitStd = 0.5 });

    static string Data(TempDir dir, params string[] lines)
    {
        string path = dir.File("data.jsonl");
        File.WriteAllText(path, string.Join("\n", lines) + "\n");
        return path;
    }

    static readonly string[] MixedRows =
    [
        """{"id": "a", "conversations": [{"from": "human", "value": "hello there"}, {"from": "gpt", "value": "old answer"}]}""",
        """{"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "kept"}, {"role": "user", "content": "second"}, {"role": "assistant", "content": "replaced"}]}""",
        """{"prompt": "just a prompt"}""",
        """{"id": 7, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ends on the user"}]}""",
        """{"conversations": [{"role": "user", "content": "another one"}, {"role": "assistant", "content": "x"}]}""",
    ];

    /// <summary>Greedy decoding by the definition: a full forward over the whole sequence per token, argmax of the last position.</summary>
    static List<long> ReferenceGreedy(CausalLM model, long[] prompt, int maxNew, IReadOnlySet<long> eos)
    {
        var seq = prompt.ToList();
        var output = new List<long>();
        for (int i = 0; i < maxNew; i++)
        {
            using var scope = NewDisposeScope();
            var ids = torch.tensor(seq.ToArray(), [1, seq.Count], ScalarType.Int64);
            var logits = model.Forward(ids).Logits!;
            long next = logits[0, seq.Count - 1].argmax().item<long>();
            output.Add(next);
            seq.Add(next);
            if (eos.Contains(next)) break;
        }
        return output;
    }

    static List<JsonObject> Rows(string path) =>
        File.ReadAllLines(path).Where(l => l.Length > 0).Select(l => JsonNode.Parse(l)!.AsObject()).ToList();

    [Fact]
    public void GreedyAnswersEqualAFullForwardReferenceAndKeepEarlierTurns()
    {
        using var dir = new TempDir();
        string model = Model(dir);
        string data = Data(dir, MixedRows);
        var summary = Regeneration.Run(new RegenerationOptions
        {
            Model = model, Data = data, Output = dir.File("out.jsonl"), MaxNewTokens = 5, BatchSize = 2, Tokenized = true,
        });
        Assert.Equal(5, summary.Rows);
        Assert.Equal(5, summary.Generated);
        Assert.Empty(summary.Skipped);

        var rows = Rows(dir.File("out.jsonl"));
        Assert.Equal(5, rows.Count);
        var tok = HfTokenizer.Load(model);
        var template = ChatTemplate.FromModelDirectory(model);
        var eos = new HashSet<long> { tok.EosTokenId!.Value };
        using var reference = CausalLM.LoadFromDirectory(model, ScalarType.Float32, torch.CPU);
        // The prompts the rows must have been answered from (by the chat template, independently of the prompt readers).
        JsonArray[] expectedPrompts =
        [
            [new JsonObject { ["role"] = "user", ["content"] = "hello there" }],
            [
                new JsonObject { ["role"] = "user", ["content"] = "first" }, new JsonObject { ["role"] = "assistant", ["content"] = "kept" },
                new JsonObject { ["role"] = "user", ["content"] = "second" },
            ],
            [new JsonObject { ["role"] = "user", ["content"] = "just a prompt" }],
            [new JsonObject { ["role"] = "system", ["content"] = "be brief" }, new JsonObject { ["role"] = "user", ["content"] = "ends on the user" }],
            [new JsonObject { ["role"] = "user", ["content"] = "another one" }],
        ];
        string[] ids = ["a", "row-1", "row-2", "7", "row-4"];
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            Assert.Equal(ids[i], row["id"]!.GetValue<string>());
            string text = template.Render(expectedPrompts[i], addGenerationPrompt: true).Text;
            long[] prompt = tok.EncodeToIds(text, addSpecialTokens: false).Select(x => (long)x).ToArray();
            var answer = ReferenceGreedy(reference, prompt, 5, eos);
            var inputIds = row["input_ids"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            Assert.Equal(prompt.Concat(answer).ToArray(), inputIds);
            var mask = row["loss_mask"]!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
            Assert.Equal(Enumerable.Repeat(0L, prompt.Length).Concat(Enumerable.Repeat(1L, answer.Count)).ToArray(), mask);

            var conv = row["conversations"]!.AsArray();
            Assert.Equal(expectedPrompts[i].Count + 1, conv.Count);
            for (int t = 0; t < expectedPrompts[i].Count; t++)
                Assert.True(JsonNode.DeepEquals(expectedPrompts[i][t], conv[t]), $"row {i} turn {t}: {conv[t]!.ToJsonString()}");
            Assert.Equal("assistant", conv[^1]!["role"]!.GetValue<string>());
            string expectedText = tok.Decode(answer.Where(t => !eos.Contains(t)).Select(t => (int)t).ToArray(), skipSpecialTokens: true);
            Assert.Equal(expectedText, conv[^1]!["content"]!.GetValue<string>());

            var meta = row["metadata"]!.AsObject();
            Assert.Equal(i, meta["index"]!.GetValue<long>());
            Assert.Equal(prompt.Length, meta["prompt_tokens"]!.GetValue<int>());
            Assert.Equal(answer.Count, meta["completion_tokens"]!.GetValue<int>());
            Assert.Equal(eos.Contains(answer[^1]) ? "stop" : "length", meta["finish_reason"]!.GetValue<string>());
        }
    }

    [Fact]
    public void ResumingAfterATornLineGivesTheSameFileAsOneRun()
    {
        using var dir = new TempDir();
        string model = Model(dir);
        string data = Data(dir, MixedRows);
        var o = new RegenerationOptions { Model = model, Data = data, Output = dir.File("straight.jsonl"), MaxNewTokens = 4, BatchSize = 2 };
        Regeneration.Run(o);

        string resumed = dir.File("resumed.jsonl");
        Regeneration.Run(o with { Output = resumed, MaxSamples = 2 });
        Assert.Equal(2, Rows(resumed).Count);
        File.AppendAllText(resumed, "{\"id\": \"torn\", \"conversa"); // a run killed while writing
        var summary = Regeneration.Run(o with { Output = resumed });
        Assert.Equal(2, summary.Resumed);
        Assert.Equal(3, summary.Generated);
        Assert.Equal(File.ReadAllText(dir.File("straight.jsonl")), File.ReadAllText(resumed));

        // Nothing left to do: the file is unchanged.
        var again = Regeneration.Run(o with { Output = resumed });
        Assert.Equal(0, again.Generated);
        Assert.Equal(File.ReadAllText(dir.File("straight.jsonl")), File.ReadAllText(resumed));
    }

    [Fact]
    public void BadRowsAreCountedAndForeignOutputIsRefused()
    {
        using var dir = new TempDir();
        string model = Model(dir);
        string data = Data(dir, MixedRows[0], "{not json", """{"conversations": []}""", """{"unrelated": 1}""", MixedRows[2]);
        var summary = Regeneration.Run(new RegenerationOptions { Model = model, Data = data, Output = dir.File("out.jsonl"), MaxNewTokens = 2 });
        Assert.Equal(2, summary.Rows);
        Assert.Equal(3, summary.Skipped["BadRow"]);
        Assert.Equal(["a", "row-1"], Rows(dir.File("out.jsonl")).Select(r => r["id"]!.GetValue<string>()));

        string foreign = dir.File("foreign.jsonl");
        File.WriteAllText(foreign, "{\"id\": \"x\"}\n");
        var e = Assert.Throws<SpeculatorsException>(() =>
            Regeneration.Run(new RegenerationOptions { Model = model, Data = data, Output = foreign, MaxNewTokens = 2 }));
        Assert.Contains(foreign, e.Message);
        Assert.Contains("--overwrite", e.Message);
        var ok = Regeneration.Run(new RegenerationOptions { Model = model, Data = data, Output = foreign, MaxNewTokens = 2, Overwrite = true });
        Assert.Equal(2, ok.Rows);
    }
}
