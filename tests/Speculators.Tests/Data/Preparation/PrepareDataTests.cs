using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Data.Preparation;
using Speculators.Tests.Text;
using Speculators.Text;
using Speculators.Util;

namespace Speculators.Tests.Data.Preparation;

/// <summary><see cref="PrepareData.Run"/> end to end on small files with the real Qwen3 tokenizer and chat template.</summary>
public class PrepareDataTests
{
    static readonly string Qwen = TestPaths.Data("tokenizers", "qwen3");

    /// <summary>Runs with the log captured (progress and warnings go there).</summary>
    static PrepareDataSummary Run(PrepareDataOptions o, out string log)
    {
        var w = new StringWriter();
        var old = Log.Writer;
        Log.Writer = w;
        try { return PrepareData.Run(o); }
        finally
        {
            Log.Writer = old;
            log = w.ToString();
        }
    }

    static SpeculatorsException Fails(PrepareDataOptions o)
    {
        var old = Log.Writer;
        Log.Writer = new StringWriter();
        try { return Assert.ThrowsAny<SpeculatorsException>(() => PrepareData.Run(o)); }
        finally { Log.Writer = old; }
    }

    static string Line(JsonArray messages, JsonArray? tools = null)
    {
        var o = new JsonObject { ["messages"] = messages };
        if (tools != null) o["tools"] = tools.ToJsonString();
        return o.ToJsonString();
    }

    static List<string> Conversations() =>
    [
        Line(LossMaskTestKit.UnicodeThinkConversation()),
        Line(LossMaskTestKit.ToolConversation(), LossMaskTestKit.Tools),
        Line(LossMaskTestKit.ThinkInContentConversation()),
        """{"conversations":[{"from":"human","value":"ShareGPT turn 🌍"},{"from":"gpt","value":"reply 1"},{"role":"user","content":"OpenAI turn"},{"role":"assistant","content":"reply 2"}]}""",
        Line(LossMaskTestKit.Msgs(("user", "short"), ("assistant", "ok"))),
        Line(LossMaskTestKit.Msgs(("user", "日本語で"), ("assistant", "はい、日本語です。"), ("user", "thanks"), ("assistant", "どういたしまして 🙇"))),
    ];

    static List<PreparedRow> ReadBack(string dir)
    {
        using var ds = PreparedDataset.Open(dir);
        return ds.Rows().ToList();
    }

