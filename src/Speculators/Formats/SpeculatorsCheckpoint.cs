using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Speculators.Formats;

/// <summary>
/// One speculator algorithm's handling of the speculators checkpoint format (Eagle-3 now; DFlash plugs in
/// the same way): its config class, the vLLM loader rules for its checkpoints, and a summary for
/// <c>speculators inspect</c>. Implementations have a public parameterless constructor and are found by
/// reflection, so adding an algorithm touches no dispatch code.
/// </summary>
public interface ISpeculatorAlgorithm
{
    /// <summary>The <c>speculators_model_type</c> value (e.g. <c>eagle3</c>).</summary>
    string ModelType { get; }

    /// <summary>An empty config of this algorithm's class, to be filled by the reader.</summary>
    SpeculatorModelConfig CreateConfig();

    /// <summary>Checks a checkpoint directory against vLLM's loader rules and, when given, the verifier's fit.</summary>
    ValidationReport Validate(string checkpointDirectory, string? verifierDirectory);

    /// <summary>A summary of a checkpoint directory (config and safetensors headers only).</summary>
    SpeculatorSummary Summarize(string checkpointDirectory);
}

/// <summary>The registered <see cref="ISpeculatorAlgorithm"/>s.</summary>
public static class SpeculatorAlgorithms
{
    static readonly Lazy<IReadOnlyDictionary<string, ISpeculatorAlgorithm>> Registry = new(() =>
        typeof(ISpeculatorAlgorithm).Assembly.GetTypes()
            .Where(t => typeof(ISpeculatorAlgorithm).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false } && t.GetConstructor(Type.EmptyTypes) != null)
            .Select(t => (ISpeculatorAlgorithm)Activator.CreateInstance(t)!)
            .ToDictionary(a => a.ModelType, a => a, StringComparer.Ordinal));

    public static IEnumerable<string> ModelTypes => Registry.Value.Keys.Order(StringComparer.Ordinal);

    public static ISpeculatorAlgorithm? Find(string modelType) => Registry.Value.GetValueOrDefault(modelType);
}

/// <summary>A setting that the reference vLLM version (9aaf83ef5) does not serve; a later vLLM does.</summary>
/// <param name="Setting">the config key and value, or the tensor, that needs it</param>
/// <param name="Requirement">what vLLM must have (module or PR)</param>
public sealed record VllmRequirement(string Setting, string Requirement)
{
    public override string ToString() => $"{Setting}: {Requirement}";
}

/// <summary>
/// Result of checking a speculator checkpoint: every problem that makes vLLM reject it or run it wrongly
/// (<see cref="Problems"/>; empty means valid), the settings that need a vLLM newer than the reference
/// version (<see cref="NewerVllm"/>, informational), and other notes.
/// </summary>
public sealed class ValidationReport
{
    public ValidationReport(string checkpoint, string? verifier)
    {
        Checkpoint = checkpoint;
        Verifier = verifier;
    }

    public string Checkpoint { get; }
    public string? Verifier { get; }
    public List<CheckpointProblem> Problems { get; } = [];
    public List<VllmRequirement> NewerVllm { get; } = [];
    public List<string> Notes { get; } = [];
    public bool IsValid => Problems.Count == 0;

    public void Add(string file, string key, string message) => Problems.Add(new CheckpointProblem(file, key, message));

    /// <summary>Throws a <see cref="SpeculatorsException"/> listing the problems, if any.</summary>
    public void ThrowIfInvalid()
    {
        if (IsValid) return;
        throw new SpeculatorsException(
            $"{Checkpoint}: the checkpoint breaks vLLM's loader rules ({Problems.Count} problem{(Problems.Count > 1 ? "s" : "")}):\n  " +
            string.Join("\n  ", Problems));
    }

    /// <summary>Human-readable report: problems, settings needing a newer vLLM, notes, verdict.</summary>
    public string ToText()
    {
        var s = new StringBuilder();
        s.Append("checkpoint: ").Append(Checkpoint).Append('\n');
        if (Verifier != null) s.Append("verifier:   ").Append(Verifier).Append('\n');
        foreach (var p in Problems) s.Append("problem: ").Append(p).Append('\n');
        foreach (var r in NewerVllm) s.Append("needs a newer vLLM: ").Append(r).Append('\n');
        foreach (var n in Notes) s.Append("note: ").Append(n).Append('\n');
        s.Append(IsValid
            ? "OK: vLLM's loader rules are met" + (Verifier != null ? " and the checkpoint fits the verifier" : " (pass --verifier to also check the fit)")
            : $"INVALID: {Problems.Count} problem{(Problems.Count > 1 ? "s" : "")}").Append('\n');
        return s.ToString();
    }

