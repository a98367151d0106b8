using Speculators.Data;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// How to build a fresh Eagle-3 draft. Defaults are speculators train.py HEAD (DESIGN.md §4):
/// llama layers, 1 layer, <c>norm_before_residual</c>, <c>norm_before_fc</c> and <c>norm_output</c> true,
/// <c>fc_norm</c> false, 3 aux ids <c>[2, N//2, N−3]</c>, frozen embedding and lm_head, full attention,
/// 3 speculative tokens. <see cref="Classic"/> is <c>--vllm-compat classic</c>.
/// </summary>
public sealed record Eagle3DraftOptions
{
    public Eagle3LayerStyle LayerStyle { get; init; } = Eagle3LayerStyle.Llama;
    public int NumLayers { get; init; } = 1;
    /// <summary>Verifier layer ids feeding fc (ascending, in [1, N−1]); null = <see cref="AuxLayerIds.Default"/>.</summary>
    public IReadOnlyList<int>? AuxLayerIds { get; init; }
    public bool NormBeforeResidual { get; init; } = true;
    public bool NormBeforeFc { get; init; } = true;
    public bool FcNorm { get; init; }
    public bool NormOutput { get; init; } = true;
    public bool EmbedRequiresGrad { get; init; }
    /// <summary>Sliding window of every draft layer; null = <c>full_attention</c> layers.</summary>
    public int? SlidingWindow { get; init; }
    /// <summary><c>speculative_tokens</c> written to the config (= TTT steps).</summary>
    public int SpeculativeTokens { get; init; } = 3;
    public string HiddenAct { get; init; } = "silu";
    /// <summary>Seed of the random initialization of the trained parts.</summary>
    public long Seed { get; init; }
    /// <summary>HF <c>initializer_range</c> (std of the Linear weights).</summary>
    public double InitializerRange { get; init; } = 0.02;

    /// <summary>speculators train.py HEAD defaults.</summary>
    public static Eagle3DraftOptions HeadDefaults => new();

    /// <summary>
    /// <c>--vllm-compat classic</c>: what every vLLM with Eagle-3 serves — all norm flags false, llama layers,
    /// exactly 3 aux ids (the default ones).
    /// </summary>
    public static Eagle3DraftOptions Classic => new()
    {
        LayerStyle = Eagle3LayerStyle.Llama,
        NormBeforeResidual = false,
        NormBeforeFc = false,
        FcNorm = false,
        NormOutput = false,
    };

    /// <summary>Checks the options; <c>--flag</c> names in messages.</summary>
    public void Validate()
    {
        if (NumLayers < 1) throw new SpeculatorsException($"--num-layers must be at least 1, found {NumLayers}.");
        if (SpeculativeTokens < 1) throw new SpeculatorsException($"--speculative-tokens must be at least 1, found {SpeculativeTokens}.");
        if (NormBeforeFc && FcNorm) throw new SpeculatorsException("--norm-before-fc and --fc-norm are mutually exclusive (one norm over the concatenated aux states, or one per state).");
        if (SlidingWindow is int w && w <= 0) throw new SpeculatorsException($"--sliding-window must be positive, found {w}.");
        if (!Activations.IsSupported(HiddenAct)) throw new SpeculatorsException($"--draft-hidden-act '{HiddenAct}' is not supported (supported: {string.Join(", ", Activations.Supported)}).");
    }
}

/// <summary>Builds fresh Eagle-3 drafts from a verifier (speculators' <c>create_transformer_layer_config</c> + <c>from_training_args</c>).</summary>
public static class Eagle3Builder
{
    /// <summary>
    /// The draft decoder config synthesized from the verifier (speculators.md §3.4): vocab, hidden size,
    /// heads, kv heads, head_dim, max positions, rms eps and RoPE copied (the sliding-layer RoPE of a
    /// per-layer-type verifier; no partial rotary); intermediate size copied; the layer style, layer count,
    /// activation and windows from <paramref name="options"/>; no biases. When hidden is not a multiple of the
    /// heads but is of head_dim, heads = hidden / head_dim (kv heads = heads if they no longer divide).
    /// </summary>
    public static DecoderConfig DraftDecoderConfig(DecoderConfig verifier, Eagle3DraftOptions options)
    {
        options.Validate();
        int h = verifier.HiddenSize, heads = verifier.NumHeads, kvHeads = verifier.NumKvHeads, hd = verifier.HeadDim;
        if (h % heads != 0 && h % hd == 0)
        {
            heads = h / hd;
            if (heads % kvHeads != 0) kvHeads = heads;
        }
        var rope = verifier.RopeByLayerType?.GetValueOrDefault(DecoderConfig.SlidingAttention) ?? verifier.Rope;
        rope = rope with { PartialRotaryFactor = 1.0, HeadDim = hd, MaxPositionEmbeddings = verifier.MaxPositionEmbeddings };
        string type = options.SlidingWindow != null ? DecoderConfig.SlidingAttention : DecoderConfig.FullAttention;
        var dc = new DecoderConfig
        {
            Family = options.LayerStyle == Eagle3LayerStyle.Qwen3 ? ModelFamily.Qwen3 : ModelFamily.Llama,
            VocabSize = verifier.VocabSize,
            HiddenSize = h,
            IntermediateSize = verifier.IntermediateSize,
            NumLayers = options.NumLayers,
            NumHeads = heads,
            NumKvHeads = kvHeads,
            HeadDim = hd,
            HiddenAct = options.HiddenAct,
            RmsNormEps = verifier.RmsNormEps,
            MaxPositionEmbeddings = verifier.MaxPositionEmbeddings,
            QkNorm = options.LayerStyle == Eagle3LayerStyle.Qwen3,
            TieWordEmbeddings = false,
            LayerTypes = Enumerable.Repeat(type, options.NumLayers).ToList(),
            SlidingWindow = options.SlidingWindow,
            Rope = rope,
        };
        dc.Validate("draft decoder config");
        return dc;
    }

