using Speculators.Data;
using Speculators.Modeling;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// The Eagle-3 draft model with the speculators checkpoint key names: <c>embed_tokens</c>, <c>fc</c>,
/// optional <c>input_norm</c> / <c>fc_norm.{i}</c>, <c>layers.0</c> (<see cref="Eagle3FirstLayer"/>, 2H input),
/// <c>layers.{k≥1}</c> (standard <see cref="DecoderLayer"/>s), <c>norm</c>, <c>lm_head</c> over the draft
/// vocabulary, and the <c>d2t</c>/<c>t2d</c> buffers when Vd ≠ V. The frozen <c>verifier_norm</c> /
/// <c>verifier_lm_head</c> (training targets) exist only after <see cref="AttachVerifier"/> and are never saved.
/// <para>
/// The forward is split into the pieces both inference and training need: <see cref="CombineAuxHidden"/>
/// (input_norm / fc_norm / fc, applied once), <see cref="Embed"/>, <see cref="RunLayers"/> (one draft step on
/// (embedding, hidden) at given positions through a caller-supplied attention backend), <see cref="ApplyNorm"/>,
/// <see cref="ComputeLogits"/> and <see cref="Head"/> (logits plus the hidden state to feed back). RoPE comes
/// from the draft config through modeling's <see cref="RotaryEmbedding"/>.
/// </para>
/// </summary>
public sealed class Eagle3DraftModel : nn.Module
{
#pragma warning disable IDE1006 // field names are checkpoint keys
    public Modeling.Embedding embed_tokens;
    public Modeling.Linear fc;
    public RMSNorm? input_norm;
    public ModuleList<RMSNorm>? fc_norm;
    public ModuleList<nn.Module<Tensor, Tensor, Tensor, IAttentionBackend, Tensor>> layers;
    public RMSNorm norm;
    public Modeling.Linear lm_head;
    /// <summary>Draft id → target id offset [Vd] int64 (target = i + d2t[i]); null when Vd == V.</summary>
    public Tensor? d2t;
    /// <summary>Target ids the draft keeps [V] bool; null when Vd == V.</summary>
    public Tensor? t2d;
    /// <summary>Verifier final norm [T] (training targets; frozen, not saved).</summary>
    public RMSNorm? verifier_norm;
    /// <summary>Verifier lm_head rows of the draft vocabulary [Vd, T] (training targets; frozen, not saved).</summary>
    public Modeling.Linear? verifier_lm_head;
#pragma warning restore IDE1006

    readonly LayerRotaries _rotaries;

    public Eagle3SpeculatorConfig Config { get; }
    public DecoderConfig Decoder { get; }
    public ScalarType DType { get; }
    public Device Device { get; }
    public int HiddenSize => Decoder.HiddenSize;
    /// <summary>Width of one aux hidden state (T).</summary>
    public int AuxHiddenSize { get; }
    public int NumAuxLayers { get; }
    public int DraftVocabSize { get; }
    public int TargetVocabSize => Decoder.VocabSize;
    public bool HasVocabMapping => d2t is not null;

    /// <summary>Prefixes of parameters that are never saved.</summary>
    public static readonly IReadOnlyList<string> UnsavedPrefixes = ["verifier_norm.", "verifier_lm_head."];

