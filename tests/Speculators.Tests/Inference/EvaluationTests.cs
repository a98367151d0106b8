using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Speculators.Inference;
using Speculators.Reporting;

namespace Speculators.Tests.Inference;

public class EvaluationTests
{
    /// <summary>Renders chats as "role:content|" bytes (ids = UTF-8 bytes + 1) and decodes answers as the ids joined by commas.</summary>
    sealed class FakeRenderer : IPromptRenderer
    {
        public List<string> Rendered { get; } = new();
        public long[] RenderChat(JsonArray messages, JsonArray? tools)
        {
            var text = string.Concat(messages.Select(m => $"{m!["role"]}:{m["content"]}|")) + "assistant:";
            Rendered.Add(text);
            return System.Text.Encoding.UTF8.GetBytes(text).Select(b => (long)(b % 38) + 1).ToArray();
        }
        public string DecodeAnswer(IReadOnlyList<long> tokens) => string.Join(",", tokens);
    }

    static PromptSpec ParseLine(string json, int line = 1) =>
        PromptFile.Parse(new Speculators.Data.RawRecord("p.jsonl", Speculators.Data.RecordOrigin.JsonLine, line - 1, line, JsonNode.Parse(json)!.AsObject(), null),
            new Speculators.Data.Normalizer());

    [Fact]
    public void PromptFileFormats()
    {
        using var dir = new TempDir();
        string path = dir.File("prompts.jsonl");
        File.WriteAllLines(path,
        [
            """{"question_id": 81, "category": "writing", "turns": ["Write a poem.", "Now shorter."]}""",
            """{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}""",
            """{"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}, {"from": "human", "value": "3+3?"}]}""",
            """{"input_ids": [5, 9, 33]}""",
            """{"prompt": "Tell me a joke."}""",
        ]);
        var p = PromptFile.Load(path);
        Assert.Equal(5, p.Count);
        Assert.Equal(PromptKind.Turns, p[0].Kind);
        Assert.Equal(2, p[0].TurnCount(allTurns: true));
        Assert.Equal(1, p[0].TurnCount(allTurns: false));
        Assert.Equal(PromptKind.Messages, p[1].Kind);
        Assert.Equal(2, p[1].Messages!.Count); // trailing assistant answer dropped
        Assert.Equal("user", p[1].Messages![1]!["role"]!.GetValue<string>());
        Assert.Equal(3, p[2].Messages!.Count); // ShareGPT from/value normalized, ends on the user turn
        Assert.Equal("3+3?", p[2].Messages![2]!["content"]!.GetValue<string>());
        Assert.Equal(new long[] { 5, 9, 33 }, p[3].InputIds);
        Assert.False(p[3].NeedsChatTemplate);
        Assert.Equal(["Tell me a joke."], p[4].Turns!);
        Assert.EndsWith("prompts.jsonl:2", p[1].Location);
    }

