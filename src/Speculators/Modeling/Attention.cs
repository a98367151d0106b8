using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>Construction options of <see cref="Attention"/>.</summary>
public sealed record AttentionOptions
{
    /// <summary>Width of the input (H; 2H for the Eagle-3 draft's first layer).</summary>
    public required int InFeatures { get; init; }
    /// <summary>Width of o_proj's output (H).</summary>
    public required int OutFeatures { get; init; }
    public required int NumHeads { get; init; }
    public required int NumKvHeads { get; init; }
    public required int HeadDim { get; init; }
    public bool QkvBias { get; init; }
    public bool OProjBias { get; init; }
    /// <summary>Per-head RMSNorm of q and k before RoPE (Qwen3).</summary>
    public bool QkNorm { get; init; }
    public double RmsNormEps { get; init; } = 1e-6;
    public int? SlidingWindow { get; init; }
    public int LayerIndex { get; init; }
    /// <summary>Softmax scale; null = head_dim^-0.5.</summary>
    public double? Scale { get; init; }
}

/// <summary>
/// Self-attention with HF key names (<c>q_proj</c>, <c>k_proj</c>, <c>v_proj</c>, <c>o_proj</c>, optional
/// <c>q_norm</c>/<c>k_norm</c>): project, split heads, normalize q/k per head, apply RoPE, then hand
/// q/k/v to the caller's <see cref="IAttentionBackend"/> and project its output back.
/// </summary>
public sealed class Attention : nn.Module<Tensor, Tensor, Tensor, IAttentionBackend, Tensor>
{
#pragma warning disable IDE1006
    public Linear q_proj;
    public Linear k_proj;
    public Linear v_proj;
    public Linear o_proj;
    public RMSNorm? q_norm;
    public RMSNorm? k_norm;
#pragma warning restore IDE1006
    public AttentionOptions Options { get; }
    public AttentionLayerInfo Info { get; }

    public Attention(AttentionOptions o, ScalarType dtype, Device device) : base(nameof(Attention))
    {
        if (o.NumHeads <= 0 || o.NumKvHeads <= 0 || o.NumHeads % o.NumKvHeads != 0)
            throw new SpeculatorsException($"attention: num_attention_heads ({o.NumHeads}) must be a positive multiple of num_key_value_heads ({o.NumKvHeads}).");
        Options = o;
        Info = new AttentionLayerInfo(o.LayerIndex, o.NumHeads, o.NumKvHeads, o.HeadDim, o.Scale ?? 1.0 / Math.Sqrt(o.HeadDim), o.SlidingWindow);
        q_proj = new Linear(o.InFeatures, o.NumHeads * o.HeadDim, o.QkvBias, dtype, device);
        k_proj = new Linear(o.InFeatures, o.NumKvHeads * o.HeadDim, o.QkvBias, dtype, device);
        v_proj = new Linear(o.InFeatures, o.NumKvHeads * o.HeadDim, o.QkvBias, dtype, device);
        o_proj = new Linear(o.NumHeads * o.HeadDim, o.OutFeatures, o.OProjBias, dtype, device);
        if (o.QkNorm)
        {
            q_norm = new RMSNorm(o.HeadDim, o.RmsNormEps, dtype, device);
            k_norm = new RMSNorm(o.HeadDim, o.RmsNormEps, dtype, device);
        }
        RegisterComponents();
    }

    /// <summary>Projected, normed and rotated q [B, heads, T, hd], k and v [B, kv_heads, T, hd].</summary>
    public (Tensor Q, Tensor K, Tensor V) ProjectQkv(Tensor hidden, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long b = hidden.shape[0], t = hidden.shape[1];
        var q = q_proj.call(hidden).view(b, t, Options.NumHeads, Options.HeadDim);
        var k = k_proj.call(hidden).view(b, t, Options.NumKvHeads, Options.HeadDim);
        var v = v_proj.call(hidden).view(b, t, Options.NumKvHeads, Options.HeadDim).transpose(1, 2);
        if (q_norm != null) q = q_norm.call(q);
        if (k_norm != null) k = k_norm.call(k);
        q = RotaryEmbedding.Apply(q.transpose(1, 2), cos, sin);
        k = RotaryEmbedding.Apply(k.transpose(1, 2), cos, sin);
        return (q.MoveToOuterDisposeScope(), k.MoveToOuterDisposeScope(), v.MoveToOuterDisposeScope());
    }

    /// <param name="hidden">[B, T, in_features]</param>
    /// <param name="cos">RoPE cos [B, T, rotary_dim] in the model dtype</param>
    /// <param name="sin">RoPE sin [B, T, rotary_dim]</param>
    /// <param name="backend">the attention computation</param>
    /// <returns>[B, T, out_features]</returns>
    public override Tensor forward(Tensor hidden, Tensor cos, Tensor sin, IAttentionBackend backend)
    {
        if (hidden.dim() != 3 || hidden.shape[2] != Options.InFeatures)
            throw new SpeculatorsException(
                $"attention expects [batch, tokens, {Options.InFeatures}], got [{string.Join(", ", hidden.shape)}].");
        using var scope = NewDisposeScope();
        var (q, k, v) = ProjectQkv(hidden, cos, sin);
        var o = backend.Attend(q, k, v, Info);
        long b = hidden.shape[0], t = hidden.shape[1];
        if (o.dim() != 4 || o.shape[0] != b || o.shape[1] != Options.NumHeads || o.shape[2] != t || o.shape[3] != Options.HeadDim)
            throw new SpeculatorsException(
                $"attention backend returned [{string.Join(", ", o.shape)}], expected [{b}, {Options.NumHeads}, {t}, {Options.HeadDim}].");
        var merged = o.transpose(1, 2).reshape(b, t, Options.NumHeads * Options.HeadDim);
        return o_proj.call(merged).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Pre-norm decoder layer: <c>h += self_attn(input_layernorm(h)); h += mlp(post_attention_layernorm(h))</c>.
/// </summary>
public sealed class DecoderLayer : nn.Module<Tensor, Tensor, Tensor, IAttentionBackend, Tensor>
{
#pragma warning disable IDE1006
    public RMSNorm input_layernorm;
    public Attention self_attn;
    public RMSNorm post_attention_layernorm;
    public Mlp mlp;
#pragma warning restore IDE1006

    public DecoderLayer(DecoderConfig c, int layerIndex, ScalarType dtype, Device device) : base(nameof(DecoderLayer))
    {
        input_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        self_attn = new Attention(new AttentionOptions
        {
            InFeatures = c.HiddenSize,
            OutFeatures = c.HiddenSize,
            NumHeads = c.NumHeads,
            NumKvHeads = c.NumKvHeads,
            HeadDim = c.HeadDim,
            QkvBias = c.QkvBias,
            OProjBias = c.OProjBias,
            QkNorm = c.QkNorm,
            RmsNormEps = c.RmsNormEps,
            SlidingWindow = c.SlidingWindowFor(layerIndex),
            LayerIndex = layerIndex,
        }, dtype, device);
        post_attention_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        mlp = new Mlp(c.HiddenSize, c.IntermediateSize, c.HiddenSize, c.HiddenAct, c.MlpBias, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor hidden, Tensor cos, Tensor sin, IAttentionBackend backend)
    {
        using var scope = NewDisposeScope();
        var h = hidden.add(self_attn.call(input_layernorm.call(hidden), cos, sin, backend));
        h = h.add(mlp.call(post_attention_layernorm.call(h)));
        return h.MoveToOuterDisposeScope();
    }
}
