using System.Text.Json.Nodes;
using Speculators.Inference;

namespace Speculators.Tests.Inference;

public class SpecDecodingStatsTests
{
    [Fact]
    public void ArithmeticOnHandRecordedSteps()
    {
        // k = 3; steps accepted 3, 0, 1, 2, 3 → accepted 9 of 15 drafted over 5 drafts.
        var s = new SpecDecodingStats(3);
        foreach (var a in new[] { 3, 0, 1, 2, 3 }) s.Observe(3, a);
        Assert.Equal(5, s.NumDrafts);
        Assert.Equal(15, s.NumDraftTokens);
        Assert.Equal(9, s.NumAcceptedTokens);
        Assert.Equal(new long[] { 4, 3, 2 }, s.AcceptedPerPosition);
        Assert.Equal(1 + 9.0 / 5, s.MeanAcceptanceLength, 12);
        Assert.Equal(9.0 / 15, s.DraftAcceptanceRate, 12);
        Assert.Equal(new[] { 0.8, 0.6, 0.4 }, s.PerPositionAcceptance);
        Assert.Equal(new[] { 0.8, 0.75, 2.0 / 3 }, s.ConditionalPerPositionAcceptance.Select(x => Math.Round(x, 12)).ToArray(),
            new RoundedComparer());
        // Identity: the mean acceptance length is 1 + the sum of the per-position rates.
        Assert.Equal(s.MeanAcceptanceLength, 1 + s.PerPositionAcceptance.Sum(), 12);
        // Steps without drafts are not counted (vLLM counts only requests with scheduled spec tokens).
        s.Observe(0, 0);
        Assert.Equal(5, s.NumDrafts);
        Assert.Throws<ArgumentOutOfRangeException>(() => s.Observe(2, 3));
    }

    sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double a, double b) => Math.Abs(a - b) < 1e-9;
        public int GetHashCode(double x) => 0;
    }

    [Fact]
    public void MergingAndEmptyStats()
    {
        var empty = new SpecDecodingStats(2);
        Assert.Equal(1.0, empty.MeanAcceptanceLength);
        Assert.Equal(0.0, empty.DraftAcceptanceRate);
        Assert.Equal(new[] { 0.0, 0.0 }, empty.PerPositionAcceptance);
        var a = new SpecDecodingStats(2);
        a.Observe(2, 2);
        var b = new SpecDecodingStats();
        b.Observe(4, 3); // a longer step grows the vector
        a.Add(b);
        Assert.Equal(2, a.NumDrafts);
        Assert.Equal(6, a.NumDraftTokens);
        Assert.Equal(5, a.NumAcceptedTokens);
        Assert.Equal(new long[] { 2, 2, 1, 0 }, a.AcceptedPerPosition);
        var json = a.ToJson();
        Assert.Equal(3.5, json["acceptance_length"]!.GetValue<double>());
        Assert.Equal(4, json["per_position_acceptance"]!.AsArray().Count);
    }

    /// <summary>The recorded steps of the reference traces: counters recomputed by hand from trace.json.</summary>
    [Theory]
    [InlineData("draft_classic")]
    [InlineData("draft_head_defaults")]
    public void ArithmeticOnTheReferenceTraces(string draft)
    {
        var trace = JsonNode.Parse(File.ReadAllText(TestPaths.Data("reference_eagle3", draft, "trace.json")))!;
        int k = trace["num_speculative_tokens"]!.GetValue<int>();
        var s = new SpecDecodingStats(k);
        long drafts = 0, accepted = 0, emitted = 0;
        var perPos = new long[k];
        foreach (var t in trace["traces"]!.AsArray())
        foreach (var step in t!["steps"]!.AsArray())
        {
            int a = step!["accepted"]!.GetValue<int>();
            int d = step["proposed"]!.AsArray().Count;
            s.Observe(d, a);
            drafts++;
            accepted += a;
            emitted += step["emitted"]!.AsArray().Count;
            for (int i = 0; i < a; i++) perPos[i]++;
        }
        Assert.Equal(drafts, s.NumDrafts);
        Assert.Equal(drafts * k, s.NumDraftTokens);
        Assert.Equal(accepted, s.NumAcceptedTokens);
        Assert.Equal(perPos, s.AcceptedPerPosition);
        // Each step emits accepted + 1 tokens.
        Assert.Equal(emitted, drafts + accepted);
        Assert.Equal(1 + (double)accepted / drafts, s.MeanAcceptanceLength, 12);
    }
}
