namespace Speculators.Quickstart;

/// <summary>
/// Sizes of one quickstart run. <see cref="Default"/> is what <c>speculators quickstart</c> runs (calibrated to fit
/// ten minutes on two CPU cores, docs/quickstart.md); <see cref="Tiny"/> is the shortened end-to-end test — a smaller
/// model and corpus through exactly the same code path.
/// </summary>
public sealed record QuickstartProfile
{
    public required string Name { get; init; }

    // corpus and tokenizer
    /// <summary>Training conversations generated for the target.</summary>
    public int TrainExamples { get; init; }
    /// <summary>Held-out prompts (target accuracy and the draft's evaluation).</summary>
    public int HeldOutExamples { get; init; }
    /// <summary>Tokenizer vocabulary including the special tokens.</summary>
    public int VocabSize { get; init; }

    // target model (Llama architecture)
    public int TargetLayers { get; init; }
    public int TargetHidden { get; init; }
    public int TargetIntermediate { get; init; }
    public int TargetHeads { get; init; }
    public int TargetKvHeads { get; init; }
    public int TargetContext { get; init; } = 512;
    public int TargetEpochs { get; init; }
    public double TargetLr { get; init; }
    /// <summary>Tokens per packed training row of the target.</summary>
    public int TargetSeqLen { get; init; }
    /// <summary><c>loss_mask</c> (assistant tokens) or <c>all</c>.</summary>
    public string TargetLossOn { get; init; } = "all";
    /// <summary>The trainer's <c>--optimizer</c> for the target: <c>adamw</c> or <c>muon</c>.</summary>
    public string TargetOptimizer { get; init; } = "adamw";
    /// <summary>The trainer's <c>--muon-lr</c> (null: its default).</summary>
    public double? TargetMuonLr { get; init; }

    // regeneration and the draft
    /// <summary>Training prompts whose answers the target regenerates for the draft.</summary>
    public int RegenerateExamples { get; init; }
    public int MaxNewTokens { get; init; }
    public int GenerationBatchSize { get; init; } = 32;
    public int DraftEpochs { get; init; }
    public double DraftLr { get; init; }
    public int DraftSeqLen { get; init; }
    public int NumSpeculativeTokens { get; init; } = 3;
    /// <summary>Draft vocabulary (the most frequent supervised target tokens); null or ≥ V = the whole vocabulary.</summary>
    public int? DraftVocabSize { get; init; }

    // evaluation
    /// <summary>Held-out prompts decoded plain and speculatively.</summary>
    public int EvaluatePrompts { get; init; }

    /// <summary>What <c>speculators quickstart</c> runs.</summary>
    public static QuickstartProfile Default { get; } = new()
    {
        Name = "default",
        TrainExamples = 24000,
        HeldOutExamples = 96,
        VocabSize = 768,
        TargetLayers = 6,
        TargetHidden = 192,
        TargetIntermediate = 512,
        TargetHeads = 4,
        TargetKvHeads = 2,
        TargetEpochs = 1,
        TargetLr = 1e-3,
        TargetSeqLen = 2048,
        TargetLossOn = "loss_mask",
        RegenerateExamples = 2000,
        MaxNewTokens = 96,
        DraftEpochs = 3,
        DraftLr = 3e-3,
        DraftSeqLen = 2048,
        DraftVocabSize = null,
        EvaluatePrompts = 48,
    };

    /// <summary>The shortened end-to-end test: same stages, a model and corpus small enough for seconds.</summary>
    public static QuickstartProfile Tiny { get; } = new()
    {
        Name = "tiny",
        TrainExamples = 600,
        HeldOutExamples = 12,
        VocabSize = 320,
        TargetLayers = 4,
        TargetHidden = 48,
        TargetIntermediate = 96,
        TargetHeads = 4,
        TargetKvHeads = 2,
        TargetContext = 256,
        TargetEpochs = 3,
        TargetLr = 3e-3,
        TargetSeqLen = 1024,
        RegenerateExamples = 64,
        MaxNewTokens = 24,
        GenerationBatchSize = 16,
        DraftEpochs = 6,
        DraftLr = 3e-3,
        DraftSeqLen = 1024,
        DraftVocabSize = 256,
        EvaluatePrompts = 4,
    };

