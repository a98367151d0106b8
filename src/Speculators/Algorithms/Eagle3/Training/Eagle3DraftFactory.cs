using Speculators.Formats;
using Speculators.HiddenStates;
using Speculators.Modeling;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// Builds the draft a run starts from (speculators.md §2.5, §7.2; precedence: <c>--from-pretrained</c> weights &gt;
/// verifier weights &gt; random init; resume is the trainer's, which restores the trained tensors itself):
/// <list type="bullet">
/// <item><c>--from-pretrained</c> checkpoint: its config and weights (a missing embedding or lm_head from the verifier);
/// its d2t/t2d win over the resolved mapping (a different mapping is reported, not applied — applying it would leave
/// lm_head rows of the old vocabulary, §5.4's pitfall);</item>
/// <item><c>--from-pretrained</c> directory with only a config.json: fresh weights for that config;</item>
/// <item><c>--draft-config</c>: fresh weights for the speculators config synthesized from the verifier with that
/// decoder config;</item>
/// <item>otherwise <see cref="Eagle3Builder.FromVerifier"/>.</item>
/// </list>
/// Weights are fp32 masters on <c>device</c>; <c>speculative_tokens</c> is set to the TTT steps and the verifier name to
/// this run's verifier.
/// </summary>
public static class Eagle3DraftFactory
{
    public static Eagle3DraftModel Build(Eagle3TrainingSettings settings, Eagle3VerifierWeights verifier, Device device)
    {
        var options = settings.Draft with { SpeculativeTokens = settings.TttSteps, Seed = settings.Seed };
        string name = settings.VerifierNameOrPath ?? settings.VerifierDirectory;
        Eagle3DraftModel model;
        if (settings.FromPretrained is { } dir)
        {
            if (!Directory.Exists(dir)) throw new SpeculatorsException($"--from-pretrained {dir}: no such directory.");
            if (SafeTensorsCheckpoint.Exists(dir))
            {
                model = Eagle3Checkpoint.Load(dir, verifier, ScalarType.Float32, device);
                if (settings.VocabMapping is { } wanted)
                {
                    var held = model.VocabMapping();
                    bool same = held is null ? wanted.IsIdentity && wanted.TargetVocabSize == model.TargetVocabSize
                        : wanted.D2T.AsSpan().SequenceEqual(held.D2T) && wanted.T2D.AsSpan().SequenceEqual(held.T2D);
                    if (!same)
                        Log.Warn($"--from-pretrained {dir}: the checkpoint's draft vocabulary ({model.DraftVocabSize} of {model.TargetVocabSize}) " +
                                 $"differs from the resolved mapping ({wanted.DraftVocabSize} of {wanted.TargetVocabSize}); the checkpoint's d2t/t2d and lm_head are kept.");
                }
                Log.Info($"eagle3: starting from the weights of {dir}");
            }
            else
            {
                var cfg = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(dir);
                cfg.AuxLayerIds ??= AuxLayerIds.Default(verifier.Config.NumLayers).ToList();
                model = Fresh(cfg, settings, verifier, device, options.InitializerRange);
                Log.Info($"eagle3: fresh weights for the config of {dir}");
            }
        }
        else if (settings.DraftConfigPath is { } path)
        {
            var dc = HfConfig.Load(path).ToDecoderConfig();
            var vc = verifier.Config;
            if (dc.HiddenSize != vc.HiddenSize)
                throw new SpeculatorsException($"--draft-config {path}: hidden_size {dc.HiddenSize} differs from the verifier's {vc.HiddenSize}.");
            if (dc.Family is not (ModelFamily.Llama or ModelFamily.Qwen3))
                throw new SpeculatorsException($"--draft-config {path}: Eagle-3 draft layers are llama or qwen3, found {dc.Family.ModelType()}.");
            dc = dc with { VocabSize = vc.VocabSize, TieWordEmbeddings = false };
            int vd = settings.VocabMapping?.DraftVocabSize ?? vc.VocabSize;
            var cfg = Eagle3Builder.CreateConfig(vc, verifier.Architectures, name, options with
            {
                LayerStyle = dc.Family == ModelFamily.Qwen3 ? Eagle3LayerStyle.Qwen3 : Eagle3LayerStyle.Llama,
                NumLayers = dc.NumLayers,
            }, vd);
            cfg.SetDecoder(dc);
            model = Fresh(cfg, settings, verifier, device, options.InitializerRange);
        }
        else
        {
            model = Eagle3Builder.FromVerifier(verifier, options, settings.VocabMapping, name, ScalarType.Float32, device);
        }

        var sc = model.Config.SpeculatorsConfig;
        if (sc.ProposalMethods.Count > 0) sc.ProposalMethods[0].SpeculativeTokens = settings.TttSteps;
        sc.Verifier.NameOrPath = name;
        sc.Verifier.Architectures = verifier.Architectures.ToList();
        model.ApplyFreezing();
        return model;
    }