    [Theory]
    [InlineData("""{"input_ids": [1, -2]}""", "\"input_ids\"[1] is -2")]
    [InlineData("""{"input_ids": []}""", "non-empty list")]
    [InlineData("""{"turns": ["a", 3]}""", "\"turns\"[1] is 3")]
    [InlineData("""{"text": "hello"}""", "found keys text")]
    [InlineData("""{"messages": [{"role": "assistant", "content": "x"}]}""", "only assistant turns")]
    public void BadPromptRowsNameTheLine(string json, string expected)
    {
        var e = Assert.Throws<SpeculatorsException>(() => ParseLine(json, 7));
        Assert.Contains("p.jsonl:7", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MultiTurnPromptsFeedBackTheModelsOwnAnswers()
    {
        var r = new FakeRenderer();
        var spec = ParseLine("""{"turns": ["first?", "second?", "third?"]}""");
        PromptBuilder.Build(spec, 2, [new long[] { 7, 8 }, new long[] { 9 }], r);
        Assert.Equal("user:first?|assistant:7,8|user:second?|assistant:9|user:third?|assistant:", r.Rendered[^1]);
        Assert.Throws<SpeculatorsException>(() => PromptBuilder.Build(spec, 0, [], null));
    }

    static GenerationResult Result(long[] tokens, float[] gaps, float[] tops) => new()
    {
        Index = 0, PromptLength = 1, Tokens = tokens, FinishReason = FinishReason.Length,
        TopLogitGaps = gaps, TopLogits = tops, Stats = new SpecDecodingStats(), DecodeSteps = 0, Seconds = 0,
    };

    [Fact]
    public void LosslessCheckCountsNearTiesAndRejectsRealDivergences()
    {
        var same = Result([1, 2, 3], [1, 1, 1], [5, 5, 5]);
        // Diverges at position 1 where the top-2 gap is 3e-4 of a logit of 10 → 3e-5·|logit|: a near-tie.
        var tieA = Result([1, 2, 3], [1, 0.0003f, 1], [5, 10, 5]);
        var tieB = Result([1, 4, 3], [1, 0.5f, 1], [5, 10, 5]);
        // Diverges where the gap is large in both runs: not lossless.
        var realA = Result([1, 2, 3], [1, 0.5f, 1], [5, 10, 5]);
        var realB = Result([1, 4, 3], [1, 0.4f, 1], [5, 10, 5]);
        var ok = LosslessCheck.Compare([(0, 0, same, same), (1, 0, tieA, tieB)]);
        Assert.True(ok.Lossless);
        Assert.Equal(1, ok.Identical);
        Assert.Equal(1, ok.NearTieDivergences);
        Assert.Equal(1, ok.Divergences[0].Position);
        var bad = LosslessCheck.Compare([(0, 0, same, same), (1, 0, realA, realB)]);
        Assert.False(bad.Lossless);
        Assert.Equal(0, bad.NearTieDivergences);
        Assert.Equal((2L, 4L), (bad.Divergences[0].BaselineToken, bad.Divergences[0].SpeculativeToken));
        // An output that stops early without a differing token is a divergence too.
        var shorter = Result([1, 2], [1, 1], [5, 5]);
        Assert.False(LosslessCheck.Compare([(0, 0, same, shorter)]).Lossless);
        Assert.True(LosslessCheck.IsNearTie(0, 0));
        Assert.False(LosslessCheck.IsNearTie(0.002f, 10));
    }

    [Fact]
    public void CeilingFormula()
    {
        // τ = 3, k = 3, draft forward = 1/10 of a verifier step: 3 / 1.3.
        Assert.Equal(3 / 1.3, SpeedupCeiling.Compute(3, 3, 0.1, 1.0), 12);
        Assert.Equal(4.0, SpeedupCeiling.Compute(4, 3, 0, 0.5), 12); // a free draft: the ceiling is τ
        Assert.Throws<ArgumentOutOfRangeException>(() => SpeedupCeiling.Compute(2, 3, 0.1, 0));
    }

    [Fact]
    public void EvaluationWithAnOracleDraftIsLosslessWithFullAcceptanceAndWritesTheReportAndPlot()
    {
        var v = new ToyVerifier(40);
        var renderer = new FakeRenderer();
        var prompts = new[]
        {
            ParseLine("""{"turns": ["Write a poem.", "Now shorter."]}"""),
            ParseLine("""{"input_ids": [5, 9, 33, 2]}"""),
            ParseLine("""{"messages": [{"role": "user", "content": "Hi"}]}"""),
        };
        const int k = 3;
        var settings = new EvaluationSettings { NumSpeculativeTokens = k, MaxNewTokens = 1 + 5 * (k + 1), IgnoreEos = true, AllTurns = true };
        // The oracle needs the verifier's greedy continuations of exactly the prompts evaluation will build.
        var built = new List<IReadOnlyList<long>>();
        var plain = new SpeculativeDecoder(v);
        var firstTurn = prompts.Select(p => (IReadOnlyList<long>)PromptBuilder.Build(p, 0, [], renderer)).ToArray();
        var run0 = plain.Generate(firstTurn, settings.Generation(1) with { MaxNewTokens = 60 });
        built.AddRange(OracleDraft.ReferencesFrom(firstTurn, run0));
        var second = PromptBuilder.Build(prompts[0], 1, [run0.Results[0].Tokens[..settings.MaxNewTokens]], renderer);
        var run1 = plain.Generate([second], settings.Generation(1) with { MaxNewTokens = 60 });
        built.AddRange(OracleDraft.ReferencesFrom([second], run1));
        using var oracle = new OracleDraft(built, v.VocabSize);

        var result = SpeculativeEvaluation.Run(v, oracle, prompts, renderer, settings);
        Assert.Equal(4, result.Pairs.Count); // 2 turns + 1 + 1
        Assert.Equal(k + 1, result.Stats.MeanAcceptanceLength, 12);
        Assert.True(result.Lossless!.Lossless);
        Assert.Equal(4, result.Lossless.Identical);
        Assert.Equal(result.Pairs.Sum(p => p.Speculative.Tokens.Length), result.Speculative.GeneratedTokens);
        Assert.Equal(4 * settings.MaxNewTokens, result.Baseline.GeneratedTokens);
        Assert.True(result.TokensPerSecondBaseline > 0 && result.TokensPerSecondSpeculative > 0);

        using var dir = new TempDir();
        var json = EvaluationReport.ToJson(result, new EvaluationProvenance { Command = "speculators evaluate …", MaxNewTokens = settings.MaxNewTokens });
        EvaluationReport.Save(dir.File("report.json"), json);
        var back = JsonNode.Parse(File.ReadAllText(dir.File("report.json")))!.AsObject();
        foreach (var key in new[] { "acceptance_length", "per_position_acceptance", "draft_acceptance_rate", "num_drafts", "num_draft_tokens",
                     "num_accepted_tokens", "tokens_per_second_speculative", "tokens_per_second_baseline", "speedup", "lossless",
                     "near_tie_divergences", "command", "versions", "theoretical_speedup" })
            Assert.True(back.ContainsKey(key), key);
        Assert.Equal(4.0, back["acceptance_length"]!.GetValue<double>(), 12);
        Assert.True(back["lossless"]!.GetValue<bool>());
        Assert.Equal(result.Stats.NumDrafts, back["num_drafts"]!.GetValue<long>());

        var table = EvaluationTable.Render(result);
        Assert.Contains("acceptance length", table);
        Assert.Contains("4.000", table);

        string png = dir.File("sub", "acceptance.png");
        AcceptancePlot.Save(png, result.Stats.PerPositionAcceptance, "per-position acceptance", "τ = 4.00, k = 3", 640, 400);
        var bytes = File.ReadAllBytes(png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        Assert.Equal(640, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(16)));
        Assert.Equal(400, BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(20)));
        Assert.False(File.Exists(png + ".tmp.png"));
    }

    [Fact]
    public void TooLongPromptsAreReportedBeforeDecoding()
    {
        var v = new ToyVerifier(40, maxContext: 6);
        var prompts = new[] { ParseLine("""{"input_ids": [1, 2]}""", 1), ParseLine("""{"input_ids": [1, 2, 3, 4, 5, 6, 7]}""", 2) };
        using var draft = new RandomDraft(40);
        var e = Assert.Throws<SpeculatorsException>(() => SpeculativeEvaluation.Run(v, draft, prompts, null, new EvaluationSettings()));
        Assert.Contains("p.jsonl:2", e.Message);
        Assert.Contains("longer than the verifier's context of 6", e.Message);
        Assert.Empty(v.ExtendCalls);
    }
}