    public static IReadOnlyList<QuickstartProfile> All { get; } = [Default, Tiny];

    /// <summary>Settable sizes by snake_case name (<c>train_examples</c>, <c>target_layers</c>, …).</summary>
    public static IReadOnlyList<string> SettableNames { get; } = typeof(QuickstartProfile).GetProperties()
        .Where(p => p.CanWrite && p.Name != nameof(Name)).Select(p => SnakeCase(p.Name)).ToList();

    /// <summary>
    /// This profile with <c>name=value</c> overrides applied (<c>--set target_layers=8</c>): for larger runs on faster
    /// machines and for calibration. Unknown names and bad values name the override.
    /// </summary>
    public QuickstartProfile With(IEnumerable<string> overrides)
    {
        var copy = this with { };
        foreach (var item in overrides)
        {
            int eq = item.IndexOf('=');
            if (eq <= 0) throw new SpeculatorsException($"--set {item}: expected name=value (names: {string.Join(", ", SettableNames)}).");
            string name = item[..eq].Trim(), text = item[(eq + 1)..].Trim();
            var prop = typeof(QuickstartProfile).GetProperties().FirstOrDefault(p => p.CanWrite && p.Name != nameof(Name) && SnakeCase(p.Name) == name)
                ?? throw new SpeculatorsException($"--set {item}: unknown name '{name}' (names: {string.Join(", ", SettableNames)}).");
            var type = Nullable.GetUnderlyingType(prop.PropertyType) ?? prop.PropertyType;
            object? value;
            var ci = System.Globalization.CultureInfo.InvariantCulture;
            if (Nullable.GetUnderlyingType(prop.PropertyType) != null && text is "null" or "none" or "") value = null;
            else if (type == typeof(int) && int.TryParse(text, System.Globalization.NumberStyles.Integer, ci, out int i) && i >= 0) value = i;
            else if (type == typeof(double) && double.TryParse(text, System.Globalization.NumberStyles.Float, ci, out double d) && double.IsFinite(d) && d >= 0) value = d;
            else if (type == typeof(string) && text.Length > 0) value = text;
            else throw new SpeculatorsException($"--set {item}: expected a non-negative {(type == typeof(int) ? "integer" : type == typeof(double) ? "number" : type.Name)}, got '{text}'.");
            prop.SetValue(copy, value);
        }
        return copy with { Name = Name + (overrides.Any() ? "+overrides" : "") };
    }

    static string SnakeCase(string pascal) =>
        string.Concat(pascal.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));

    public static QuickstartProfile Find(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new SpeculatorsException($"--profile: expected one of {string.Join(", ", All.Select(p => p.Name))}, got '{name}'.");
}

/// <summary>Inputs of <see cref="QuickstartPipeline.Run"/> (the flags of <c>speculators quickstart</c>).</summary>
public sealed record QuickstartOptions
{
    /// <summary>Where everything is written (created if needed); a re-run resumes here.</summary>
    public string OutputDirectory { get; init; } = "quickstart";
    /// <summary><c>cpu</c> or <c>cuda:N</c>.</summary>
    public string Device { get; init; } = "cpu";
    /// <summary>Redo every stage instead of skipping completed ones.</summary>
    public bool Force { get; init; }
    public long Seed { get; init; } = 42;
    public QuickstartProfile Profile { get; init; } = QuickstartProfile.Default;
    /// <summary>torch intra-op threads (null: libtorch's default, all cores).</summary>
    public int? Threads { get; init; }
    /// <summary>Stop after this stage (its name, e.g. <c>target_train</c>); null runs everything and reports.</summary>
    public string? StopAfter { get; init; }
    /// <summary>The command as typed (recorded in the report).</summary>
    public string? CommandLine { get; init; }
}