    /// <summary>Machine-readable report.</summary>
    public JsonObject ToJson() => new()
    {
        ["checkpoint"] = Checkpoint,
        ["verifier"] = Verifier,
        ["valid"] = IsValid,
        ["problems"] = new JsonArray(Problems.Select(p => (JsonNode)new JsonObject { ["file"] = p.File, ["key"] = p.Key, ["message"] = p.Message }).ToArray()),
        ["needs_newer_vllm"] = new JsonArray(NewerVllm.Select(r => (JsonNode)new JsonObject { ["setting"] = r.Setting, ["requirement"] = r.Requirement }).ToArray()),
        ["notes"] = new JsonArray(Notes.Select(n => (JsonNode)JsonValue.Create(n)).ToArray()),
    };
}

/// <summary>What <c>speculators inspect</c> prints for a speculator checkpoint.</summary>
/// <param name="Lines">ordered (label, value) rows</param>
/// <param name="Json">the same facts with stable snake_case keys</param>
public sealed record SpeculatorSummary(IReadOnlyList<(string Label, string Value)> Lines, JsonObject Json)
{
    public string ToText()
    {
        int w = Lines.Count == 0 ? 0 : Lines.Max(l => l.Label.Length);
        return string.Concat(Lines.Select(l => l.Label.PadRight(w) + "  " + l.Value + "\n"));
    }
}

/// <summary>
/// Entry points for speculator checkpoint directories of any algorithm: detect, validate, summarize.
/// The algorithm comes from <c>speculators_model_type</c> in config.json.
/// </summary>
public static class SpeculatorsCheckpoint
{
    /// <summary>
    /// The <c>speculators_model_type</c> of the config.json in <paramref name="directory"/>, or null when the
    /// directory has no config.json or it is not a speculators config (a plain HF model).
    /// </summary>
    public static string? DetectModelType(string directory)
    {
        string path = Path.Combine(directory, SpeculatorModelConfig.FileName);
        if (!File.Exists(path)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) is JsonObject o && o["speculators_model_type"] is JsonValue v
                   && v.TryGetValue<string>(out var s) ? s : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>True when <paramref name="directory"/>'s config.json has a <c>speculators_model_type</c>.</summary>
    public static bool IsSpeculatorCheckpoint(string directory) => DetectModelType(directory) != null;

    /// <summary>
    /// Checks a checkpoint against vLLM's loader rules (and the verifier's fit when
    /// <paramref name="verifierDirectory"/> is given). Never throws for content problems: they are in the report.
    /// </summary>
    public static ValidationReport Validate(string directory, string? verifierDirectory = null)
    {
        var full = Path.GetFullPath(directory);
        if (!Directory.Exists(full))
        {
            var missing = new ValidationReport(full, verifierDirectory);
            missing.Add(directory, "", "not a directory");
            return missing;
        }
        string configPath = Path.Combine(full, SpeculatorModelConfig.FileName);
        if (!File.Exists(configPath))
        {
            var r = new ValidationReport(full, verifierDirectory);
            r.Add(SpeculatorModelConfig.FileName, "", "missing: a speculator checkpoint needs config.json next to model.safetensors");
            return r;
        }
        string? type = DetectModelType(full);
        var algo = type == null ? null : SpeculatorAlgorithms.Find(type);
        if (algo == null)
        {
            var r = new ValidationReport(full, verifierDirectory);
            var issues = new ConfigIssues(SpeculatorModelConfig.FileName);
            SpeculatorModelConfig.TryParse(File.ReadAllText(configPath), configPath, issues);
            r.Problems.AddRange(issues.Problems);
            if (r.Problems.Count == 0) r.Add(SpeculatorModelConfig.FileName, "speculators_model_type", $"'{type}' is not supported");
            return r;
        }
        return algo.Validate(full, verifierDirectory);
    }

    /// <summary>The summary of a speculator checkpoint (algorithm, verifier, k, vocabulary, flags, parameter counts).</summary>
    public static SpeculatorSummary Summarize(string directory)
    {
        string? type = DetectModelType(directory)
            ?? throw new SpeculatorsException($"{directory}: not a speculator checkpoint (config.json has no speculators_model_type).");
        var algo = SpeculatorAlgorithms.Find(type)
            ?? throw new SpeculatorsException($"{directory}: speculators_model_type '{type}' is not supported (supported: {string.Join(", ", SpeculatorAlgorithms.ModelTypes)}).");
        return algo.Summarize(directory);
    }
}