    /// <summary>
    /// Builds the module tree for <paramref name="config"/> with uninitialized weights (fill them with
    /// <see cref="Eagle3Checkpoint.Load"/> or <see cref="Eagle3Builder.FromVerifier"/>).
    /// </summary>
    public Eagle3DraftModel(Eagle3SpeculatorConfig config, ScalarType dtype, Device device) : base("Eagle3DraftModel")
    {
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float64 or ScalarType.Float16))
            throw new SpeculatorsException($"draft dtype must be a floating type (float32, bfloat16, float64), found {dtype}.");
        Config = config;
        Decoder = config.ResolveDecoderConfig();
        DType = dtype;
        Device = device;
        var dc = Decoder;
        string where = config.SourcePath;
        if (config.DraftVocabSize <= 0 || config.DraftVocabSize > dc.VocabSize)
            throw new SpeculatorsException($"{where}: draft_vocab_size must be in [1, {dc.VocabSize}] (the target vocab_size), found {config.DraftVocabSize}.");
        if (config.NormBeforeFc && config.FcNorm)
            throw new SpeculatorsException($"{where}: norm_before_fc and fc_norm are both true; they are mutually exclusive.");
        if (config.TargetHiddenSize is int th && th <= 0)
            throw new SpeculatorsException($"{where}: target_hidden_size must be positive or null, found {th}.");
        DraftVocabSize = config.DraftVocabSize;
        AuxHiddenSize = config.AuxHiddenSize;
        NumAuxLayers = config.NumAuxLayers;
        if (NumAuxLayers <= 0) throw new SpeculatorsException($"{where}: eagle_aux_hidden_state_layer_ids must list at least one layer id.");
        int h = dc.HiddenSize, a = NumAuxLayers * AuxHiddenSize;

        embed_tokens = new Modeling.Embedding(dc.VocabSize, h, dtype, device);
        fc = new Modeling.Linear(a, h, false, dtype, device);
        if (config.NormBeforeFc) input_norm = new RMSNorm(a, dc.RmsNormEps, dtype, device);
        if (config.FcNorm)
        {
            fc_norm = new ModuleList<RMSNorm>();
            for (int i = 0; i < NumAuxLayers; i++) fc_norm.Add(new RMSNorm(AuxHiddenSize, dc.RmsNormEps, dtype, device));
        }
        layers = new ModuleList<nn.Module<Tensor, Tensor, Tensor, IAttentionBackend, Tensor>>();
        layers.Add(new Eagle3FirstLayer(dc, config.NormBeforeResidual, dtype, device));
        for (int i = 1; i < dc.NumLayers; i++) layers.Add(new DecoderLayer(dc, i, dtype, device));
        norm = new RMSNorm(h, dc.RmsNormEps, dtype, device);
        lm_head = new Modeling.Linear(h, DraftVocabSize, false, dtype, device);
        if (DraftVocabSize != dc.VocabSize)
        {
            d2t = torch.zeros(DraftVocabSize, ScalarType.Int64, device);
            t2d = torch.zeros(dc.VocabSize, ScalarType.Bool, device);
        }

        _rotaries = new LayerRotaries(dc);
        RegisterComponents();
    }

    /// <summary>The rotary embedding of draft layer <paramref name="layer"/> (from the draft config).</summary>
    public RotaryEmbedding RotaryFor(int layer) => _rotaries.For(layer);

    /// <summary>Named parameters (checkpoint keys), verifier targets included when attached.</summary>
    public IEnumerable<(string Name, Parameter Param)> Weights() => named_parameters().Select(p => (p.name, p.parameter));

    static bool IsUnsaved(string name) => UnsavedPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal));

    /// <summary>Whether a parameter is trained: everything except embeddings (unless <c>embed_requires_grad</c>), lm_head and the verifier targets.</summary>
    public bool IsTrainable(string name) =>
        !IsUnsaved(name) && name != "lm_head.weight" && (name != "embed_tokens.weight" || Config.EmbedRequiresGrad);

    /// <summary>Parameters the optimizer updates (fc, norms, layers; the embedding when <c>embed_requires_grad</c>).</summary>
    public IReadOnlyList<(string Name, Parameter Param)> TrainableParameters() => Weights().Where(w => IsTrainable(w.Name)).ToList();

    /// <summary>Frozen parameters (embedding unless trained, lm_head, verifier_norm, verifier_lm_head).</summary>
    public IReadOnlyList<(string Name, Parameter Param)> FrozenParameters() => Weights().Where(w => !IsTrainable(w.Name)).ToList();

    /// <summary>Sets <c>requires_grad</c> by parameter group.</summary>
    public void ApplyFreezing()
    {
        foreach (var (name, p) in Weights()) p.requires_grad = IsTrainable(name);
    }

    /// <summary>
    /// Exactly the tensors of model.safetensors (views, do not dispose): every parameter except the verifier
    /// targets, plus <c>d2t</c> and <c>t2d</c> when Vd ≠ V.
    /// </summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDictForSaving()
    {
        var list = Weights().Where(w => !IsUnsaved(w.Name)).Select(w => KeyValuePair.Create(w.Name, (Tensor)w.Param)).ToList();
        if (d2t is not null) list.Add(KeyValuePair.Create("d2t", d2t));
        if (t2d is not null) list.Add(KeyValuePair.Create("t2d", t2d));
        return list;
    }

    /// <summary>The draft vocabulary mapping held in the buffers, or null when Vd == V.</summary>
    public VocabMapping? VocabMapping()
    {
        if (d2t is null || t2d is null) return null;
        using var d = d2t.cpu();
        using var t = t2d.cpu();
        return new VocabMapping(d.data<long>().ToArray(), t.data<bool>().ToArray(), "draft d2t/t2d buffers");
    }

    /// <summary>Copies a validated vocabulary mapping into the <c>d2t</c>/<c>t2d</c> buffers.</summary>
    public void SetVocabMapping(VocabMapping mapping)
    {
        if (d2t is null || t2d is null)
            throw new SpeculatorsException($"the draft keeps the whole target vocabulary (draft_vocab_size {DraftVocabSize} = vocab_size {TargetVocabSize}); it has no d2t/t2d.");
        if (mapping.DraftVocabSize != DraftVocabSize || mapping.TargetVocabSize != TargetVocabSize)
            throw new SpeculatorsException(
                $"vocabulary mapping is for Vd {mapping.DraftVocabSize}, V {mapping.TargetVocabSize}; the draft has draft_vocab_size {DraftVocabSize}, vocab_size {TargetVocabSize}.");
        using var noGrad = torch.no_grad();
        using var dt = torch.tensor(mapping.D2T, ScalarType.Int64);
        using var tt = torch.tensor(mapping.T2D, ScalarType.Bool);
        d2t.copy_(dt);
        t2d.copy_(tt);
    }

    /// <summary>
    /// Target ids of the draft vocabulary in draft order [Vd] int64 (i + d2t[i]; 0..V−1 when Vd == V), on <see cref="Device"/>.
    /// </summary>
    public Tensor SelectedTargetIds()
    {
        using var scope = NewDisposeScope();
        var ids = torch.arange(DraftVocabSize, ScalarType.Int64, Device);
        return (d2t is null ? ids : ids.add(d2t)).MoveToOuterDisposeScope();
    }

    /// <summary>Maps draft-vocabulary ids (any shape, int64) to target ids: <c>id + d2t[id]</c>.</summary>
    public Tensor DraftToTarget(Tensor draftIds)
    {
        if (d2t is null) return draftIds.to(ScalarType.Int64);
        using var scope = NewDisposeScope();
        var ids = draftIds.to(ScalarType.Int64, Device);
        return ids.add(d2t.index_select(0, ids.reshape(-1)).view(ids.shape)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// input_norm / fc_norm / fc over concatenated aux states: [..., A·T] (any float dtype) → [..., H] in the
    /// model dtype. Aux states are concatenated layer-major, in ascending layer id order.
    /// </summary>
    public Tensor CombineAuxHidden(Tensor aux)
    {
        long width = (long)NumAuxLayers * AuxHiddenSize;
        if (aux.dim() < 1 || aux.shape[^1] != width)
            throw new SpeculatorsException(
                $"aux hidden states must end in {width} features ({NumAuxLayers} layers × {AuxHiddenSize}), got [{string.Join(", ", aux.shape)}].");
        using var scope = NewDisposeScope();
        var h = aux.to(DType, Device);
        if (input_norm is not null) h = input_norm.call(h);
        if (fc_norm is not null)
        {
            var parts = new Tensor[NumAuxLayers];
            for (int i = 0; i < NumAuxLayers; i++) parts[i] = fc_norm[i].call(h.narrow(-1, (long)i * AuxHiddenSize, AuxHiddenSize));
            h = torch.cat(parts, -1);
        }
        return fc.call(h).MoveToOuterDisposeScope();
    }

    /// <summary>Embeddings [..., H] of target-vocabulary ids (range-checked).</summary>
    public Tensor Embed(Tensor targetIds)
    {
        using var scope = NewDisposeScope();
        var ids = targetIds.to(ScalarType.Int64, Device);
        if (ids.numel() > 0)
        {
            long min = ids.min().item<long>(), max = ids.max().item<long>();
            if (min < 0 || max >= TargetVocabSize)
                throw new SpeculatorsException($"token id {(min < 0 ? min : max)} is outside the target vocabulary [0, {TargetVocabSize}).");
        }
        return embed_tokens.call(ids).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One draft step through every decoder layer: <c>x = [embeds | hidden]</c> into layer 0, then layers 1..
    /// at width H. Returns the pre-norm output [B, T, H]. Positions [B, T] (int64) drive RoPE; the backend
    /// sees each layer's q/k/v (after q/k norms and RoPE) and decides what they attend to.
    /// </summary>
    /// <param name="embeds">[B, T, H] token embeddings</param>
    /// <param name="hidden">[B, T, H] fc output (first step) or the previous step's fed-back hidden state</param>
    /// <param name="positionIds">[B, T] RoPE positions</param>
    /// <param name="backend">attention computation (KV cache, TTT masks...)</param>
    public Tensor RunLayers(Tensor embeds, Tensor hidden, Tensor positionIds, IAttentionBackend backend)
    {
        if (embeds.dim() != 3 || hidden.dim() != 3 || embeds.shape[2] != HiddenSize || hidden.shape[2] != HiddenSize
            || embeds.shape[0] != hidden.shape[0] || embeds.shape[1] != hidden.shape[1])
            throw new SpeculatorsException(
                $"draft step expects embeddings and hidden states [batch, tokens, {HiddenSize}], got [{string.Join(", ", embeds.shape)}] and [{string.Join(", ", hidden.shape)}].");
        if (positionIds.dim() != 2 || positionIds.shape[0] != embeds.shape[0] || positionIds.shape[1] != embeds.shape[1])
            throw new SpeculatorsException(
                $"position ids must be [{embeds.shape[0]}, {embeds.shape[1]}], got [{string.Join(", ", positionIds.shape)}].");
        using var scope = NewDisposeScope();
        var positions = positionIds.to(ScalarType.Int64, Device);
        var x = torch.cat([embeds.to(DType), hidden.to(DType)], 2);
        var tables = _rotaries.ForPositions(positions, DType);
        for (int i = 0; i < layers.Count; i++)
        {
            var (cos, sin) = tables.For(i);
            x = layers[i].call(x, cos, sin, backend);
        }
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>The draft's final norm.</summary>
    public Tensor ApplyNorm(Tensor preNorm) => norm.call(preNorm);

    /// <summary>Draft-vocabulary logits [..., Vd] from normed hidden states.</summary>
    public Tensor ComputeLogits(Tensor normed) => lm_head.call(normed);

    /// <summary>
    /// Logits <c>lm_head(norm(x))</c> [..., Vd] and the hidden state the next draft step takes: <c>norm(x)</c>
    /// when <c>norm_output</c>, else <c>x</c> (pre-norm), as speculators' TTT loop and vLLM do.
    /// </summary>
    public (Tensor Logits, Tensor NextHidden) Head(Tensor preNorm)
    {
        using var scope = NewDisposeScope();
        var normed = ApplyNorm(preNorm);
        var logits = ComputeLogits(normed);
        var next = Config.NormOutput ? normed : preNorm.alias();
        return (logits.MoveToOuterDisposeScope(), next.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Training targets: <c>verifier_lm_head(verifier_norm(y))</c> [..., Vd] from the verifier's last-layer
    /// states (capture id N, before its final norm), without gradients. Needs <see cref="AttachVerifier"/>.
    /// </summary>
    public Tensor VerifierTargets(Tensor verifierLastHidden)
    {
        if (verifier_norm is null || verifier_lm_head is null)
            throw new SpeculatorsException("verifier targets need the verifier's final norm and lm_head: attach the verifier (Eagle3DraftModel.AttachVerifier) first.");
        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var y = verifierLastHidden.to(DType, Device);
        return verifier_lm_head.call(verifier_norm.call(y)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Adds the frozen, unsaved training targets from the verifier: <c>verifier_norm</c> (its final norm)
    /// and <c>verifier_lm_head</c> (its lm_head rows of the draft vocabulary, or the embedding when tied).
    /// Replaces earlier ones.
    /// </summary>
    public void AttachVerifier(Eagle3VerifierWeights verifier)
    {
        CheckFits(verifier);
        using var noGrad = torch.no_grad();
        if (verifier_norm is null)
        {
            verifier_norm = new RMSNorm(AuxHiddenSize, verifier.Config.RmsNormEps, DType, Device);
            register_module("verifier_norm", verifier_norm);
        }
        if (verifier_lm_head is null)
        {
            verifier_lm_head = new Modeling.Linear(AuxHiddenSize, DraftVocabSize, false, DType, Device);
            register_module("verifier_lm_head", verifier_lm_head);
        }
        verifier_norm.weight.copy_(verifier.FinalNorm);
        using var rows = verifier.LmHeadRows(SelectedTargetIds());
        verifier_lm_head.weight.copy_(rows);
        verifier_norm.weight.requires_grad = false;
        verifier_lm_head.weight.requires_grad = false;
    }

    /// <summary>Checks that <paramref name="verifier"/> matches this draft's hidden size and vocabulary.</summary>
    public void CheckFits(Eagle3VerifierWeights verifier)
    {
        var vc = verifier.Config;
        if (vc.HiddenSize != AuxHiddenSize)
            throw new SpeculatorsException(
                $"verifier {verifier.Source}: hidden_size {vc.HiddenSize} differs from the draft's aux state width {AuxHiddenSize} (target_hidden_size or transformer_layer_config.hidden_size).");
        if (vc.VocabSize != TargetVocabSize)
            throw new SpeculatorsException(
                $"verifier {verifier.Source}: vocab_size {vc.VocabSize} differs from the draft's transformer_layer_config.vocab_size {TargetVocabSize}.");
    }

    /// <summary>
    /// HF-style initialization of the trained parts, deterministic in <paramref name="seed"/>: Linear weights
    /// ~ N(0, <paramref name="std"/>²) (HF <c>initializer_range</c> 0.02), biases 0, RMSNorm weights 1.
    /// The embedding, lm_head and verifier targets are left alone (they come from the verifier).
    /// Draws on the CPU in float32 in parameter-name order, then copies.
    /// </summary>
    public void InitializeTrainable(long seed, double std = 0.02)
    {
        using var scope = NewDisposeScope();
        using var gen = new torch.Generator((ulong)seed, torch.CPU);
        using var noGrad = torch.no_grad();
        foreach (var (name, p) in Weights().OrderBy(w => w.Name, StringComparer.Ordinal))
        {
            if (IsUnsaved(name) || name is "embed_tokens.weight" or "lm_head.weight") continue;
            bool isNorm = name.EndsWith("norm.weight", StringComparison.Ordinal) || name.EndsWith("layernorm.weight", StringComparison.Ordinal)
                || (fc_norm is not null && name.StartsWith("fc_norm.", StringComparison.Ordinal));
            if (isNorm) p.fill_(1.0);
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else p.copy_(torch.empty(p.shape, ScalarType.Float32, torch.CPU).normal_(0, std, gen));
        }
    }

    /// <summary>Parameter counts: (trainable, frozen and saved, total saved); the verifier targets are not counted.</summary>
    public (long Trainable, long FrozenSaved, long TotalSaved) ParameterCounts()
    {
        long trainable = 0, frozen = 0;
        foreach (var (name, p) in Weights())
        {
            if (IsUnsaved(name)) continue;
            if (IsTrainable(name)) trainable += p.numel(); else frozen += p.numel();
        }
        return (trainable, frozen, trainable + frozen);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _rotaries.Dispose();
        base.Dispose(disposing);
    }
}
