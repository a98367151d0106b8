using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary><c>--optimizer</c> choices.</summary>
public enum OptimizerKind
{
    /// <summary>One AdamW over every trainable parameter (our default).</summary>
    AdamW,
    /// <summary>Muon for the hidden 2-D matrices, AdamW for everything else (the Python tool's default).</summary>
    Muon,
}

/// <summary>Optimizer settings with the defaults of the design handbook and the Python tool's flags.</summary>
public sealed record OptimizerOptions
{
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;

    /// <summary><c>--lr</c>: AdamW (base group) learning rate.</summary>
    public double Lr { get; init; } = 1e-4;

    /// <summary><c>--weight-decay</c> of AdamW.</summary>
    public double WeightDecay { get; init; } = 0.01;

    public double Beta1 { get; init; } = 0.9;
    public double Beta2 { get; init; } = 0.999;
    public double Eps { get; init; } = 1e-8;

    /// <summary><c>--muon-lr</c>; null means 10 × <see cref="Lr"/>.</summary>
    public double? MuonLr { get; init; }

    public double MuonMomentum { get; init; } = 0.95;
    public double MuonWeightDecay { get; init; } = 0.1;
    public int MuonNsSteps { get; init; } = 5;
    public MuonLrAdjustment MuonAdjustLr { get; init; } = MuonLrAdjustment.MatchRmsAdamW;

    /// <summary>
    /// dtype of Muon's Newton–Schulz iteration; null chooses bf16 (torch's choice) where the
    /// parameters' device has fast bf16 matmul and fp32 elsewhere (<see cref="Precision.HasFastBf16"/>).
    /// </summary>
    public ScalarType? MuonNsDtype { get; init; }

    public double ResolvedMuonLr => MuonLr ?? 10.0 * Lr;

    /// <summary>Parses <c>--optimizer</c>.</summary>
    public static OptimizerKind ParseKind(string text, string source = "--optimizer") => text.Trim().ToLowerInvariant() switch
    {
        "adamw" => OptimizerKind.AdamW,
        "muon" => OptimizerKind.Muon,
        _ => throw new SpeculatorsException($"{source}: expected adamw or muon, got '{text}'."),
    };

    /// <summary>Parses <c>--muon-adjust-lr-fn</c>.</summary>
    public static MuonLrAdjustment ParseAdjustment(string text, string source = "--muon-adjust-lr-fn") => text.Trim() switch
    {
        "match_rms_adamw" => MuonLrAdjustment.MatchRmsAdamW,
        "original" => MuonLrAdjustment.Original,
        _ => throw new SpeculatorsException($"{source}: expected match_rms_adamw or original, got '{text}'."),
    };
}

/// <summary>Builds the optimizers the trainer steps together, with the speculators parameter split for Muon.</summary>
public static class OptimizerFactory
{
    /// <summary>
    /// The Muon/AdamW split: a trainable parameter goes to Muon when it is 2-D with both dimensions
    /// &gt; 1 and its name contains neither <c>embed_tokens</c> nor <c>lm_head</c>; everything else
    /// (norm weights, biases, 3-D tensors, trainable embeddings or heads) goes to AdamW.
    /// </summary>
    public static (List<NamedParameter> Muon, List<NamedParameter> AdamW) SplitForMuon(IEnumerable<NamedParameter> parameters)
    {
        var muon = new List<NamedParameter>();
        var adamw = new List<NamedParameter>();
        foreach (var p in parameters)
        {
            bool matrix = p.Tensor.dim() == 2 && p.Tensor.shape[0] > 1 && p.Tensor.shape[1] > 1;
            bool excluded = p.Name.Contains("embed_tokens", StringComparison.Ordinal) || p.Name.Contains("lm_head", StringComparison.Ordinal);
            (matrix && !excluded ? muon : adamw).Add(p);
        }
        return (muon, adamw);
    }

    /// <summary>
    /// The optimizers for <paramref name="parameters"/> (frozen ones, <c>requires_grad == false</c>,
    /// are skipped): <c>[AdamW]</c>, or <c>[Muon, AdamW]</c> (either omitted when it would be empty).
    /// </summary>
    public static IReadOnlyList<Optimizer> Build(IEnumerable<NamedParameter> parameters, OptimizerOptions options)
    {
        var trainable = parameters.Where(p => p.Tensor.requires_grad).ToList();
        if (trainable.Count == 0) throw new SpeculatorsException("no trainable parameters to optimize (is every parameter frozen?).");
        switch (options.Kind)
        {
            case OptimizerKind.AdamW:
                return new Optimizer[]
                {
                    new AdamW(new[] { new ParamGroup("AdamW", trainable, options.Lr, options.WeightDecay) }, options.Beta1, options.Beta2, options.Eps),
                };
            case OptimizerKind.Muon:
            {
                var (muonParams, adamParams) = SplitForMuon(trainable);
                var list = new List<Optimizer>();
                if (muonParams.Count > 0)
                {
                    var nsDtype = options.MuonNsDtype ?? (Precision.HasFastBf16(muonParams[0].Tensor.device_type) ? ScalarType.BFloat16 : ScalarType.Float32);
                    if (options.MuonNsDtype is null && nsDtype != ScalarType.BFloat16)
                        Util.Log.WarnOnce("muon-ns-fp32",
                            "this CPU has no native bf16 matmul (avx512_bf16/amx_bf16); Muon's Newton–Schulz iteration runs in fp32 instead of torch's bf16.");
                    list.Add(new Muon(new[] { new ParamGroup("Muon", muonParams, options.ResolvedMuonLr, options.MuonWeightDecay) },
                        options.MuonMomentum, nesterov: true, options.MuonNsSteps, options.MuonAdjustLr, nsDtype: nsDtype));
                }
                if (adamParams.Count > 0)
                    list.Add(new AdamW(new[] { new ParamGroup("AdamW", adamParams, options.Lr, options.WeightDecay) }, options.Beta1, options.Beta2, options.Eps));
                return list;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(options));
        }
    }

    /// <summary>Named parameters of a module in registration order (its state-dict keys).</summary>
    public static List<NamedParameter> NamedParameters(TorchSharp.torch.nn.Module module) =>
        module.named_parameters().Select(p => new NamedParameter(p.name, p.parameter)).ToList();

    /// <summary>Current learning rates for logging: <c>lr</c> alone for one optimizer, else <c>lr/{name}</c> each.</summary>
    public static Dictionary<string, double> LearningRates(IReadOnlyList<Optimizer> optimizers)
    {
        var result = new Dictionary<string, double>();
        if (optimizers.Count == 1) result["lr"] = optimizers[0].ParamGroups[0].Lr;
        else foreach (var o in optimizers) result[$"lr/{o.Name}"] = o.ParamGroups[0].Lr;
        return result;
    }
}
