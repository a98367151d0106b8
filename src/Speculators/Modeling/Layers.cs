using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Modeling;

/// <summary>
/// Parameter allocation without initialization: a verifier's weights are overwritten by the
/// checkpoint right away, so random init (seconds for a 7B model) would be wasted.
/// </summary>
internal static class Params
{
    public static Parameter Empty(long[] shape, ScalarType dtype, Device device) =>
        new(torch.empty(shape, dtype, device), requires_grad: true);
}

/// <summary><c>y = x·Wᵀ + b</c> with HF key names <c>weight</c> [out, in] and optional <c>bias</c> [out].</summary>
public sealed class Linear : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006 // field names are checkpoint keys
    public Parameter weight;
    public Parameter? bias;
#pragma warning restore IDE1006
    public int InFeatures { get; }
    public int OutFeatures { get; }

    public Linear(int inFeatures, int outFeatures, bool hasBias, ScalarType dtype, Device device) : base(nameof(Linear))
    {
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        weight = Params.Empty([outFeatures, inFeatures], dtype, device);
        bias = hasBias ? Params.Empty([outFeatures], dtype, device) : null;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.shape[^1] != InFeatures)
            throw new SpeculatorsException($"linear layer expects {InFeatures} input features, got a tensor of shape [{string.Join(", ", x.shape)}].");
        // Inside a training Autocast region this computes in the compute dtype (bf16) against the fp32 masters;
        // outside one it is exactly F.linear (inference is unaffected).
        return Training.Autocast.Linear(x, weight, bias);
    }
}

/// <summary>Token embedding table <c>weight</c> [vocab, hidden].</summary>
public sealed class Embedding : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    public Parameter weight;
#pragma warning restore IDE1006
    public int NumEmbeddings { get; }
    public int Dim { get; }

    public Embedding(int numEmbeddings, int dim, ScalarType dtype, Device device) : base(nameof(Embedding))
    {
        NumEmbeddings = numEmbeddings;
        Dim = dim;
        weight = Params.Empty([numEmbeddings, dim], dtype, device);
        RegisterComponents();
    }

    /// <summary>Looks up ids of any shape; ids must be in [0, vocab) (the caller checks, see <see cref="CausalLM"/>).</summary>
    public override Tensor forward(Tensor ids)
    {
        using var flat = ids.reshape(-1);
        using var rows = weight.index_select(0, flat);
        long[] shape = [.. ids.shape, Dim];
        return rows.view(shape);
    }
}

/// <summary>
/// HF RMSNorm: in float32 <c>x·rsqrt(mean(x², −1) + eps)</c>, cast back to the input dtype, then
/// multiplied by <c>weight</c> (so a bf16 model multiplies in bf16, exactly as transformers does).
/// </summary>
public sealed class RMSNorm : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    public Parameter weight;
#pragma warning restore IDE1006
    public double Eps { get; }
    public int Dim { get; }

    public RMSNorm(int dim, double eps, ScalarType dtype, Device device) : base(nameof(RMSNorm))
    {
        Dim = dim;
        Eps = eps;
        weight = Params.Empty([dim], dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        if (x.shape[^1] != Dim)
            throw new SpeculatorsException($"RMSNorm over {Dim} features got a tensor of shape [{string.Join(", ", x.shape)}].");
        using var scope = NewDisposeScope();
        var inputType = x.dtype;
        var h = x.to(ScalarType.Float32);
        var variance = h.pow(2).mean([-1L], keepdim: true);
        h = h.mul(variance.add(Eps).rsqrt());
        return weight.mul(h.to(inputType)).MoveToOuterDisposeScope();
    }
}

/// <summary>Gated MLP <c>down(act(gate(x)) · up(x))</c> (SwiGLU for silu), with HF key names.</summary>
public sealed class Mlp : nn.Module<Tensor, Tensor>
{
#pragma warning disable IDE1006
    public Linear gate_proj;
    public Linear up_proj;
    public Linear down_proj;
#pragma warning restore IDE1006
    public string Activation { get; }

    /// <param name="inFeatures">input width (the Eagle-3 first layer feeds its normed residual here, width H)</param>
    /// <param name="outFeatures">output width</param>
    public Mlp(int inFeatures, int intermediate, int outFeatures, string activation, bool bias, ScalarType dtype, Device device) : base(nameof(Mlp))
    {
        if (!Activations.IsSupported(activation))
            throw new SpeculatorsException($"hidden_act '{activation}' is not supported (supported: {string.Join(", ", Activations.Supported)}).");
        Activation = activation;
        gate_proj = new Linear(inFeatures, intermediate, bias, dtype, device);
        up_proj = new Linear(inFeatures, intermediate, bias, dtype, device);
        down_proj = new Linear(intermediate, outFeatures, bias, dtype, device);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var g = Act(gate_proj.call(x), Activation);
        return down_proj.call(g.mul(up_proj.call(x))).MoveToOuterDisposeScope();
    }

    /// <summary>transformers' ACT2FN for the supported names.</summary>
    public static Tensor Act(Tensor x, string name) => name switch
    {
        "silu" or "swish" => F.silu(x),
        "gelu" => F.gelu(x),
        "gelu_pytorch_tanh" => F.gelu(x, GELU.Approximate.tanh),
        // NewGELUActivation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
        "gelu_new" => x.mul(0.5).mul(x.pow(3.0).mul(0.044715).add(x).mul(Math.Sqrt(2.0 / Math.PI)).tanh().add(1.0)),
        "relu" => F.relu(x),
        _ => throw new SpeculatorsException($"hidden_act '{name}' is not supported (supported: {string.Join(", ", Activations.Supported)})."),
    };
}
