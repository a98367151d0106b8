using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>Output of <see cref="DecoderModel.Forward"/>.</summary>
/// <param name="Hidden">residual stream after the last layer run, before the final norm [B, T, H]</param>
/// <param name="Captures">one [B, T, H] tensor per requested capture id, ascending</param>
public sealed record DecoderOutput(Tensor Hidden, IReadOnlyList<Tensor> Captures);

/// <summary>
/// The decoder stack with HF key names: <c>embed_tokens</c>, <c>layers.{i}</c>, <c>norm</c>. RoPE tables are
/// computed once per forward for each distinct RoPE configuration (per layer type).
/// </summary>
public sealed class DecoderModel : nn.Module
{
#pragma warning disable IDE1006
    public Embedding embed_tokens;
    public ModuleList<DecoderLayer> layers;
    public RMSNorm norm;
#pragma warning restore IDE1006
    readonly LayerRotaries _rotaries;

    public DecoderConfig Config { get; }

    public DecoderModel(DecoderConfig c, ScalarType dtype, Device device) : base(nameof(DecoderModel))
    {
        c.Validate();
        Config = c;
        embed_tokens = new Embedding(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<DecoderLayer>();
        for (int i = 0; i < c.NumLayers; i++) layers.Add(new DecoderLayer(c, i, dtype, device));
        norm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        _rotaries = new LayerRotaries(c);
        RegisterComponents();
    }

    /// <summary>The rotary embedding used by <paramref name="layer"/>.</summary>
    public RotaryEmbedding RotaryFor(int layer) => _rotaries.For(layer);

    /// <summary>
    /// Runs the embeddings and the first <paramref name="layersToRun"/> layers (all by default).
    /// Capture id k is the input of layer k (0 = embeddings); id N the output of the last layer.
    /// </summary>
    /// <param name="inputIds">[B, T] int64, already range-checked</param>
    /// <param name="positionIds">[B, T] int64 RoPE positions</param>
    /// <param name="backend">attention computation for every layer</param>
    /// <param name="captureIds">sorted distinct ids in [0, layersToRun]</param>
    /// <param name="layersToRun">how many layers to run (for early exit when only shallow captures are needed)</param>
    public DecoderOutput Forward(Tensor inputIds, Tensor positionIds, IAttentionBackend backend,
        IReadOnlyList<int>? captureIds = null, int? layersToRun = null)
    {
        int n = layersToRun ?? Config.NumLayers;
        var ids = captureIds ?? [];
        foreach (var id in ids)
            if (id < 0 || id > n) throw new SpeculatorsException($"capture layer id {id} is outside [0, {n}].");
        using var scope = NewDisposeScope();
        var h = embed_tokens.call(inputIds);
        var tables = _rotaries.ForPositions(positionIds, h.dtype);
        var captures = new List<Tensor>(ids.Count);
        int next = 0;
        for (int i = 0; i <= n; i++)
        {
            while (next < ids.Count && ids[next] == i)
            {
                captures.Add(h.alias());
                next++;
            }
            if (i == n) break;
            var (cos, sin) = tables.For(i);
            h = layers[i].call(h, cos, sin, backend);
        }
        var output = new DecoderOutput(h.MoveToOuterDisposeScope(), captures.Select(c => c.MoveToOuterDisposeScope()).ToList());
        return output;
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            _rotaries.Dispose();
        base.Dispose(disposing);
    }
}