    [Fact]
    public void RowsReadBackEqualTheMaskerRowsInNumpyShuffleOrder()
    {
        using var dir = new TempDir();
        var lines = Conversations();
        File.WriteAllLines(dir.File("in.jsonl"), lines);
        var s = Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("out"), Seed = 3 }, out string log);
        Assert.Contains("mask strategy: pattern", log);
        Assert.Equal(LossMaskStrategy.Pattern, s.Strategy);

        // Expected: each conversation through the masker, in the order of numpy's permutation (per input), then again.
        var masker = LossMasker.Create(LossMaskTestKit.ModelTemplate("qwen3"), LossMaskTestKit.Qwen3);
        var normalizer = new Normalizer();
        var perConversation = lines.Select((l, i) =>
        {
            var r = normalizer.Normalize(new RawRecord("in.jsonl", RecordOrigin.JsonLine, i, i + 1, JsonNode.Parse(l)!.AsObject(), null));
            return masker.Mask(r.Conversation!.Messages, r.Conversation.Tools, 8192).Rows.Where(x => x.Supervised > 0).ToList();
        }).ToList();
        var rows = new NumpyRandom(3).Permutation(lines.Count).SelectMany(i => perConversation[i]).ToList();
        var expected = new NumpyRandom(3).Permutation(rows.Count).Select(i => rows[i]).ToList();

        var actual = ReadBack(dir.File("out"));
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < actual.Count; i++)
        {
            Assert.Equal(expected[i].InputIds.Select(x => (long)x), actual[i].InputIds);
            Assert.Equal(expected[i].LossMask.Select(x => (long)x), actual[i].LossMask);
        }
        Assert.Equal(actual.Count, s.Rows);
        Assert.Equal(actual.Sum(r => (long)r.Length), s.Tokens);
        Assert.Equal(actual.Sum(r => r.LossMask.Sum()), s.SupervisedTokens);
        Assert.Equal(6, s.Conversations);

        // Token frequencies: the supervised tokens of exactly these rows, in the order Python's Counter would see them.
        var freq = TokenFrequencies.Load(s.TokenFreqPt);
        var recount = new TokenFrequencies();
        foreach (var r in actual) recount.AddRow(r.InputIds, r.LossMask);
        Assert.Equal(recount.Items(), freq.Items());
        Assert.Equal(recount.Items(), TokenFrequencies.Load(s.TokenFreqJson).Items());
    }

    [Fact]
    public void PretokenizedRowsFollowPythonsOrderAndCaps()
    {
        // Ten regenerated rows; --max-samples 2, seed 0. Python: input.shuffle(0) = [4 6 2 7 3 5 9 0 8 1] → first 6 (3 × 2)
        // → rows → concatenate → shuffle(0) over 6 = [3 2 5 4 0 1] → first 2 → records 7 and 2.
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("regen.jsonl"), Enumerable.Range(0, 10).Select(i => $$"""{"input_ids": [{{100 + i}}, {{200 + i}}, {{300 + i}}], "loss_mask": [0, 1, 1]}"""));
        var s = Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("regen.jsonl")], Output = dir.File("out"), MaxSamples = 2 }, out _);
        var rows = ReadBack(dir.File("out"));
        Assert.Equal([[107, 207, 307], [102, 202, 302]], rows.Select(r => r.InputIds).ToArray());
        Assert.Null(s.Strategy);
        Assert.Equal(10, s.Records);
        Assert.Equal(6, s.Processed);
        Assert.Equal(4, s.DroppedRows["OverMaxSamples"]);

        // Clipping: --seq-length 2 keeps [id, id] with mask [0, 1].
        Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("regen.jsonl")], Output = dir.File("clip"), SeqLength = 2, MaxSamples = 1 }, out _);
        Assert.Equal([[0L, 1L]], ReadBack(dir.File("clip")).Select(r => r.LossMask).ToArray());
    }

    [Fact]
    public void WorkerCountDoesNotChangeTheOutput()
    {
        using var dir = new TempDir();
        var lines = Conversations().Concat(Conversations()).ToList();
        File.WriteAllLines(dir.File("in.jsonl"), lines);
        foreach (var (name, workers) in new[] { ("one", 1), ("three", 3) })
            Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl"), DataFixtures.Path("conversations_mixed.parquet")], Output = dir.File(name), Workers = workers, MaskStrategy = LossMaskStrategy.Boundary, MaxSamples = 9 }, out _);
        Assert.Equal(File.ReadAllBytes(dir.File("one", "data-00000-of-00001.arrow")), File.ReadAllBytes(dir.File("three", "data-00000-of-00001.arrow")));
        Assert.Equal(File.ReadAllBytes(dir.File("one", "token_freq.pt")), File.ReadAllBytes(dir.File("three", "token_freq.pt")));
        Assert.Equal(9, ReadBack(dir.File("one")).Count);
    }

    [Fact]
    public void BadRowsAreSkippedAndCountedByReason()
    {
        using var dir = new TempDir();
        var lines = new List<string>
        {
            Line(LossMaskTestKit.Msgs(("user", "good"), ("assistant", "row"))),
            "{\"messages\": [", // malformed JSON
            """{"messages": []}""",
            """{"messages": [{"role": "user", "content": "nobody answers"}]}""",
            """{"messages": [{"role": "user", "content": 42}, {"role": "assistant", "content": "x"}]}""",
            Line(LossMaskTestKit.Msgs(("system", "rejected by the template"), ("user", "u"), ("assistant", "a"))),
            Line(LossMaskTestKit.Msgs(("user", "second good"), ("assistant", "row 2"))),
        };
        File.WriteAllLines(dir.File("bad.jsonl"), lines);
        File.WriteAllText(dir.File("t.jinja"),
            "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}");
        var s = Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("bad.jsonl")], Output = dir.File("out"), ChatTemplatePath = dir.File("t.jinja"), Workers = 2 }, out _);
        Assert.Equal(2, s.Rows);
        Assert.Equal(new Dictionary<string, long>
        {
            ["MalformedJson"] = 1, ["EmptyConversation"] = 1, ["NoAssistantTurn"] = 1, ["NonStringContent"] = 1, ["TemplateError"] = 1,
        }, s.Skipped.Where(kv => kv.Value > 0).ToDictionary());
        Assert.Contains("TemplateError: 1", s.Format());

        // --strict stops at the first bad row in file order (line 2), whatever the worker timing.
        var e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("bad.jsonl")], Output = dir.File("strict"), ChatTemplatePath = dir.File("t.jinja"), Workers = 3, Strict = true });
        Assert.Contains("bad.jsonl:2", e.Message);
        Assert.False(Directory.Exists(dir.File("strict")));
        e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("bad.jsonl")], Output = dir.File("strict"), ChatTemplatePath = dir.File("t.jinja"), Workers = 1, Strict = true });
        Assert.Contains("bad.jsonl:2", e.Message);
        // A template error is a bad row too.
        File.WriteAllLines(dir.File("tpl.jsonl"), [lines[0], lines[5], lines[6]]);
        e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("tpl.jsonl")], Output = dir.File("strict"), ChatTemplatePath = dir.File("t.jinja"), Strict = true });
        Assert.Contains("tpl.jsonl:2", e.Message);
        Assert.Contains("System role not supported", e.Message);
    }

    [Fact]
    public void UnreadableParquetNamesTheFile()
    {
        using var dir = new TempDir();
        byte[] pq = File.ReadAllBytes(DataFixtures.Path("conversations_mixed.parquet"));
        File.WriteAllBytes(dir.File("cut.parquet"), pq[..(pq.Length / 2)]);
        var e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("cut.parquet")], Output = dir.File("out") });
        Assert.Contains("cut.parquet", e.Message);
        Assert.False(Directory.Exists(dir.File("out")));
    }

    [Fact]
    public void ExistingOutputNeedsOverwriteAndOtherFilesAreKept()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("in.jsonl"), Conversations());
        var o = new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("out") };
        Run(o, out _);
        File.WriteAllText(dir.File("out", "notes.txt"), "mine");
        File.WriteAllBytes(dir.File("out", "d2t.npy"), [1, 2, 3]);
        var e = Fails(o);
        Assert.Contains("--overwrite", e.Message);
        var s = Run(o with { Overwrite = true, MaxSamples = 2 }, out string log);
        Assert.Equal(2, ReadBack(dir.File("out")).Count);
        Assert.Equal(2, TokenFrequencies.Load(s.TokenFreqPt).Items().Sum(kv => kv.Value) > 0 ? 2 : 0);
        Assert.Equal("mine", File.ReadAllText(dir.File("out", "notes.txt")));
        Assert.True(File.Exists(dir.File("out", "d2t.npy")));
        Assert.Contains("d2t.npy", log);
        // token_freq alone also counts as an existing output.
        Directory.CreateDirectory(dir.File("freq-only"));
        File.WriteAllText(dir.File("freq-only", "token_freq.json"), "{}");
        Assert.Contains("--overwrite", Fails(o with { Output = dir.File("freq-only") }).Message);
    }

    [Fact]
    public void AllZeroMasksAreNeverWritten()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("in.jsonl"), Conversations());
        // 8 tokens never reach past "<|im_start|>user\n…": every row loses its supervision.
        var e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("out"), SeqLength = 8 });
        Assert.Contains("Unsupervised: 6", e.Message);
        Assert.Contains("--seq-length", e.Message);
        Assert.False(Directory.Exists(dir.File("out")));
        e = Fails(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("out"), AssistantPattern = "NEVER(x)" });
        Assert.Contains("NoAssistantMatch: 6", e.Message);
    }

    [Fact]
    public void BoundaryFanOutAndMinimumValidTokens()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("in.jsonl"), Conversations());
        var all = Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("a"), MaskStrategy = LossMaskStrategy.Boundary }, out _);
        // Assistant turns with context: 2 + 2 + 3 + 2 + 1 + 2.
        Assert.Equal(12, all.Rows);
        var rows = ReadBack(dir.File("a"));
        Assert.All(rows, r => Assert.Equal(1L, r.LossMask[^1])); // everything after the boundary, end-of-turn included
        long min = rows.Select(r => r.LossMask.Sum()).Order().ElementAt(4);
        var some = Run(new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = [dir.File("in.jsonl")], Output = dir.File("b"), MaskStrategy = LossMaskStrategy.Boundary, MinimumValidTokens = (int)min }, out _);
        Assert.Equal(rows.Count(r => r.LossMask.Sum() >= min), some.Rows);
        Assert.Equal(rows.Count(r => r.LossMask.Sum() < min), some.DroppedRows["BelowMinimumValidTokens"]);
    }

    [Fact]
    public void ModelWithoutAChatTemplatePassesPretokenizedRowsAndChecksTheVocabulary()
    {
        using var dir = new TempDir();
        // Llama-2's tokenizer has no chat template; config.json gives vocab_size.
        string model = dir.File("model");
        Directory.CreateDirectory(model);
        foreach (var f in new[] { "tokenizer.json", "tokenizer_config.json" })
            File.CreateSymbolicLink(Path.Combine(model, f), TestPaths.Data("tokenizers", "llama2", f));
        File.WriteAllText(Path.Combine(model, "config.json"), """{"vocab_size": 32000}""");
        File.WriteAllLines(dir.File("mixed.jsonl"),
        [
            """{"input_ids": [1, 450, 4996], "loss_mask": [0, 1, 1]}""",
            """{"input_ids": [1, 32000], "loss_mask": [0, 1]}""",
            """{"input_ids": [1, 5], "loss_mask": [0, 2]}""",
        ]);
        var s = Run(new PrepareDataOptions { Model = model, Data = [dir.File("mixed.jsonl")], Output = dir.File("out") }, out _);
        Assert.Equal(1, s.Rows);
        Assert.Equal(2, s.Skipped["InvalidPretokenized"]);
        File.AppendAllLines(dir.File("mixed.jsonl"), [Line(LossMaskTestKit.Msgs(("user", "u"), ("assistant", "a")))]);
        var e = Fails(new PrepareDataOptions { Model = model, Data = [dir.File("mixed.jsonl")], Output = dir.File("out2") });
        Assert.Contains("chat template", e.Message);
    }

    [Fact]
    public void OptionsAreValidated()
    {
        var o = new PrepareDataOptions { Model = Qwen, Tokenizer = LossMaskTestKit.Qwen3, Data = ["x.jsonl"], Output = "out" };
        Assert.Contains("--seq-length", Fails(o with { SeqLength = 0 }).Message);
        Assert.Contains("--max-samples", Fails(o with { MaxSamples = 0 }).Message);
        Assert.Contains("--seed", Fails(o with { Seed = -1 }).Message);
        Assert.Contains("--template-name", Fails(o with { ChatTemplatePath = "t.jinja", TemplateName = "default" }).Message);
        Assert.Contains("--data", Fails(o with { Data = [] }).Message);
    }
}
