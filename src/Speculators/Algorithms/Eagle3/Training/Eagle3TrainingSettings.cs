using Speculators.Attention;
using Speculators.Data;
using Speculators.HiddenStates;
using Speculators.Training;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// Everything <see cref="Eagle3TrainingAlgorithm.Create"/> needs, already resolved: the trainer parses the
/// <c>speculators train</c> flags (speculators.md §7.1), applies <c>--vllm-compat classic</c> and resolves the
/// vocabulary mapping (§5.3), then maps its options onto this record (docs/eagle3-training.md shows the factory).
/// </summary>
public sealed record Eagle3TrainingSettings
{
    /// <summary>The verifier's local directory (config.json + safetensors).</summary>
    public required string VerifierDirectory { get; init; }

    /// <summary>What <c>speculators_config.verifier.name_or_path</c> records (the model id vLLM serves as the target); null = the directory.</summary>
    public string? VerifierNameOrPath { get; init; }

    /// <summary>dtype the verifier runs in for online hidden-state generation when the store has none recorded; null = the compute dtype.</summary>
    public ScalarType? VerifierDtype { get; init; }

    /// <summary><c>--data-path</c>: the prepared dataset (HF save_to_disk layout).</summary>
    public required string DataPath { get; init; }

    /// <summary><c>--hidden-states-path</c>; null = <c>&lt;data&gt;/hidden_states</c>.</summary>
    public string? HiddenStatesPath { get; init; }

    /// <summary><c>--on-missing</c> (speculators' default: generate).</summary>
    public OnMissing OnMissing { get; init; } = OnMissing.Generate;

    /// <summary><c>--on-generate</c> (default delete: online mode writes nothing).</summary>
    public OnGenerate OnGenerate { get; init; } = OnGenerate.Delete;

    /// <summary>Token budget of one verifier prefill during online generation.</summary>
    public long GenerateBatchTokens { get; init; } = 16384;

    /// <summary>
    /// The draft's shape and flags: layer style (<c>--draft-arch</c>), <c>--num-layers</c>, aux ids
    /// (<c>--target-layer-ids</c>, null = <c>[2, N//2, N−3]</c>), the norm flags, <c>--sliding-window</c>,
    /// <c>--draft-hidden-act</c>. <c>SpeculativeTokens</c> and <c>Seed</c> are taken from <see cref="TttSteps"/> and <see cref="Seed"/>.
    /// </summary>
    public Eagle3DraftOptions Draft { get; init; } = Eagle3DraftOptions.HeadDefaults;

    /// <summary><c>--draft-config</c>: an HF decoder config (file or directory) for the draft layers instead of the synthesized one.</summary>
    public string? DraftConfigPath { get; init; }

    /// <summary>The resolved draft vocabulary (d2t/t2d); null = the whole verifier vocabulary.</summary>
    public VocabMapping? VocabMapping { get; init; }

    /// <summary>
    /// <c>--from-pretrained</c>: an Eagle-3 checkpoint directory (ours, Python speculators', <c>midlayer.</c> names) whose
    /// weights start the run, or a directory with only a config.json (fresh weights for that config).
    /// </summary>
    public string? FromPretrained { get; init; }

    /// <summary><c>--ttt-steps</c> (also written as <c>speculative_tokens</c>).</summary>
    public int TttSteps { get; init; } = 3;

    /// <summary><c>--ttt-step-loss-decay</c>.</summary>
    public double TttStepLossDecay { get; init; } = 1.0;

    /// <summary><c>--loss-fn</c>: a loss name or a JSON object of weights.</summary>
    public string LossFn { get; init; } = "kl_div";

    /// <summary>Teacher-forced TTT tokens (speculators HEAD); false = feed the draft's own predictions (≤ v0.6).</summary>
    public bool TeacherForcing { get; init; } = true;

    /// <summary><c>--noise-std</c>: uniform noise amplitude on the train split's aux hidden states.</summary>
    public double NoiseStd { get; init; } = 0.05;

