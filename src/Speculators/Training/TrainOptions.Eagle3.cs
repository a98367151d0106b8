using Speculators.Data;
using Speculators.Formats;
using Speculators.Hub;
using Speculators.Modeling;
using Speculators.Util;

namespace Speculators.Training;

/// <summary>
/// The Eagle-3 flags of <c>speculators train</c> (speculators.md §7.1), parsed and resolved by the trainer's
/// configuration layer and consumed by the Eagle-3 factory (docs/trainer.md). Defaults follow DESIGN.md §4.
/// </summary>
public sealed record Eagle3TrainingOptions
{
    /// <summary><c>--verifier-name-or-path</c> / <c>--model</c> as given (local directory or Hugging Face id).</summary>
    public string? VerifierNameOrPath { get; init; }

    /// <summary>The verifier's local directory (set by <see cref="Resolve"/>).</summary>
    public string? VerifierDirectory { get; init; }

    /// <summary><c>--verifier-dtype</c>: dtype of the frozen verifier tensors and of online hidden-state generation; null: the compute dtype.</summary>
    public string? VerifierDtype { get; init; }

    /// <summary><c>--draft-config</c>: decoder config file or directory for the draft layers.</summary>
    public string? DraftConfig { get; init; }

    /// <summary><c>--num-layers</c>.</summary>
    public int NumLayers { get; init; } = 1;

    /// <summary><c>--draft-arch</c>: <c>llama</c> or <c>qwen3</c> draft layers.</summary>
    public string DraftArch { get; init; } = "llama";

    /// <summary><c>--draft-hidden-act</c>.</summary>
    public string DraftHiddenAct { get; init; } = "silu";

    /// <summary><c>--target-layer-ids</c>: aux ids, excluding the final layer; null: <see cref="AuxLayerIds.Default"/>.</summary>
    public IReadOnlyList<int>? TargetLayerIds { get; init; }

    /// <summary><c>--vllm-compat</c>: <c>current</c> or <c>classic</c> (all norm flags false, llama layers, 3 aux ids).</summary>
    public string VllmCompat { get; init; } = "current";

    public bool NormBeforeResidual { get; init; } = true;
    public bool NormBeforeFc { get; init; } = true;
    public bool FcNorm { get; init; }
    public bool NormOutput { get; init; } = true;
    public bool EmbedRequiresGrad { get; init; }

    /// <summary><c>--sliding-window</c>: draft layers slide with this window; null: full attention.</summary>
    public int? SlidingWindow { get; init; }

    /// <summary><c>--draft-vocab-size</c>.</summary>
    public int? DraftVocabSize { get; init; }

    public string? D2TPath { get; init; }
    public string? T2DPath { get; init; }

    /// <summary><c>--token-freq-path</c>; default <c>&lt;data&gt;/token_freq.pt</c> (then .json).</summary>
    public string? TokenFreqPath { get; init; }

    /// <summary>The resolved vocabulary mapping (speculators.md §5.3 with the size checks of DESIGN.md §4), set by <see cref="Resolve"/>.</summary>
    public VocabMappingResolution? VocabMapping { get; init; }

    /// <summary><c>--hidden-states-path</c>; default <c>&lt;data&gt;/hidden_states</c>.</summary>
    public string? HiddenStatesPath { get; init; }

    /// <summary><c>--on-missing</c>: generate, skip, warn, raise.</summary>
    public string OnMissing { get; init; } = "generate";

    /// <summary><c>--on-generate</c>: delete, cache.</summary>
    public string OnGenerate { get; init; } = "delete";

    public string VllmEndpoint { get; init; } = "http://localhost:8000/v1";
    public int RequestTimeout { get; init; } = 120;
    public int MaxRetries { get; init; } = 3;

    /// <summary><c>--noise-std</c>: uniform noise amplitude on the train split's hidden states.</summary>
    public double NoiseStd { get; init; } = 0.05;

    /// <summary><c>--loss-fn</c>: a name or a JSON dict (<see cref="LossSpec.Parse"/>).</summary>
    public string LossFn { get; init; } = "kl_div";

    public int TttSteps { get; init; } = 3;
    public double TttStepLossDecay { get; init; } = 1.0;

