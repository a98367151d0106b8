using Speculators.Formats;
using Speculators.Util;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>
/// A decoder-only causal LM with HF checkpoint key names: <c>model.</c> (<see cref="DecoderModel"/>) and
/// <c>lm_head</c> (absent when embeddings are tied, as in HF files). One class serves the four families;
/// <see cref="LlamaForCausalLM"/>, <see cref="Qwen2ForCausalLM"/>, <see cref="Qwen3ForCausalLM"/> and
/// <see cref="MistralForCausalLM"/> name them. Inference runs under <c>no_grad</c> and a dispose scope.
/// </summary>
public class CausalLM : nn.Module
{
#pragma warning disable IDE1006
    public DecoderModel model;
    public Linear? lm_head;
#pragma warning restore IDE1006

    public DecoderConfig Config { get; }
    public ScalarType DType { get; }
    public Device Device { get; }
    /// <summary>The parsed config.json when loaded from a directory.</summary>
    public HfConfig? HfConfig { get; private set; }
    /// <summary>The directory the weights came from, if any.</summary>
    public string? SourceDirectory { get; private set; }

    protected CausalLM(DecoderConfig config, ScalarType dtype, Device device) : base(config.Family.Architecture())
    {
        config.Validate();
        if (dtype is not (ScalarType.Float32 or ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float64))
            throw new SpeculatorsException($"model dtype must be a floating type (float32, bfloat16), found {dtype}.");
        Config = config;
        DType = dtype;
        Device = device;
        model = new DecoderModel(config, dtype, device);
        lm_head = config.TieWordEmbeddings ? null : new Linear(config.HiddenSize, config.VocabSize, false, dtype, device);
        RegisterComponents();
    }

    /// <summary>Builds the module tree for <paramref name="config"/> with uninitialized weights.</summary>
    public static CausalLM Create(DecoderConfig config, ScalarType dtype, Device device) => config.Family switch
    {
        ModelFamily.Llama => new LlamaForCausalLM(config, dtype, device),
        ModelFamily.Qwen2 => new Qwen2ForCausalLM(config, dtype, device),
        ModelFamily.Qwen3 => new Qwen3ForCausalLM(config, dtype, device),
        ModelFamily.Mistral => new MistralForCausalLM(config, dtype, device),
        _ => throw new SpeculatorsException($"unsupported family {config.Family}; supported: {ModelFamilies.SupportedList}."),
    };

    /// <summary>
    /// Loads an HF model directory: parses config.json (family dispatch, defaults, field errors), builds
    /// the model in <paramref name="dtype"/> on <paramref name="device"/>, and fills every weight from the
    /// safetensors checkpoint (single or sharded), checking each tensor's shape against the config first.
    /// A missing weight or a shape mismatch throws <see cref="SpeculatorsException"/> naming the tensor.
    /// The weights are frozen (no gradients).
    /// </summary>
    public static CausalLM LoadFromDirectory(string directory, ScalarType dtype, Device device)
    {
        if (!Directory.Exists(directory)) throw new SpeculatorsException($"{directory}: model directory not found.");
        var hf = HfConfig.Load(directory);
        var dc = hf.ToDecoderConfig();
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        var m = Create(dc, dtype, device);
        try
        {
            m.LoadWeights(ckpt);
        }
        catch
        {
            m.Dispose();
            throw;
        }
        m.HfConfig = hf;
        m.SourceDirectory = Path.GetFullPath(directory);
        return m;
    }

    /// <summary>The output projection weight [V, H] (the embedding table when tied).</summary>
    public Tensor LmHeadWeight => lm_head?.weight ?? model.embed_tokens.weight;

    /// <summary>Named parameters keyed exactly as in HF checkpoints.</summary>
    public IEnumerable<(string Name, Parameter Param)> Weights() => named_parameters().Select(p => (p.name, p.parameter));

