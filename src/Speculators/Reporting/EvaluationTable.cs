using System.Globalization;
using Speculators.Inference;

namespace Speculators.Reporting;

/// <summary>Plain-text tables for terminals and logs (identical when piped: no colours, ASCII rules).</summary>
public static class TextTable
{
    /// <summary>Renders rows of (label, value) pairs under a title, values left-aligned in one column.</summary>
    public static string Render(string title, IReadOnlyList<(string Label, string Value)> rows)
    {
        int lw = Math.Max(rows.Count == 0 ? 0 : rows.Max(r => r.Label.Length), 6);
        int vw = Math.Max(rows.Count == 0 ? 0 : rows.Max(r => r.Value.Length), 5);
        string rule = "+" + new string('-', lw + 2) + "+" + new string('-', vw + 2) + "+";
        var sb = new System.Text.StringBuilder();
        sb.AppendLine(title);
        sb.AppendLine(rule);
        foreach (var (label, value) in rows)
            sb.AppendLine($"| {label.PadRight(lw)} | {value.PadRight(vw)} |");
        sb.AppendLine(rule);
        return sb.ToString();
    }
}

/// <summary>The terminal summary of an evaluation.</summary>
public static class EvaluationTable
{
    static string F(double v, string fmt = "F3") => double.IsFinite(v) ? v.ToString(fmt, CultureInfo.InvariantCulture) : "n/a";

    public static string Render(EvaluationResult r)
    {
        var s = r.Stats;
        var rows = new List<(string, string)>
        {
            ("acceptance length", F(s.MeanAcceptanceLength)),
            ("per-position acceptance", string.Join("  ", s.PerPositionAcceptance.Select((v, i) => $"{i + 1}: {F(v)}"))),
            ("draft acceptance rate", F(s.DraftAcceptanceRate)),
            ("drafts / draft tokens / accepted", $"{s.NumDrafts} / {s.NumDraftTokens} / {s.NumAcceptedTokens}"),
            ("tokens/s speculative", F(r.TokensPerSecondSpeculative, "F1")),
            ("tokens/s baseline", F(r.TokensPerSecondBaseline, "F1")),
            ("speedup", F(r.Speedup, "F2") + "x"),
            ("theoretical speedup", F(r.TheoreticalSpeedup, "F2") + $"x  (τ / (1 + k·c_d/c_v), k = {r.NumSpeculativeTokens}, c_d/c_v = {F(r.DraftCostRatio)})"),
            ("verify step / plain step", F(r.VerifyCostRatio, "F2") + "x"),
            ("lossless", r.Lossless == null ? "n/a (temperature > 0)"
                : (r.Lossless.Lossless ? "yes" : "NO") + $"  ({r.Lossless.Identical} of {r.Pairs.Count} identical, {r.Lossless.NearTieDivergences} near-tie divergence(s))"),
        };
        if (r.SkippedTurns > 0) rows.Add(("skipped turns (context full)", r.SkippedTurns.ToString(CultureInfo.InvariantCulture)));
        return TextTable.Render($"speculative decoding: {r.NumPrompts} prompt(s), {r.Pairs.Count} generation(s), k = {r.NumSpeculativeTokens}, temperature {F(r.Temperature, "G")}", rows);
    }
}
