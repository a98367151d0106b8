using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Util;

namespace Speculators.Inference;

/// <summary>Where an evaluation's inputs came from (recorded in the report).</summary>
public sealed record EvaluationProvenance
{
    /// <summary>The command line that produced the report.</summary>
    public string? Command { get; init; }
    public string? SpeculatorPath { get; init; }
    public string? VerifierPath { get; init; }
    public string? PromptsPath { get; init; }
    public string? Device { get; init; }
    public int MaxNewTokens { get; init; }
    public long Seed { get; init; }
    public int BatchSize { get; init; }
    public bool IgnoreEos { get; init; }
    public bool AllTurns { get; init; }
    /// <summary>More facts about the draft (algorithm, flags, aux layer ids...).</summary>
    public JsonObject? Speculator { get; init; }
}

/// <summary>
/// The JSON report of an evaluation. Top-level keys: <c>acceptance_length</c>, <c>per_position_acceptance</c>,
/// <c>draft_acceptance_rate</c>, <c>num_drafts</c>, <c>num_draft_tokens</c>, <c>num_accepted_tokens</c>,
/// <c>tokens_per_second_speculative</c>, <c>tokens_per_second_baseline</c>, <c>speedup</c>, <c>lossless</c> (null when
/// sampling), <c>near_tie_divergences</c>, then the ceiling (<c>theoretical_speedup</c>, <c>draft_cost_ratio</c>,
/// <c>verify_cost_ratio</c>), settings, timings, divergences, command, model paths and versions.
/// </summary>
public static class EvaluationReport
{
    public static JsonObject ToJson(EvaluationResult r, EvaluationProvenance p)
    {
        var stats = r.Stats.ToJson();
        var json = new JsonObject
        {
            ["acceptance_length"] = r.Stats.MeanAcceptanceLength,
            ["per_position_acceptance"] = stats["per_position_acceptance"]!.DeepClone(),
            ["draft_acceptance_rate"] = r.Stats.DraftAcceptanceRate,
            ["num_drafts"] = r.Stats.NumDrafts,
            ["num_draft_tokens"] = r.Stats.NumDraftTokens,
            ["num_accepted_tokens"] = r.Stats.NumAcceptedTokens,
            ["num_accepted_tokens_per_pos"] = stats["num_accepted_tokens_per_pos"]!.DeepClone(),
            ["tokens_per_second_speculative"] = r.TokensPerSecondSpeculative,
            ["tokens_per_second_baseline"] = r.TokensPerSecondBaseline,
            ["speedup"] = r.Speedup,
            ["lossless"] = r.Lossless?.Lossless,
            ["near_tie_divergences"] = r.Lossless?.NearTieDivergences ?? 0,
            ["theoretical_speedup"] = r.TheoreticalSpeedup,
            ["draft_cost_ratio"] = r.DraftCostRatio,
            ["verify_cost_ratio"] = r.VerifyCostRatio,
            ["num_speculative_tokens"] = r.NumSpeculativeTokens,
            ["temperature"] = r.Temperature,
            ["max_new_tokens"] = p.MaxNewTokens,
            ["seed"] = p.Seed,
            ["batch_size"] = p.BatchSize,
            ["ignore_eos"] = p.IgnoreEos,
            ["all_turns"] = p.AllTurns,
            ["num_prompts"] = r.NumPrompts,
            ["num_generations"] = r.Pairs.Count,
            ["skipped_turns"] = r.SkippedTurns,
            ["identical_outputs"] = r.Lossless?.Identical,
            ["lossless_check"] = r.Lossless == null
                ? "not applicable: temperature > 0 (sampling is checked statistically in the test suite)"
                : $"verifier outputs compared token by token; a first divergence counts as a near-tie when the verifier's top-2 logit gap ≤ {LosslessCheck.RelativeTieTolerance:G}·|top-1 logit|",
            ["divergences"] = new JsonArray((r.Lossless?.Divergences ?? []).Take(100).Select(d => (JsonNode)d.ToJson()).ToArray()),
            ["timings"] = new JsonObject
            {
                ["baseline"] = r.Baseline.ToJson(),
                ["speculative"] = r.Speculative.ToJson(),
                ["verifier_step_seconds"] = r.VerifierStepSeconds,
                ["draft_forward_seconds"] = r.DraftForwardSeconds,
            },
            ["command"] = p.Command,
            ["speculator_path"] = p.SpeculatorPath,
            ["verifier_path"] = p.VerifierPath,
            ["prompts_path"] = p.PromptsPath,
            ["device"] = p.Device,
            ["speculator"] = p.Speculator?.DeepClone(),
            ["versions"] = Versions(),
            ["created_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        return json;
    }

    /// <summary>Product, TorchSharp, libtorch and .NET versions.</summary>
    public static JsonObject Versions() => new()
    {
        ["speculators_dotnet"] = ProductInfo.Version,
        ["torchsharp"] = typeof(TorchSharp.torch).Assembly.GetName().Version?.ToString(),
        ["libtorch"] = TorchSharp.torch.__version__,
        ["dotnet"] = Environment.Version.ToString(),
    };

    /// <summary>Writes the report atomically (indented JSON).</summary>
    public static void Save(string path, JsonObject report) =>
        AtomicFile.WriteAllText(path, report.ToJsonString(new JsonSerializerOptions
        {
            WriteIndented = true,
            // Readable text (apostrophes, ≤, ·) instead of \uXXXX escapes; the file is not embedded in HTML.
            Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        }) + "\n");
}
