using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Text;

namespace Speculators.Tests.Cli;

/// <summary>
/// <c>speculators prepare-data</c> and <c>show-masks</c> end to end on small files, with a tiny byte-level BPE tokenizer
/// trained in the test (fast to load) and a ChatML template with <c>{% generation %}</c> blocks.
/// </summary>
public class PrepareDataCommandTests
{
    internal const string ChatMl =
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|im_end|>{% endgeneration %}" +
        "{% else %}{{ m.content }}<|im_end|>{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    /// <summary>A model directory with a tokenizer trained on a few sentences and the ChatML template above.</summary>
    internal static string TinyModel(TempDir dir)
    {
        string model = dir.File("tiny-model");
        Directory.CreateDirectory(model);
        string[] corpus = ["user asks a question about cats and dogs", "the assistant answers with care", "hello world, how are you today?", "<script>alert(1)</script> & more"];
        ByteLevelBpeTrainer.Train(Enumerable.Repeat(corpus, 20).SelectMany(x => x), 400, ["<|im_start|>", "<|im_end|>", "<|endoftext|>"], Path.Combine(model, "tokenizer.json"));
        File.WriteAllText(Path.Combine(model, "tokenizer_config.json"),
            new JsonObject { ["eos_token"] = "<|im_end|>", ["pad_token"] = "<|endoftext|>", ["chat_template"] = ChatMl }.ToJsonString());
        return model;
    }

    internal static void WriteConversations(string path) => File.WriteAllLines(path,
    [
        """{"messages":[{"role":"user","content":"hello world"},{"role":"assistant","content":"the assistant answers"}]}""",
        """{"conversations":[{"from":"human","value":"about cats?"},{"from":"gpt","value":"<script>alert(1)</script> & dogs"}]}""",
        """{"messages":[{"role":"user","content":"how are you"},{"role":"assistant","content":"with care"},{"role":"user","content":"today?"},{"role":"assistant","content":"hello"}]}""",
        "not json",
    ]);

    [Fact]
    public void PreparesDataAndShowsMasks()
    {
        using var dir = new TempDir();
        string model = TinyModel(dir);
        WriteConversations(dir.File("in.jsonl"));
        var r = CliRunner.Ok("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--data", dir.File("in.jsonl"),
            "--output", dir.File("out"), "--seq-length", "64", "--workers", "2");
        Assert.Contains("rows: 6", r.Stdout);
        Assert.Contains("mask strategy: generation", r.Stdout);
        Assert.Contains("MalformedJson: 2", r.Stdout);
        using (var ds = PreparedDataset.Open(dir.File("out")))
            Assert.Equal(6, ds.Count);
        Assert.True(File.Exists(dir.File("out", "token_freq.pt")));
        Assert.True(File.Exists(dir.File("out", "token_freq.json")));

        // Rerunning needs --overwrite.
        var again = CliRunner.Run("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("out"));
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("--overwrite", again.Stderr);

        var tok = HfTokenizer.Load(model);
        using var data = PreparedDataset.Open(dir.File("out"));
        long index = Enumerable.Range(0, 6).First(i => tok.Decode(data.GetRow(i).InputIds.Select(x => (int)x).ToList()).Contains("<script>"));
        var row = data.GetRow(index);

        // --tokens: one line per token, the mask column equal to the dataset's.
        var t = CliRunner.Ok("show-masks", "--data-path", dir.File("out"), "--model", model, "--index", index.ToString(), "--tokens");
        var lines = t.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains($"{row.Length} tokens", lines[0]);
        Assert.Equal(row.LossMask, lines.Skip(2).Select(l => long.Parse(l.Split('\t')[2])));
        Assert.Equal(row.InputIds, lines.Skip(2).Select(l => long.Parse(l.Split('\t')[1])));

        // Plain: the supervised run in ⟦ ⟧.
        var p = CliRunner.Ok("show-masks", "--data-path", dir.File("out"), "--model", model, "--index", index.ToString(), "--color", "never");
        Assert.Contains("<|im_start|>assistant\n⟦<script>alert(1)</script> & dogs<|im_end|>⟧\n", p.Stdout);
        Assert.Contains($"{row.LossMask.Sum()} supervised", p.Stdout);

        // Colours: ANSI escapes, and the text is still there.
        var c = CliRunner.Ok("show-masks", "--data-path", dir.File("out"), "--model", model, "--index", index.ToString(), "--color", "always");
        Assert.Contains("\u001b[", c.Stdout);
        string stripped = System.Text.RegularExpressions.Regex.Replace(c.Stdout, "\u001b\\[[0-9;]*m", "").Replace("↵", "");
        Assert.Equal(p.Stdout.Replace("⟦", "").Replace("⟧", ""), stripped);

        // HTML: escaped, one box per token piece.
        CliRunner.Ok("show-masks", "--data-path", dir.File("out"), "--model", model, "--index", index.ToString(), "--html", dir.File("row.html"));
        string html = File.ReadAllText(dir.File("row.html"));
        Assert.DoesNotContain("<script>", html);
        Assert.Contains("&lt;", html);
        Assert.Contains("class=\"t s", html);
        Assert.Contains("class=\"t u", html);
        Assert.Contains($"{row.LossMask.Sum()} supervised", html);

        var bad = CliRunner.Run("show-masks", "--data-path", dir.File("out"), "--model", model, "--index", "6");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--index 6", bad.Stderr);
    }

    [Fact]
    public void StrategyFlagsAndErrors()
    {
        using var dir = new TempDir();
        string model = TinyModel(dir);
        WriteConversations(dir.File("in.jsonl"));
        var b = CliRunner.Ok("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("b"), "--mask-strategy", "boundary");
        Assert.Contains("rows: 4", b.Stdout); // one row per assistant turn: 1 + 1 + 2
        var pat = CliRunner.Ok("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("p"),
            "--assistant-pattern", @"<\|im_start\|>assistant\n(.*?)<\|im_end\|>", "--kwargs", """{"enable_thinking": false}""");
        Assert.Contains("pattern (--assistant-pattern)", pat.Stdout);

        var strict = CliRunner.Run("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("s"), "--strict");
        Assert.Equal(1, strict.ExitCode);
        Assert.Contains("in.jsonl:4", strict.Stderr);

        var kw = CliRunner.Run("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("k"), "--kwargs", "[1]");
        Assert.Equal(1, kw.ExitCode);
        Assert.Contains("--kwargs", kw.Stderr);

        var strat = CliRunner.Run("prepare-data", "--model", model, "--data", dir.File("in.jsonl"), "--output", dir.File("x"), "--mask-strategy", "magic");
        Assert.NotEqual(0, strat.ExitCode);
    }
}