    /// <summary><c>--total-seq-len</c>: tokens per packed row.</summary>
    public int TotalSeqLen { get; init; } = 8192;

    /// <summary><c>--seed</c>: weight initialization and noise.</summary>
    public long Seed { get; init; } = 42;

    /// <summary>dtype of saved checkpoints (bf16, as speculators and vLLM expect).</summary>
    public ScalarType SaveDtype { get; init; } = ScalarType.BFloat16;

    /// <summary>Block size of the block-sparse attention masks.</summary>
    public int AttentionBlockSize { get; init; } = BlockMask.DefaultBlockSize;

    /// <summary>Hidden-state files read at the same time per batch.</summary>
    public int MaxConcurrentReads { get; init; } = 4;

    /// <summary>The hidden-state store directory in effect.</summary>
    public string StoreDirectory => HiddenStatesPath ?? Path.Combine(DataPath, "hidden_states");

    /// <summary>speculators' <c>--on-missing</c> values.</summary>
    public static OnMissing ParseOnMissing(string text, string source = "--on-missing") => text.Trim().ToLowerInvariant() switch
    {
        "generate" => OnMissing.Generate,
        "skip" => OnMissing.Skip,
        "warn" => OnMissing.Warn,
        "raise" => OnMissing.Raise,
        _ => throw new SpeculatorsException($"{source}: expected generate, skip, warn or raise, got '{text}'."),
    };

    /// <summary>speculators' <c>--on-generate</c> values.</summary>
    public static OnGenerate ParseOnGenerate(string text, string source = "--on-generate") => text.Trim().ToLowerInvariant() switch
    {
        "delete" => OnGenerate.Delete,
        "cache" => OnGenerate.Cache,
        _ => throw new SpeculatorsException($"{source}: expected delete or cache, got '{text}'."),
    };

    /// <summary><c>--draft-arch</c> values.</summary>
    public static Eagle3LayerStyle ParseDraftArch(string text, string source = "--draft-arch") => text.Trim().ToLowerInvariant() switch
    {
        "llama" => Eagle3LayerStyle.Llama,
        "qwen3" => Eagle3LayerStyle.Qwen3,
        _ => throw new SpeculatorsException($"{source}: expected llama or qwen3, got '{text}'."),
    };

    /// <summary>The TTT options these settings describe.</summary>
    public Eagle3TttOptions TttOptions() => new()
    {
        Steps = TttSteps,
        TeacherForcing = TeacherForcing,
        Loss = LossSpec.Parse(LossFn),
        StepLossDecay = TttStepLossDecay,
    };

    /// <summary>Checks the values that do not need the verifier or the data; flags named in messages.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(VerifierDirectory)) throw new SpeculatorsException("--verifier-name-or-path is required for Eagle-3 training.");
        if (string.IsNullOrWhiteSpace(DataPath)) throw new SpeculatorsException("--data-path is required for Eagle-3 training.");
        if (TotalSeqLen <= TttSteps)
            throw new SpeculatorsException($"--total-seq-len ({TotalSeqLen}) must be larger than --ttt-steps ({TttSteps}): step k scores positions k..L-1.");
        if (AttentionBlockSize < 1) throw new SpeculatorsException($"attention block size must be positive, found {AttentionBlockSize}.");
        if (GenerateBatchTokens < 1) throw new SpeculatorsException($"generation batch tokens must be positive, found {GenerateBatchTokens}.");
        if (!(NoiseStd >= 0) || double.IsInfinity(NoiseStd)) throw new SpeculatorsException($"--noise-std must be a finite number >= 0, found {NoiseStd}.");
        if (FromPretrained != null && DraftConfigPath != null)
            throw new SpeculatorsException("--from-pretrained and --draft-config are mutually exclusive (the checkpoint's config defines the draft).");
        TttOptions().Validate();
        (Draft with { SpeculativeTokens = TttSteps }).Validate();
    }
}
