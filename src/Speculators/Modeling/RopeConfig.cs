using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>The RoPE variants we implement (transformers' <c>rope_type</c> names).</summary>
public enum RopeType { Default, Linear, Dynamic, Llama3, Yarn }

/// <summary>
/// Resolved rotary-embedding parameters for one attention layer type. Built from an HF config by
/// <see cref="Formats.HfConfig"/>, or directly by code that synthesizes a decoder (the Eagle-3 draft).
/// <see cref="InverseFrequencies"/> and <see cref="AttentionScaling"/> reproduce transformers'
/// <c>modeling_rope_utils</c> in float32, op for op, so the tables match HF and vLLM bit for bit where
/// torch does.
/// </summary>
public sealed record RopeConfig
{
    public RopeType Type { get; init; } = RopeType.Default;
    /// <summary><c>rope_theta</c> (the base).</summary>
    public double Theta { get; init; } = 10000.0;
    /// <summary>The attention head dimension the rotary dimension is taken from.</summary>
    public required int HeadDim { get; init; }
    public double PartialRotaryFactor { get; init; } = 1.0;
    /// <summary>Scaling factor (linear, dynamic, llama3, yarn).</summary>
    public double Factor { get; init; } = 1.0;
    /// <summary>Pre-extension context length (llama3, yarn).</summary>
    public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>The model's <c>max_position_embeddings</c> (dynamic NTK grows beyond it).</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;
    public double LowFreqFactor { get; init; } = 1.0;
    public double HighFreqFactor { get; init; } = 4.0;
    /// <summary>YaRN: explicit <c>attention_factor</c> (else derived from factor / mscale).</summary>
    public double? AttentionFactor { get; init; }
    public double BetaFast { get; init; } = 32;
    public double BetaSlow { get; init; } = 1;
    public double? Mscale { get; init; }
    public double? MscaleAllDim { get; init; }
    /// <summary>YaRN: round the correction range to whole dimensions (transformers default true).</summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Number of rotated channels per head: <c>int(head_dim × partial_rotary_factor)</c>.</summary>
    public int RotaryDim => (int)(HeadDim * PartialRotaryFactor);

    public static string TypeName(RopeType t) => t switch
    {
        RopeType.Default => "default",
        RopeType.Linear => "linear",
        RopeType.Dynamic => "dynamic",
        RopeType.Llama3 => "llama3",
        RopeType.Yarn => "yarn",
        _ => t.ToString(),
    };

    public static readonly IReadOnlyList<string> SupportedTypeNames = ["default", "linear", "dynamic", "llama3", "yarn"];

    public static bool TryParseType(string name, out RopeType type)
    {
        switch (name)
        {
            case "default": type = RopeType.Default; return true;
            case "linear": type = RopeType.Linear; return true;
            case "dynamic": type = RopeType.Dynamic; return true;
            case "llama3": type = RopeType.Llama3; return true;
            case "yarn": type = RopeType.Yarn; return true;
            default: type = RopeType.Default; return false;
        }
    }

    /// <summary>Checks the values; <paramref name="where"/> prefixes messages (e.g. "config.json rope_scaling").</summary>
    public void Validate(string where)
    {
        if (HeadDim <= 0) throw new SpeculatorsException($"{where}: head_dim must be positive, found {HeadDim}.");
        if (!(PartialRotaryFactor > 0 && PartialRotaryFactor <= 1))
            throw new SpeculatorsException($"{where}: partial_rotary_factor must be in (0, 1], found {PartialRotaryFactor}.");
        if (RotaryDim < 2 || RotaryDim % 2 != 0)
            throw new SpeculatorsException($"{where}: the rotary dimension int(head_dim {HeadDim} × partial_rotary_factor {PartialRotaryFactor}) = {RotaryDim} must be even and at least 2.");
        if (!(Theta > 0)) throw new SpeculatorsException($"{where}: rope_theta must be positive, found {Theta}.");
        if (Type != RopeType.Default && !(Factor > 0))
            throw new SpeculatorsException($"{where}: factor must be positive for rope_type '{TypeName(Type)}', found {Factor}.");
        if (Type == RopeType.Dynamic && RotaryDim <= 2)
            throw new SpeculatorsException($"{where}: dynamic RoPE needs a rotary dimension above 2 (its base exponent is dim/(dim-2)).");
        if ((Type == RopeType.Llama3 || Type == RopeType.Yarn) && !(OriginalMaxPositionEmbeddings > 0))
            throw new SpeculatorsException($"{where}: original_max_position_embeddings must be a positive integer for rope_type '{TypeName(Type)}'.");
        if (Type == RopeType.Llama3 && !(HighFreqFactor > LowFreqFactor))
            throw new SpeculatorsException($"{where}: high_freq_factor ({HighFreqFactor}) must be greater than low_freq_factor ({LowFreqFactor}).");
        if (MaxPositionEmbeddings <= 0)
            throw new SpeculatorsException($"{where}: max_position_embeddings must be positive, found {MaxPositionEmbeddings}.");
    }

    static double GetMscale(double scale, double mscale = 1.0) => scale <= 1 ? 1.0 : 0.1 * mscale * Math.Log(scale) + 1.0;

    /// <summary>
    /// The factor cos/sin are multiplied by: YaRN's attention factor (explicit, or
    /// <c>0.1·ln(factor)+1</c>, or the mscale ratio), 1 for every other type.
    /// </summary>
    public double AttentionScaling
    {
        get
        {
            if (Type != RopeType.Yarn) return 1.0;
            if (AttentionFactor is double a) return a;
            if (Mscale is double m && m != 0 && MscaleAllDim is double mad && mad != 0)
                return GetMscale(Factor, m) / GetMscale(Factor, mad);
            return GetMscale(Factor);
        }
    }

    /// <summary>
    /// Inverse frequencies [RotaryDim/2] in float32 on the CPU. <paramref name="seqLen"/> (largest
    /// position + 1) matters only for dynamic NTK, which rescales the base once a sequence grows past
    /// <see cref="MaxPositionEmbeddings"/>.
    /// </summary>
    public Tensor InverseFrequencies(long seqLen = 0)
    {
        using var scope = NewDisposeScope();
        int dim = RotaryDim;
        Tensor result = Type switch
        {
            RopeType.Default => DefaultInvFreq(Theta, dim),
            RopeType.Linear => DefaultInvFreq(Theta, dim).div_(Factor),
            RopeType.Dynamic => DynamicInvFreq(dim, seqLen),
            RopeType.Llama3 => Llama3InvFreq(dim),
            RopeType.Yarn => YarnInvFreq(dim),
            _ => throw new InvalidOperationException(Type.ToString()),
        };
        return result.MoveToOuterDisposeScope();
    }

    // base ** (arange(0, dim, 2).float() / dim), then 1.0 / x (torch computes that as reciprocal).
    static Tensor Exponents(int dim) => torch.arange(0, dim, 2, ScalarType.Int64).to(ScalarType.Float32).div(dim);

    static Tensor Power(double @base, Tensor exponent) => torch.full_like(exponent, @base).pow(exponent);

    static Tensor DefaultInvFreq(double theta, int dim) => Power(theta, Exponents(dim)).reciprocal();

    Tensor DynamicInvFreq(int dim, long seqLen)
    {
        // transformers computes the initial (seq_len ≤ max) tables with Python floats, where the base is
        // unchanged; growth past max_position_embeddings is computed with float32 tensors.
        if (seqLen <= MaxPositionEmbeddings) return DefaultInvFreq(Theta, dim);
        var s = torch.tensor(seqLen, ScalarType.Int64);
        var ratio = s.mul(Factor).div(MaxPositionEmbeddings).sub(Factor - 1);
        var newBase = ratio.pow((double)dim / (dim - 2)).mul(Theta);
        return newBase.pow(Exponents(dim)).reciprocal();
    }

    Tensor Llama3InvFreq(int dim)
    {
        var invFreq = DefaultInvFreq(Theta, dim);
        double oldContext = OriginalMaxPositionEmbeddings!.Value;
        double lowFreqWavelen = oldContext / LowFreqFactor;
        double highFreqWavelen = oldContext / HighFreqFactor;
        var wavelen = invFreq.reciprocal().mul(2 * Math.PI);
        var llama = torch.where(wavelen.gt(lowFreqWavelen), invFreq.div(Factor), invFreq);
        var smooth = wavelen.reciprocal().mul(oldContext).sub(LowFreqFactor).div(HighFreqFactor - LowFreqFactor);
        var smoothed = smooth.neg().add(1).mul(llama).div(Factor).add(smooth.mul(llama));
        var isMedium = wavelen.lt(highFreqWavelen).logical_not().logical_and(wavelen.gt(lowFreqWavelen).logical_not());
        return torch.where(isMedium, smoothed, llama);
    }

    /// <summary>YaRN correction range (low, high) over rotary dimensions, as transformers computes it.</summary>
    public (double Low, double High) YarnCorrectionRange()
    {
        int dim = RotaryDim;
        double orig = OriginalMaxPositionEmbeddings!.Value;
        double CorrectionDim(double rotations) => dim * Math.Log(orig / (rotations * 2 * Math.PI)) / (2 * Math.Log(Theta));
        double low = CorrectionDim(BetaFast), high = CorrectionDim(BetaSlow);
        if (Truncate)
        {
            low = Math.Floor(low);
            high = Math.Ceiling(high);
        }
        return (Math.Max(low, 0), Math.Min(high, dim - 1));
    }

    Tensor YarnInvFreq(int dim)
    {
        var posFreqs = Power(Theta, Exponents(dim));
        var extrapolation = posFreqs.reciprocal();
        var interpolation = posFreqs.mul(Factor).reciprocal();
        var (low, high) = YarnCorrectionRange();
        if (low == high) high += 0.001;
        var ramp = torch.arange(dim / 2, ScalarType.Float32).sub(low).div(high - low).clamp(0, 1);
        var extrapolationFactor = ramp.neg().add(1);
        return interpolation.mul(extrapolationFactor.neg().add(1)).add(extrapolation.mul(extrapolationFactor));
    }
}
