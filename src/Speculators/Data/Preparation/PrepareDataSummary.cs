using System.Globalization;
using System.Text;
using Speculators.Text;

namespace Speculators.Data.Preparation;

/// <summary>What one input of prepare-data contributed.</summary>
public sealed record PrepareDataInputSummary(string Spec, IReadOnlyList<string> Files, long Records, long Processed, long Rows);

/// <summary>The result of <see cref="PrepareData.Run"/>: what was written and what was skipped, and why.</summary>
public sealed record PrepareDataSummary
{
    public required string OutputDirectory { get; init; }
    public required IReadOnlyList<string> ShardFiles { get; init; }
    public required string TokenFreqPt { get; init; }
    public required string TokenFreqJson { get; init; }
    /// <summary>Rows written.</summary>
    public long Rows { get; init; }
    /// <summary>Tokens written (sum of seq_len).</summary>
    public long Tokens { get; init; }
    /// <summary>Tokens with loss_mask = 1.</summary>
    public long SupervisedTokens { get; init; }
    public double SupervisedFraction => Tokens == 0 ? 0 : (double)SupervisedTokens / Tokens;
    /// <summary>The mask strategy used (null when every row was pre-tokenized).</summary>
    public LossMaskStrategy? Strategy { get; init; }
    /// <summary>How the strategy was chosen, with the pattern when there is one.</summary>
    public string? StrategyDescription { get; init; }
    /// <summary>Records read from all inputs.</summary>
    public long Records { get; init; }
    /// <summary>Records processed (after each input's shuffle and 3× max-samples cut).</summary>
    public long Processed { get; init; }
    public long Conversations { get; init; }
    public long PretokenizedRows { get; init; }
    /// <summary>Records that gave no row, by reason (normalization reasons such as MalformedJson, NoAssistantTurn,
    /// NonStringContent, and masking reasons such as TemplateError, BoundaryUnstable, NoAssistantMatch, NoTrainableTurn).</summary>
    public required IReadOnlyDictionary<string, long> Skipped { get; init; }
    /// <summary>Built rows that were not written, by reason: Unsupervised (no supervised token within --seq-length),
    /// BelowMinimumValidTokens, OverMaxSamples.</summary>
    public required IReadOnlyDictionary<string, long> DroppedRows { get; init; }
    /// <summary>Written rows that were cut at --seq-length.</summary>
    public long ClippedRows { get; init; }
    /// <summary>Boundary strategy: assistant turns skipped because their prompt alone fills --seq-length.</summary>
    public long TurnsSkippedForLength { get; init; }
    public required IReadOnlyDictionary<string, long> UnknownRoles { get; init; }
    public long ToolsIgnored { get; init; }
    public required IReadOnlyList<PrepareDataInputSummary> Inputs { get; init; }
    public int Workers { get; init; }
    public TimeSpan Elapsed { get; init; }
    /// <summary>Time until every row was built (reading, rendering, tokenizing, masking); the rest is shuffling and writing.</summary>
    public TimeSpan BuildTime { get; init; }

    /// <summary>Human-readable summary (what the CLI prints).</summary>
    public string Format()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"prepared dataset: {OutputDirectory}");
        sb.AppendLine(string.Create(ci, $"  rows: {Rows}, tokens: {Tokens}, supervised tokens: {SupervisedTokens} ({100 * SupervisedFraction:F1}%)"));
        sb.AppendLine($"  mask strategy: {StrategyDescription ?? "none (all rows pre-tokenized)"}");
        sb.AppendLine($"  records: {Records} read, {Processed} processed; {Conversations} conversations, {PretokenizedRows} pre-tokenized rows");
        foreach (var i in Inputs)
            sb.AppendLine($"    {i.Spec}: {i.Records} records in {i.Files.Count} file(s), {i.Processed} processed, {i.Rows} rows built");
        sb.AppendLine("  skipped records: " + Counts(Skipped));
        sb.AppendLine("  dropped rows: " + Counts(DroppedRows));
        if (ClippedRows > 0) sb.AppendLine($"  rows clipped at --seq-length: {ClippedRows}");
        if (TurnsSkippedForLength > 0) sb.AppendLine($"  assistant turns skipped (prompt fills --seq-length): {TurnsSkippedForLength}");
        if (UnknownRoles.Count > 0)
            sb.AppendLine("  unknown roles mapped to assistant: " + string.Join(", ", UnknownRoles.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"'{k.Key}' ×{k.Value}")));
        if (ToolsIgnored > 0) sb.AppendLine($"  unusable tools ignored in {ToolsIgnored} rows");
        sb.AppendLine($"  files: {string.Join(", ", ShardFiles)}, {Path.GetFileName(TokenFreqPt)}, {Path.GetFileName(TokenFreqJson)}");
        double secs = Math.Max(Elapsed.TotalSeconds, 1e-9);
        sb.Append(string.Create(ci, $"  time: {Elapsed.TotalSeconds:F1} s ({BuildTime.TotalSeconds:F1} s building rows) with {Workers} worker(s), {Processed / secs:F1} records/s"));
        return sb.ToString();
    }

    static string Counts(IReadOnlyDictionary<string, long> d)
    {
        var nonzero = d.Where(kv => kv.Value > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        return nonzero.Count == 0 ? "none" : $"{nonzero.Sum(kv => kv.Value)} (" + string.Join(", ", nonzero.Select(kv => $"{kv.Key}: {kv.Value}")) + ")";
    }
}