    /// <summary>
    /// Copies every weight from <paramref name="ckpt"/>: shape checked before any copy (naming the tensor and
    /// both shapes), missing weights listed, then the parameters are frozen. Extra tensors in the file
    /// (e.g. <c>rotary_emb.inv_freq</c>, a tied <c>lm_head.weight</c>) are ignored with a warning.
    /// </summary>
    public void LoadWeights(SafeTensorsCheckpoint ckpt)
    {
        string modelPrefix = DetectModelPrefix(ckpt);
        string? lmHeadKey = new[] { "lm_head.weight", "language_model.lm_head.weight", modelPrefix + "lm_head.weight" }
            .FirstOrDefault(ckpt.Contains);
        var plan = new List<(string Name, string FileKey, Parameter Param)>();
        var missing = new List<string>();
        foreach (var (name, p) in Weights())
        {
            string fileKey = name == "lm_head.weight" ? lmHeadKey ?? "lm_head.weight"
                : name.StartsWith("model.", StringComparison.Ordinal) ? modelPrefix + name["model.".Length..] : name;
            if (!ckpt.Contains(fileKey))
            {
                missing.Add(fileKey);
                continue;
            }
            var info = ckpt.Info(fileKey);
            if (!info.Shape.SequenceEqual(p.shape))
                throw new SpeculatorsException(
                    $"{Path.GetFileName(ckpt.FileOf(fileKey))} in {ckpt.Directory}: weight '{fileKey}' has shape {info.ShapeText}, " +
                    $"but config.json implies [{string.Join(", ", p.shape)}] for {Config.Family.Architecture()}.");
            if (!info.DType.TryToTorch(out var ft) || !torch.is_floating_point(torch.empty(0, ft)))
                throw new SpeculatorsException($"{Path.GetFileName(ckpt.FileOf(fileKey))}: weight '{fileKey}' has dtype {info.DType.Name()}; expected a float type (F32, BF16, F16, F64).");
            plan.Add((name, fileKey, p));
        }
        if (missing.Count > 0)
            throw new SpeculatorsException(
                $"{ckpt.Source}: missing weight{(missing.Count > 1 ? "s" : "")} {string.Join(", ", missing.Take(5).Select(k => "'" + k + "'"))}" +
                (missing.Count > 5 ? $" and {missing.Count - 5} more" : "") +
                $" required by {Config.Family.Architecture()} with this config.json" +
                (missing.Any(k => k.EndsWith("lm_head.weight", StringComparison.Ordinal)) ? " (if the embeddings are tied, set \"tie_word_embeddings\": true)." : "."));
        using (torch.no_grad())
        {
            foreach (var (name, fileKey, p) in plan) ckpt.ReadInto(fileKey, p, $"parameter '{name}'");
        }
        foreach (var (_, p) in Weights()) p.requires_grad = false;
        var used = plan.Select(x => x.FileKey).ToHashSet(StringComparer.Ordinal);
        var unused = ckpt.Keys.Where(k => !used.Contains(k) && !k.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal)
            && !(Config.TieWordEmbeddings && k.EndsWith("lm_head.weight", StringComparison.Ordinal))).ToList();
        if (unused.Count > 0)
            Log.Warn($"{ckpt.Source}: {unused.Count} tensor(s) not used by {Config.Family.Architecture()}, e.g. " +
                     string.Join(", ", unused.Take(3).Select(k => "'" + k + "'")) + ".");
    }

    static string DetectModelPrefix(SafeTensorsCheckpoint ckpt)
    {
        const string probe = "embed_tokens.weight";
        if (ckpt.Contains("model." + probe)) return "model.";
        foreach (var p in new[] { "model.language_model.", "language_model.model.", "model.model." })
            if (ckpt.Contains(p + probe)) return p;
        return "model.";
    }

    /// <summary>
    /// Fills the weights with random values (tests and tiny fixtures): matrices and biases ~ N(0, std²),
    /// norm weights 1 + N(0, std²) so that a forgotten norm or bias changes the output. Deterministic in
    /// <paramref name="seed"/> (drawn on the CPU, then copied).
    /// </summary>
    public void InitializeRandom(long seed, double std = 0.02)
    {
        using var scope = NewDisposeScope();
        using var gen = new Generator((ulong)seed, torch.CPU);
        using (torch.no_grad())
        {
            foreach (var (name, p) in Weights())
            {
                var r = torch.empty(p.shape, ScalarType.Float32, torch.CPU).normal_(0, std, gen);
                if (name.EndsWith("norm.weight", StringComparison.Ordinal)) r = r.add(1.0);
                p.copy_(r);
            }
        }
    }

    /// <summary>A KV cache for <paramref name="batchSize"/> sequences.</summary>
    public KvCache CreateCache(int batchSize, long initialCapacity = 64) => new(batchSize, initialCapacity);

    /// <summary>Final norm then lm_head: logits [..., V] from pre-norm hidden states [..., H].</summary>
    public Tensor ComputeLogits(Tensor preNormHidden)
    {
        using var scope = NewDisposeScope();
        var normed = model.norm.call(preNormHidden);
        return torch.nn.functional.linear(normed, LmHeadWeight).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// One forward step.
    /// </summary>
    /// <param name="inputIds">[B, T] token ids (int64 or int32), each in [0, vocab)</param>
    /// <param name="positionIds">[B, T] RoPE positions; default: cache length + running count of valid tokens</param>
    /// <param name="cache">KV cache to extend (and attend over), or null for a stateless forward</param>
    /// <param name="attentionMask">[B, T] 1 = token, 0 = padding (right padding when a cache is used)</param>
    /// <param name="captureLayerIds">hidden-state ids in [0, N] (vLLM semantics); returned ascending, distinct</param>
    /// <param name="logits">positions to compute logits for (default all)</param>
    /// <param name="backend">a custom attention backend (then <paramref name="cache"/> must be null, and masking
    /// is the backend's job: <paramref name="attentionMask"/> then only shapes the default positions and <see cref="LogitsSelection.Last"/>)</param>
    public ModelOutput Forward(Tensor inputIds, Tensor? positionIds = null, KvCache? cache = null, Tensor? attentionMask = null,
        IReadOnlyList<int>? captureLayerIds = null, LogitsSelection? logits = null, IAttentionBackend? backend = null)
    {
        if (inputIds.dim() != 2)
            throw new SpeculatorsException($"input ids must be [batch, tokens], got shape [{string.Join(", ", inputIds.shape)}].");
        int batch = (int)inputIds.shape[0], tokens = (int)inputIds.shape[1];
        if (tokens == 0) throw new SpeculatorsException("input ids are empty (0 tokens).");
        if (inputIds.dtype is not (ScalarType.Int64 or ScalarType.Int32))
            throw new SpeculatorsException($"input ids must be int64 or int32, found {inputIds.dtype}.");
        if (attentionMask is not null && !attentionMask.shape.SequenceEqual(inputIds.shape))
            throw new SpeculatorsException($"attention mask shape [{string.Join(", ", attentionMask.shape)}] differs from input ids [{batch}, {tokens}].");
        if (positionIds is not null && !positionIds.shape.SequenceEqual(inputIds.shape))
            throw new SpeculatorsException($"position ids shape [{string.Join(", ", positionIds.shape)}] differs from input ids [{batch}, {tokens}].");
        if (cache is not null && cache.BatchSize != batch)
            throw new SpeculatorsException($"KV cache holds {cache.BatchSize} sequences but the input has {batch}.");
        if (backend is not null && cache is not null)
            throw new SpeculatorsException("pass either a KV cache (default SDPA backend) or a custom attention backend, not both.");
        var captureIds = AuxLayerIds.NormalizeCapture(captureLayerIds ?? [], Config.NumLayers);
        var selection = logits ?? LogitsSelection.All;

        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var ids = inputIds.to(ScalarType.Int64, Device);
        long min = ids.min().item<long>(), max = ids.max().item<long>();
        if (min < 0 || max >= Config.VocabSize)
            throw new SpeculatorsException($"token id {(min < 0 ? min : max)} is outside the vocabulary [0, {Config.VocabSize}).");
        var mask = attentionMask?.to(ScalarType.Bool, Device);
        Tensor positions;
        if (positionIds is not null)
        {
            positions = positionIds.to(ScalarType.Int64, Device);
        }
        else
        {
            var starts = torch.tensor(cache?.Lengths.ToArray() ?? new long[batch], device: Device).view(batch, 1);
            var running = mask is null
                ? torch.arange(tokens, ScalarType.Int64, Device).view(1, tokens)
                : mask.to(ScalarType.Int64).cumsum(1).sub(1).clamp_min(0);
            positions = running.add(starts);
        }

        using var sdpa = backend is null ? new SdpaAttentionBackend(cache, mask, batch, tokens) : null;
        IAttentionBackend attend = backend ?? sdpa!;
        bool needFinal = selection.Mode != LogitsSelection.Kind.None || cache is not null || captureIds.Length == 0;
        int run = needFinal ? Config.NumLayers : captureIds[^1];
        var dec = model.Forward(ids, positions, attend, captureIds, run);

        Tensor? logitsOut = null, logitsPos = null;
        switch (selection.Mode)
        {
            case LogitsSelection.Kind.All:
                logitsOut = ComputeLogits(dec.Hidden);
                break;
            case LogitsSelection.Kind.Last:
            {
                var last = mask is null
                    ? torch.full([batch, 1], tokens - 1, ScalarType.Int64, Device)
                    : mask.to(ScalarType.Int64).sum(1, keepdim: true).sub(1).clamp_min(0);
                logitsPos = last;
                logitsOut = ComputeLogits(Gather(dec.Hidden, last));
                break;
            }
            case LogitsSelection.Kind.At:
            {
                var pos = selection.Positions!.to(ScalarType.Int64, Device);
                if (pos.dim() != 2 || pos.shape[0] != batch)
                    throw new SpeculatorsException($"logit positions must be [batch={batch}, K], got [{string.Join(", ", pos.shape)}].");
                if (pos.numel() > 0 && (pos.min().item<long>() < 0 || pos.max().item<long>() >= tokens))
                    throw new SpeculatorsException($"logit positions must be in [0, {tokens}).");
                logitsPos = pos;
                logitsOut = ComputeLogits(Gather(dec.Hidden, pos));
                break;
            }
        }
        Tensor? hidden = dec.Captures.Count > 0 ? torch.stack(dec.Captures, 2) : null;
        cache?.Commit(sdpa!.ValidNewTokens);
        return new ModelOutput
        {
            Logits = logitsOut?.MoveToOuterDisposeScope(),
            LogitsPositions = logitsPos?.MoveToOuterDisposeScope(),
            HiddenStates = hidden?.MoveToOuterDisposeScope(),
            CaptureLayerIds = captureIds,
            LastHidden = dec.Hidden.MoveToOuterDisposeScope(),
        };
    }

    static Tensor Gather(Tensor hidden, Tensor positions)
    {
        long h = hidden.shape[2];
        var index = positions.unsqueeze(-1).expand(positions.shape[0], positions.shape[1], h);
        return hidden.gather(1, index);
    }

    /// <summary>The weights keyed as in HF checkpoints (views of the parameters; do not dispose).</summary>
    public IReadOnlyList<KeyValuePair<string, Tensor>> StateDictForSaving() =>
        Weights().Select(w => KeyValuePair.Create(w.Name, (Tensor)w.Param)).ToList();

    /// <summary>
    /// Writes <c>model.safetensors</c> (or shards + index when larger than <paramref name="maxShardBytes"/>)
    /// into <paramref name="directory"/>, optionally converting to <paramref name="saveDtype"/>.
    /// </summary>
    public IReadOnlyList<string> SaveWeights(string directory, ScalarType? saveDtype = null, long maxShardBytes = 5_000_000_000)
    {
        using var scope = NewDisposeScope();
        var tensors = StateDictForSaving()
            .Select(kv => KeyValuePair.Create(kv.Key, saveDtype is ScalarType t && t != kv.Value.dtype ? kv.Value.to(t) : kv.Value)).ToList();
        return SafeTensorsWriter.SaveSharded(directory, tensors, maxShardBytes);
    }
}

