using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>How Muon scales its learning rate by the matrix shape [A, B] (torch's <c>adjust_lr_fn</c>).</summary>
public enum MuonLrAdjustment
{
    /// <summary><c>original</c> (Keller Jordan): lr · √max(1, A/B). torch's default.</summary>
    Original,
    /// <summary><c>match_rms_adamw</c> (Moonshot): lr · 0.2 · √max(A, B). The speculators default.</summary>
    MatchRmsAdamW,
}

/// <summary>
/// Muon (momentum + Newton–Schulz orthogonalization) for 2-D weight matrices, matching
/// <c>torch.optim.Muon</c> (torch 2.9, <c>torch/optim/_muon.py</c>, single-tensor path):
/// <code>
/// B ← lerp(B, g, 1 − μ)                       (momentum buffer, fp32)
/// U ← nesterov ? lerp(g, B, μ) : B
/// O ← NS5(U)  in bf16: X = U/max(‖U‖_F, eps) (transposed when rows &gt; cols),
///              5× { A = X·Xᵀ ; X = a·X + (b·A + (c·A)·A)·X },  (a, b, c) = (3.4445, −4.7750, 2.0315)
/// θ ← θ·(1 − lr·wd) − adjust(lr, shape)·O
/// </code>
/// Muon needs the whole matrix of a parameter at once (the orthogonalization is not elementwise):
/// a sharded (FSDP-style) trainer must gather each Muon parameter's gradient before the update.
/// </summary>
public sealed class Muon : Optimizer
{
    public const double DefaultA = 3.4445, DefaultB = -4.7750, DefaultC = 2.0315, DefaultEps = 1e-7;
    static readonly string[] Names = { "momentum_buffer" };

    public double Momentum { get; }
    public bool Nesterov { get; }
    public int NsSteps { get; }
    public double Eps { get; }
    public MuonLrAdjustment Adjustment { get; }
    public (double A, double B, double C) Coefficients { get; }

    /// <summary>
    /// dtype of the Newton–Schulz iteration: bf16 as torch (default), or fp32 on CPUs without native
    /// bf16 matmul, where bf16 is emulated and hundreds of times slower (see <see cref="Precision.HasFastBf16"/>).
    /// </summary>
    public ScalarType NsDtype { get; }

    public Muon(IReadOnlyList<ParamGroup> groups, double momentum = 0.95, bool nesterov = true, int nsSteps = 5,
        MuonLrAdjustment adjustment = MuonLrAdjustment.Original, double eps = DefaultEps,
        (double A, double B, double C)? coefficients = null, string name = "Muon", ScalarType nsDtype = ScalarType.BFloat16)
        : base(name, groups)
    {
        if (nsDtype is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float64))
            throw new ArgumentException($"Newton–Schulz dtype must be bfloat16 (torch), float32 or float64, got {nsDtype}.", nameof(nsDtype));
        NsDtype = nsDtype;
        if (momentum < 0) throw new ArgumentOutOfRangeException(nameof(momentum), $"momentum must be >= 0, got {momentum}.");
        if (nsSteps < 0 || nsSteps >= 100) throw new ArgumentOutOfRangeException(nameof(nsSteps), $"Newton–Schulz steps must be in [0, 100), got {nsSteps}.");
        foreach (var p in Parameters)
            if (p.Tensor.dim() != 2)
                throw new ArgumentException($"Muon only updates 2-D parameters; '{p.Name}' has shape [{string.Join(", ", p.Tensor.shape)}].");
        Momentum = momentum;
        Nesterov = nesterov;
        NsSteps = nsSteps;
        Eps = eps;
        Adjustment = adjustment;
        Coefficients = coefficients ?? (DefaultA, DefaultB, DefaultC);
    }

    protected override IReadOnlyList<string> StateNames => Names;

    protected override JsonObject HyperParameters() => new()
    {
        ["momentum"] = Momentum,
        ["nesterov"] = Nesterov,
        ["ns_steps"] = NsSteps,
        ["ns_coefficients"] = new JsonArray(Coefficients.A, Coefficients.B, Coefficients.C),
        ["eps"] = Eps,
        ["adjust_lr_fn"] = Adjustment == MuonLrAdjustment.MatchRmsAdamW ? "match_rms_adamw" : "original",
        ["ns_dtype"] = Precision.Name(NsDtype),
    };

    /// <summary>The shape-adjusted learning rate torch's <c>_adjust_lr</c> computes.</summary>
    public static double AdjustLr(double lr, MuonLrAdjustment adjustment, long rows, long cols) => adjustment switch
    {
        MuonLrAdjustment.Original => lr * Math.Sqrt(Math.Max(1.0, (double)rows / cols)),
        MuonLrAdjustment.MatchRmsAdamW => lr * 0.2 * Math.Sqrt(Math.Max(rows, cols)),
        _ => throw new ArgumentOutOfRangeException(nameof(adjustment)),
    };

    /// <summary>
    /// torch's <c>_zeropower_via_newtonschulz</c>: the quintic Newton–Schulz iteration that maps
    /// <paramref name="grad"/> [A, B] to an approximately orthogonal matrix of the same shape, in
    /// <paramref name="computeDtype"/> (bf16 as torch; fp64 for reference checks).
    /// </summary>
    public static Tensor NewtonSchulz(Tensor grad, int steps = 5, double eps = DefaultEps, (double A, double B, double C)? coefficients = null,
        ScalarType computeDtype = ScalarType.BFloat16)
    {
        if (grad.dim() != 2) throw new ArgumentException($"Newton–Schulz needs a 2-D matrix, got [{string.Join(", ", grad.shape)}].", nameof(grad));
        var (a, b, c) = coefficients ?? (DefaultA, DefaultB, DefaultC);
        using var scope = NewDisposeScope();
        bool tall = grad.shape[0] > grad.shape[1];
        var x = grad.to(computeDtype, copy: true);
        if (tall) x = x.t();
        using (var norm = x.norm().clamp_min(eps)) x.div_(norm);
        for (int i = 0; i < steps; i++)
        {
            var gram = x.mm(x.t());
            var update = gram * b + (gram * c).mm(gram);
            x = x * a + update.mm(x);
        }
        if (tall) x = x.t();
        return x.MoveToOuterDisposeScope();
    }

    protected override void Update(ParamGroup group, Tensor param, Tensor grad, IReadOnlyDictionary<string, Tensor> state, long step)
    {
        var buf = state["momentum_buffer"];
        using (var w = tensor(1.0 - Momentum, ScalarType.Float32, buf.device))
            buf.lerp_(grad, w);
        Tensor update;
        if (Nesterov)
        {
            using var m = tensor(Momentum, ScalarType.Float32, buf.device);
            update = grad.lerp(buf, m);
        }
        else
        {
            update = buf;
        }
        using var ortho = NewtonSchulz(update, NsSteps, Eps, Coefficients, NsDtype);
        double adjusted = AdjustLr(group.Lr, Adjustment, param.shape[0], param.shape[1]);
        if (group.WeightDecay != 0) param.mul_(1.0 - group.Lr * group.WeightDecay);
        param.add_(ortho, -adjusted);
    }
}