    static Eagle3DraftModel Fresh(Eagle3SpeculatorConfig cfg, Eagle3TrainingSettings settings, Eagle3VerifierWeights verifier, Device device, double initializerRange)
    {
        var model = new Eagle3DraftModel(cfg, ScalarType.Float32, device);
        try
        {
            if (model.HasVocabMapping)
            {
                var m = settings.VocabMapping
                    ?? throw new SpeculatorsException(
                        $"{cfg.SourcePath}: draft_vocab_size {model.DraftVocabSize} is smaller than vocab_size {model.TargetVocabSize}, but no vocabulary mapping was given (--d2t-path/--t2d-path or --draft-vocab-size with token frequencies).");
                model.SetVocabMapping(m);
            }
            model.InitializeTrainable(settings.Seed, initializerRange);
            Eagle3Builder.CopyVerifierParts(model, verifier, embed: true, lmHead: true);
            model.AttachVerifier(verifier);
            model.ApplyFreezing();
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }
}

/// <summary>The compatibility checks run before training; each problem names both values.</summary>
public static class Eagle3TrainingChecks
{
    /// <summary>Verifier vs draft: hidden size, vocabulary, aux layer ids within the verifier's layers, mapping sizes.</summary>
    public static List<string> VerifierProblems(Eagle3DraftModel draft, DecoderConfig verifier, string verifierSource)
    {
        var p = new List<string>();
        string v = $"verifier {verifierSource}";
        if (draft.AuxHiddenSize != verifier.HiddenSize)
            p.Add($"hidden size: the draft reads aux states of width {draft.AuxHiddenSize}, {v} has hidden_size {verifier.HiddenSize}");
        if (draft.HiddenSize != verifier.HiddenSize)
            p.Add($"hidden size: the draft's hidden_size is {draft.HiddenSize}, {v} has {verifier.HiddenSize} (the embedding and lm_head are shared)");
        if (draft.TargetVocabSize != verifier.VocabSize)
            p.Add($"vocabulary: the draft's vocab_size is {draft.TargetVocabSize}, {v} has vocab_size {verifier.VocabSize}");
        if (draft.DraftVocabSize > verifier.VocabSize)
            p.Add($"vocabulary: draft_vocab_size {draft.DraftVocabSize} exceeds {v}'s vocab_size {verifier.VocabSize}");
        var ids = draft.Config.AuxLayerIds;
        if (ids is not null)
        {
            foreach (var id in ids)
                if (id < 1 || id >= verifier.NumLayers)
                    p.Add($"aux layer id {id} is outside [1, {verifier.NumLayers - 1}] ({v} has {verifier.NumLayers} layers; id {verifier.NumLayers} is its final layer, always captured, never an aux id)");
            if (ids.Count != draft.NumAuxLayers)
                p.Add($"aux layer ids: {ids.Count} listed, the draft's fc takes {draft.NumAuxLayers}");
        }
        if (draft.VocabMapping() is { } m)
        {
            if (m.TargetVocabSize != verifier.VocabSize)
                p.Add($"vocabulary mapping: t2d has {m.TargetVocabSize} entries, {v} has vocab_size {verifier.VocabSize}");
            if (m.DraftVocabSize != draft.DraftVocabSize)
                p.Add($"vocabulary mapping: d2t has {m.DraftVocabSize} entries, the draft's draft_vocab_size is {draft.DraftVocabSize}");
        }
        return p;
    }