/// <summary>HF <c>LlamaForCausalLM</c>: optional attention/MLP biases, any RoPE type.</summary>
public sealed class LlamaForCausalLM : CausalLM
{
    public LlamaForCausalLM(DecoderConfig c, ScalarType dtype, Device device) : base(Check(c, ModelFamily.Llama), dtype, device) { }

    internal static DecoderConfig Check(DecoderConfig c, ModelFamily f) =>
        c.Family == f ? c : throw new SpeculatorsException($"{f.Architecture()} cannot be built from a {c.Family.Architecture()} config.");
}

/// <summary>HF <c>Qwen2ForCausalLM</c>: q/k/v biases, optional sliding-window layers.</summary>
public sealed class Qwen2ForCausalLM : CausalLM
{
    public Qwen2ForCausalLM(DecoderConfig c, ScalarType dtype, Device device) : base(LlamaForCausalLM.Check(c, ModelFamily.Qwen2), dtype, device) { }
}

/// <summary>HF <c>Qwen3ForCausalLM</c>: per-head q_norm/k_norm before RoPE, explicit head_dim.</summary>
public sealed class Qwen3ForCausalLM : CausalLM
{
    public Qwen3ForCausalLM(DecoderConfig c, ScalarType dtype, Device device) : base(LlamaForCausalLM.Check(c, ModelFamily.Qwen3), dtype, device) { }
}

/// <summary>HF <c>MistralForCausalLM</c>: sliding-window attention on every layer when configured.</summary>
public sealed class MistralForCausalLM : CausalLM
{
    public MistralForCausalLM(DecoderConfig c, ScalarType dtype, Device device) : base(LlamaForCausalLM.Check(c, ModelFamily.Mistral), dtype, device) { }
}
