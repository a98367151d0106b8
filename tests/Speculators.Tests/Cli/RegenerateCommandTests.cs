using System.Text.Json.Nodes;
using Speculators.Modeling;

namespace Speculators.Tests.Cli;

public class RegenerateCommandTests
{
    [Fact]
    public void RegeneratesResumesAndNamesBadFlags()
    {
        using var dir = new TempDir();
        string model = TinyModelFactory.Create(dir.File("model"), new TinyModelOptions { Seed = 11 });
        string data = dir.File("chats.jsonl");
        File.WriteAllLines(data,
        [
            """{"conversations": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "old"}]}""",
            """{"prompt": "tell me"}""",
            """{"turns": ["one", "two"]}""",
        ]);
        string output = dir.File("out", "regenerated.jsonl");
        var r = CliRunner.Ok("regenerate", "--model", model, "--data", data, "--output", output, "--max-new-tokens", "3", "--batch-size", "2", "--max-samples", "2");
        Assert.Contains("rows: 2 (2 generated now, 0 kept", r.Stdout);
        var rows = File.ReadAllLines(output).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal("hi", rows[0]["conversations"]![0]!["content"]!.GetValue<string>());
        Assert.Equal("assistant", rows[0]["conversations"]![1]!["role"]!.GetValue<string>());
        Assert.Null(rows[0]["input_ids"]);

        r = CliRunner.Ok("regenerate", "--model", model, "--data", data, "--output", output, "--max-new-tokens", "3");
        Assert.Contains("rows: 3 (1 generated now, 2 kept", r.Stdout);
        var third = JsonNode.Parse(File.ReadAllLines(output)[2])!;
        Assert.Equal("one", third["conversations"]![0]!["content"]!.GetValue<string>()); // MT-bench rows: the first turn

        r = CliRunner.Run("regenerate", "--model", model, "--data", data, "--output", output, "--max-new-tokens", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--max-new-tokens", r.Stderr);
        r = CliRunner.Run("regenerate", "--model", model, "--data", dir.File("missing.jsonl"), "--output", output);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("missing.jsonl", r.Stderr);
    }
}