    /// <summary>
    /// Applies <c>--vllm-compat classic</c>, resolves the verifier directory, checks the aux ids against the verifier's
    /// layer count and resolves the vocabulary mapping against its vocabulary size. Errors name the flag and the values.
    /// </summary>
    /// <param name="dataPath">the prepared dataset directory (mapping cache, token frequencies)</param>
    /// <param name="explicitKeys">option keys the user set (CLI or YAML), to reject contradictions with <c>classic</c></param>
    public Eagle3TrainingOptions Resolve(string dataPath, IReadOnlySet<string> explicitKeys)
    {
        var o = this;
        string compat = VllmCompat.Trim().ToLowerInvariant();
        if (compat is not ("current" or "classic"))
            throw new SpeculatorsException($"--vllm-compat: expected current or classic, got '{VllmCompat}'.");
        if (OnMissing is not ("generate" or "skip" or "warn" or "raise"))
            throw new SpeculatorsException($"--on-missing: expected generate, skip, warn or raise, got '{OnMissing}'.");
        if (OnGenerate is not ("delete" or "cache"))
            throw new SpeculatorsException($"--on-generate: expected delete or cache, got '{OnGenerate}'.");
        if (DraftArch is not ("llama" or "qwen3"))
            throw new SpeculatorsException($"--draft-arch: expected llama or qwen3, got '{DraftArch}'.");
        if (NumLayers < 1) throw new SpeculatorsException($"--num-layers: expected >= 1, got {NumLayers}.");
        if (TttSteps < 1) throw new SpeculatorsException($"--ttt-steps: expected >= 1, got {TttSteps}.");
        if (!(NoiseStd >= 0)) throw new SpeculatorsException($"--noise-std: expected >= 0, got {NoiseStd}.");
        if (SlidingWindow is int w && w < 1) throw new SpeculatorsException($"--sliding-window: expected >= 1, got {w}.");
        LossSpec.Parse(LossFn);
        if (compat == "classic")
        {
            foreach (var (key, value) in new[] { ("norm_before_residual", NormBeforeResidual), ("norm_before_fc", NormBeforeFc), ("fc_norm", FcNorm), ("norm_output", NormOutput) })
                if (value && explicitKeys.Contains(key))
                    throw new SpeculatorsException($"--vllm-compat classic needs --{key.Replace('_', '-')} false (older vLLM has no such flag), but it was set to true.");
            if (explicitKeys.Contains("draft_arch") && DraftArch != "llama")
                throw new SpeculatorsException($"--vllm-compat classic needs llama draft layers; got --draft-arch {DraftArch}.");
            if (TargetLayerIds is { Count: not 3 })
                throw new SpeculatorsException($"--vllm-compat classic needs exactly 3 --target-layer-ids; got {TargetLayerIds.Count}.");
            o = o with { VllmCompat = "classic", NormBeforeResidual = false, NormBeforeFc = false, FcNorm = false, NormOutput = false, DraftArch = "llama" };
        }

        if (string.IsNullOrWhiteSpace(VerifierNameOrPath))
            throw new SpeculatorsException("--verifier-name-or-path (or --model) is required for --speculator-type eagle3.");
        string dir = VerifierDirectory ?? ModelLocator.Resolve(VerifierNameOrPath);
        var dc = HfConfig.Load(dir).ToDecoderConfig();
        if (TargetLayerIds is { } ids)
            AuxLayerIds.ValidateEagle3(ids, dc.NumLayers, $"--target-layer-ids (verifier {Path.GetFileName(Path.TrimEndingDirectorySeparator(dir))} has {dc.NumLayers} layers)");
        var mapping = VocabMappingResolver.Resolve(new VocabMappingRequest
        {
            TargetVocabSize = dc.VocabSize,
            DraftVocabSize = DraftVocabSize,
            D2TPath = D2TPath,
            T2DPath = T2DPath,
            DataDir = Directory.Exists(dataPath) ? dataPath : null,
            TokenFreqPath = TokenFreqPath,
        });
        Log.Info(mapping.Description);
        return o with
        {
            VerifierDirectory = dir,
            VocabMapping = mapping,
            HiddenStatesPath = HiddenStatesPath ?? Path.Combine(dataPath, "hidden_states"),
        };
    }
}
