using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// The first Eagle-3 decoder layer (speculators' <c>Eagle3FirstLayerMixin</c>, vLLM's layer 0): input
/// <c>[embedding | hidden]</c> of width 2H; <c>input_layernorm</c> normalizes the embedding half and
/// <c>hidden_norm</c> the hidden half; the residual is the raw hidden half, or the normed one when
/// <c>norm_before_residual</c>; q/k/v project from 2H (modeling's <see cref="Attention"/> with
/// <c>InFeatures = 2H</c>), then the usual post-attention norm and MLP at width H.
/// </summary>
public sealed class Eagle3FirstLayer : nn.Module<Tensor, Tensor, Tensor, IAttentionBackend, Tensor>
{
#pragma warning disable IDE1006 // field names are checkpoint keys
    public RMSNorm input_layernorm;
    public RMSNorm hidden_norm;
    public Modeling.Attention self_attn;
    public RMSNorm post_attention_layernorm;
    public Mlp mlp;
#pragma warning restore IDE1006

    public int HiddenSize { get; }
    public bool NormBeforeResidual { get; }

    public Eagle3FirstLayer(DecoderConfig c, bool normBeforeResidual, ScalarType dtype, Device device) : base(nameof(Eagle3FirstLayer))
    {
        HiddenSize = c.HiddenSize;
        NormBeforeResidual = normBeforeResidual;
        input_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        hidden_norm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        self_attn = new Modeling.Attention(new AttentionOptions
        {
            InFeatures = 2 * c.HiddenSize,
            OutFeatures = c.HiddenSize,
            NumHeads = c.NumHeads,
            NumKvHeads = c.NumKvHeads,
            HeadDim = c.HeadDim,
            QkvBias = c.QkvBias,
            OProjBias = c.OProjBias,
            QkNorm = c.QkNorm,
            RmsNormEps = c.RmsNormEps,
            SlidingWindow = c.SlidingWindowFor(0),
            LayerIndex = 0,
        }, dtype, device);
        post_attention_layernorm = new RMSNorm(c.HiddenSize, c.RmsNormEps, dtype, device);
        mlp = new Mlp(c.HiddenSize, c.IntermediateSize, c.HiddenSize, c.HiddenAct, c.MlpBias, dtype, device);
        RegisterComponents();
    }

    /// <param name="x">[B, T, 2H]: embedding then hidden state</param>
    /// <param name="cos">RoPE cos [B, T, rotary_dim]</param>
    /// <param name="sin">RoPE sin</param>
    /// <param name="backend">attention computation (KV cache at inference, TTT masks in training)</param>
    /// <returns>[B, T, H], the residual stream after the layer</returns>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin, IAttentionBackend backend)
    {
        if (x.dim() != 3 || x.shape[2] != 2 * HiddenSize)
            throw new SpeculatorsException($"Eagle-3 first layer expects [batch, tokens, {2 * HiddenSize}] (embedding | hidden), got [{string.Join(", ", x.shape)}].");
        using var scope = NewDisposeScope();
        var emb = x.narrow(2, 0, HiddenSize);
        var hid = x.narrow(2, HiddenSize, HiddenSize);
        var residual = hid;
        emb = input_layernorm.call(emb);
        hid = hidden_norm.call(hid);
        if (NormBeforeResidual) residual = hid;
        var attnIn = torch.cat([emb, hid], 2);
        var h = residual.add(self_attn.call(attnIn, cos, sin, backend));
        h = h.add(mlp.call(post_attention_layernorm.call(h)));
        return h.MoveToOuterDisposeScope();
    }
}