    /// <summary>
    /// The config of a fresh draft: every flag explicit, aux ids resolved, dtype keys in both spellings
    /// (<paramref name="saveDtype"/>), greedy proposal with <c>speculative_tokens</c>, verifier name and architectures.
    /// </summary>
    public static Eagle3SpeculatorConfig CreateConfig(DecoderConfig verifier, IReadOnlyList<string> verifierArchitectures, string? verifierNameOrPath,
        Eagle3DraftOptions options, int draftVocabSize, string saveDtype = "bfloat16")
    {
        var aux = options.AuxLayerIds?.ToList() ?? AuxLayerIds.Default(verifier.NumLayers).ToList();
        AuxLayerIds.ValidateEagle3(aux, verifier.NumLayers, "--aux-layer-ids");
        if (draftVocabSize <= 0 || draftVocabSize > verifier.VocabSize)
            throw new SpeculatorsException($"--draft-vocab-size must be in [1, {verifier.VocabSize}] (the verifier's vocab_size), found {draftVocabSize}.");
        var cfg = new Eagle3SpeculatorConfig
        {
            SpeculatorsVersion = Eagle3SpeculatorConfig.FormatVersion,
            Architectures = [Eagle3SpeculatorConfig.ArchitectureName],
            SpeculatorsConfig = SpeculatorsConfig.Greedy(Eagle3SpeculatorConfig.ModelTypeName, options.SpeculativeTokens, verifierNameOrPath, verifierArchitectures),
            DraftVocabSize = draftVocabSize,
            TargetHiddenSize = null,
            NormBeforeResidual = options.NormBeforeResidual,
            NormBeforeFc = options.NormBeforeFc,
            FcNorm = options.FcNorm,
            NormOutput = options.NormOutput,
            EmbedRequiresGrad = options.EmbedRequiresGrad,
            AuxLayerIds = aux,
            TieWordEmbeddings = false,
        };
        cfg.SetDecoder(DraftDecoderConfig(verifier, options));
        cfg.SetDtype(saveDtype);
        return cfg;
    }

    /// <summary>
    /// A fresh draft for <paramref name="verifier"/>: decoder config synthesized from it, frozen
    /// <c>embed_tokens</c> copied from it, <c>lm_head</c> = its lm_head rows selected by t2d (the embedding when
    /// tied), <c>verifier_norm</c>/<c>verifier_lm_head</c> attached for training targets (not saved), the other
    /// weights initialized as HF does (Linear N(0, 0.02), norms 1) from <see cref="Eagle3DraftOptions.Seed"/>.
    /// </summary>
    /// <param name="mapping">draft vocabulary (d2t/t2d); null = the whole target vocabulary</param>
    /// <param name="verifierNameOrPath">written to <c>speculators_config.verifier.name_or_path</c> (what vLLM serves as the target)</param>
    public static Eagle3DraftModel FromVerifier(Eagle3VerifierWeights verifier, Eagle3DraftOptions options, VocabMapping? mapping,
        string? verifierNameOrPath, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var vc = verifier.Config;
        if (mapping != null && mapping.TargetVocabSize != vc.VocabSize)
            throw new SpeculatorsException(
                $"the vocabulary mapping's t2d has {mapping.TargetVocabSize} entries but the verifier's vocab_size is {vc.VocabSize} (mapping built for another model?).");
        int vd = mapping?.DraftVocabSize ?? vc.VocabSize;
        var cfg = CreateConfig(vc, verifier.Architectures, verifierNameOrPath, options, vd);
        var model = new Eagle3DraftModel(cfg, dtype, device ?? torch.CPU);
        try
        {
            if (mapping != null && !mapping.IsIdentity) model.SetVocabMapping(mapping);
            model.InitializeTrainable(options.Seed, options.InitializerRange);
            CopyVerifierParts(model, verifier, embed: true, lmHead: true);
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

    /// <summary>Copies the verifier's embedding and/or lm_head rows (by the draft's t2d order) into the draft.</summary>
    internal static void CopyVerifierParts(Eagle3DraftModel model, Eagle3VerifierWeights verifier, bool embed, bool lmHead)
    {
        model.CheckFits(verifier);
        if (model.HiddenSize != verifier.Config.HiddenSize)
            throw new SpeculatorsException(
                $"verifier {verifier.Source}: hidden_size {verifier.Config.HiddenSize} differs from the draft's {model.HiddenSize}; its embedding and lm_head cannot be shared.");
        using var noGrad = torch.no_grad();
        if (embed) model.embed_tokens.weight.copy_(verifier.EmbedTokens);
        if (lmHead)
        {
            using var ids = model.SelectedTargetIds();
            using var rows = verifier.LmHeadRows(ids);
            model.lm_head.weight.copy_(rows);
        }
    }
}
