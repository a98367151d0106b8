using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// AdamW with decoupled weight decay, the update order of <c>torch.optim.AdamW</c>
/// (single-tensor path, no amsgrad):
/// <code>
/// θ ← θ·(1 − lr·wd)
/// m ← lerp(m, g, 1 − β1)              v ← β2·v + (1 − β2)·g²
/// θ ← θ − (lr / (1 − β1^t)) · m / (√v / √(1 − β2^t) + ε)
/// </code>
/// with t the parameter's own step count. Defaults β = (0.9, 0.999), ε = 1e-8.
/// </summary>
public sealed class AdamW : Optimizer
{
    static readonly string[] Names = { "exp_avg", "exp_avg_sq" };

    public double Beta1 { get; }
    public double Beta2 { get; }
    public double Eps { get; }

    public AdamW(IReadOnlyList<ParamGroup> groups, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8, string name = "AdamW")
        : base(name, groups)
    {
        if (beta1 < 0 || beta1 >= 1) throw new ArgumentOutOfRangeException(nameof(beta1), $"beta1 must be in [0, 1), got {beta1}.");
        if (beta2 < 0 || beta2 >= 1) throw new ArgumentOutOfRangeException(nameof(beta2), $"beta2 must be in [0, 1), got {beta2}.");
        if (eps < 0) throw new ArgumentOutOfRangeException(nameof(eps), $"eps must be >= 0, got {eps}.");
        Beta1 = beta1;
        Beta2 = beta2;
        Eps = eps;
    }

    /// <summary>One group over <paramref name="parameters"/>.</summary>
    public AdamW(IEnumerable<NamedParameter> parameters, double lr, double weightDecay = 0.01, double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8)
        : this(new[] { new ParamGroup("default", parameters, lr, weightDecay) }, beta1, beta2, eps) { }

    protected override IReadOnlyList<string> StateNames => Names;

    protected override JsonObject HyperParameters() => new()
    {
        ["betas"] = new JsonArray(Beta1, Beta2),
        ["eps"] = Eps,
    };

    protected override void Update(ParamGroup group, Tensor param, Tensor grad, IReadOnlyDictionary<string, Tensor> state, long step)
    {
        var expAvg = state["exp_avg"];
        var expAvgSq = state["exp_avg_sq"];
        double lr = group.Lr;
        if (group.WeightDecay != 0) param.mul_(1.0 - lr * group.WeightDecay);
        using (var w = tensor(1.0 - Beta1, ScalarType.Float32, expAvg.device))
            expAvg.lerp_(grad, w);
        expAvgSq.mul_(Beta2).addcmul_(grad, grad, 1.0 - Beta2);
        double biasCorrection1 = 1.0 - Math.Pow(Beta1, step);
        double biasCorrection2 = 1.0 - Math.Pow(Beta2, step);
        double stepSize = lr / biasCorrection1;
        double biasCorrection2Sqrt = Math.Sqrt(biasCorrection2);
        using var denom = expAvgSq.sqrt().div_(biasCorrection2Sqrt).add_(Eps);
        param.addcdiv_(expAvg, denom, -stepSize);
    }
}