    /// <summary>Hidden-state layout vs draft: aux ids and widths.</summary>
    public static List<string> ProviderProblems(Eagle3DraftModel draft, HiddenStateSpec spec)
    {
        var p = new List<string>();
        var ids = draft.Config.AuxLayerIds;
        if (ids is not null && !ids.SequenceEqual(spec.AuxLayerIds))
            p.Add($"aux layer ids: the hidden states hold [{string.Join(", ", spec.AuxLayerIds)}], the draft reads [{string.Join(", ", ids)}]");
        else if (spec.AuxLayerIds.Count != draft.NumAuxLayers)
            p.Add($"aux layers: the hidden states hold {spec.AuxLayerIds.Count}, the draft's fc takes {draft.NumAuxLayers}");
        if (spec.HiddenSize != draft.AuxHiddenSize)
            p.Add($"hidden size: the hidden states have width {spec.HiddenSize}, the draft reads {draft.AuxHiddenSize}");
        return p;
    }

    /// <summary>Differences between a loaded checkpoint and the draft being trained (tensor names/shapes and the forward-changing flags).</summary>
    public static List<string> ConfigDifferences(Eagle3DraftModel loaded, Eagle3DraftModel current)
    {
        var p = new List<string>();
        var a = loaded.Config;
        var b = current.Config;
        void Flag(string key, bool x, bool y)
        {
            if (x != y) p.Add($"{key}: checkpoint {(x ? "true" : "false")}, run {(y ? "true" : "false")}");
        }
        Flag("norm_before_residual", a.NormBeforeResidual, b.NormBeforeResidual);
        Flag("norm_before_fc", a.NormBeforeFc, b.NormBeforeFc);
        Flag("fc_norm", a.FcNorm, b.FcNorm);
        Flag("norm_output", a.NormOutput, b.NormOutput);
        if (!(a.AuxLayerIds ?? []).SequenceEqual(b.AuxLayerIds ?? []))
            p.Add($"eagle_aux_hidden_state_layer_ids: checkpoint [{string.Join(", ", a.AuxLayerIds ?? [])}], run [{string.Join(", ", b.AuxLayerIds ?? [])}]");
        if (a.LayerStyle != b.LayerStyle) p.Add($"draft layers: checkpoint {a.LayerStyle}, run {b.LayerStyle}");
        var shapesA = loaded.StateDictForSaving().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        var shapesB = current.StateDictForSaving().ToDictionary(kv => kv.Key, kv => kv.Value.shape, StringComparer.Ordinal);
        foreach (var (name, shape) in shapesB)
        {
            if (!shapesA.TryGetValue(name, out var other)) p.Add($"'{name}' is not in the checkpoint");
            else if (!other.SequenceEqual(shape)) p.Add($"'{name}': checkpoint [{string.Join(", ", other)}], run [{string.Join(", ", shape)}]");
        }
        foreach (var name in shapesA.Keys.Where(n => !shapesB.ContainsKey(n))) p.Add($"'{name}' is in the checkpoint but not in the draft being trained");
        if (p.Count == 0 && loaded.VocabMapping() is { } ma && current.VocabMapping() is { } mb
            && !(ma.D2T.AsSpan().SequenceEqual(mb.D2T) && ma.T2D.AsSpan().SequenceEqual(mb.T2D)))
            p.Add("d2t/t2d: the checkpoint keeps another draft vocabulary than the draft being trained");
        return p;
    }
}
