using Speculators.HiddenStates;
using Speculators.Hub;
using Speculators.Training;
using Speculators.Util;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary><c>speculators train --speculator-type eagle3</c> (found by <see cref="TrainingAlgorithms"/>).</summary>
public sealed class Eagle3TrainingAlgorithmFactory : ITrainingAlgorithmFactory
{
    public string Name => "eagle3";
    public string Description => "Eagle-3 draft distillation from a verifier (TTT, block-sparse attention, speculators checkpoints for vLLM)";

    public ITrainingAlgorithm Create(TrainingContext context) =>
        Eagle3TrainingAlgorithm.Create(Eagle3TrainingSettingsMapping.From(context.Options), context.Device, context.ComputeDtype, context.Group);
}

/// <summary>The trainer's parsed options (<see cref="TrainOptions"/>, <see cref="Eagle3TrainingOptions"/>) → <see cref="Eagle3TrainingSettings"/>.</summary>
public static class Eagle3TrainingSettingsMapping
{
    /// <summary>
    /// Maps the run's options; the Eagle-3 options are resolved first when the caller has not done so (the launcher
    /// resolves them with the user's explicit keys, which <c>--vllm-compat classic</c> needs).
    /// </summary>
    public static Eagle3TrainingSettings From(TrainOptions run)
    {
        var o = run.Eagle3;
        if (o.VerifierDirectory is null || o.VocabMapping is null)
            o = o.Resolve(run.DataPath, new HashSet<string>(StringComparer.Ordinal));
        if (!string.Equals(o.VllmEndpoint, new Eagle3TrainingOptions().VllmEndpoint, StringComparison.Ordinal))
            Log.WarnOnce("eagle3-vllm-endpoint",
                $"--vllm-endpoint {o.VllmEndpoint} is not used: hidden states are read from the store or generated in-process by the verifier (--on-missing generate).");
        return new Eagle3TrainingSettings
        {
            VerifierDirectory = o.VerifierDirectory!,
            VerifierNameOrPath = o.VerifierNameOrPath,
            VerifierDtype = o.VerifierDtype is { } dt ? HiddenStateSpec.ParseDType(dt, "--verifier-dtype") : null,
            DataPath = run.DataPath,
            HiddenStatesPath = o.HiddenStatesPath,
            OnMissing = Eagle3TrainingSettings.ParseOnMissing(o.OnMissing),
            OnGenerate = Eagle3TrainingSettings.ParseOnGenerate(o.OnGenerate),
            Draft = Eagle3DraftOptions.HeadDefaults with
            {
                LayerStyle = Eagle3TrainingSettings.ParseDraftArch(o.DraftArch),
                NumLayers = o.NumLayers,
                AuxLayerIds = o.TargetLayerIds,
                NormBeforeResidual = o.NormBeforeResidual,
                NormBeforeFc = o.NormBeforeFc,
                FcNorm = o.FcNorm,
                NormOutput = o.NormOutput,
                EmbedRequiresGrad = o.EmbedRequiresGrad,
                SlidingWindow = o.SlidingWindow,
                HiddenAct = o.DraftHiddenAct,
            },
            DraftConfigPath = o.DraftConfig,
            VocabMapping = o.VocabMapping?.Mapping,
            FromPretrained = string.IsNullOrWhiteSpace(run.FromPretrained) ? null
                : Directory.Exists(run.FromPretrained) ? run.FromPretrained : ModelLocator.Resolve(run.FromPretrained),
            TttSteps = o.TttSteps,
            TttStepLossDecay = o.TttStepLossDecay,
            LossFn = o.LossFn,
            NoiseStd = o.NoiseStd,
            TotalSeqLen = run.TotalSeqLen,
            Seed = run.Seed,
        };
    }
}
