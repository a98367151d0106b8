using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>
/// Closed-form RoPE in double precision, written from the published formulas (transformers'
/// modeling_rope_utils) and taking only the parameter values of a <see cref="RopeConfig"/>.
/// </summary>
internal static class RopeMath
{
    static double Mscale(double s, double m = 1) => s <= 1 ? 1 : 0.1 * m * Math.Log(s) + 1;

    public static double[] InvFreq(RopeConfig r, long seqLen = 0)
    {
        int d = r.RotaryDim;
        double theta = r.Theta;
        if (r.Type == RopeType.Dynamic && seqLen > r.MaxPositionEmbeddings)
            theta *= Math.Pow(r.Factor * seqLen / r.MaxPositionEmbeddings - (r.Factor - 1), (double)d / (d - 2));
        var f = Enumerable.Range(0, d / 2).Select(i => Math.Pow(theta, -2.0 * i / d)).ToArray();
        switch (r.Type)
        {
            case RopeType.Linear:
                return f.Select(x => x / r.Factor).ToArray();
            case RopeType.Llama3:
            {
                double orig = r.OriginalMaxPositionEmbeddings!.Value;
                double lowWave = orig / r.LowFreqFactor, highWave = orig / r.HighFreqFactor;
                return f.Select(x =>
                {
                    double wave = 2 * Math.PI / x;
                    if (wave < highWave) return x;
                    if (wave > lowWave) return x / r.Factor;
                    double s = (orig / wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor);
                    return (1 - s) * x / r.Factor + s * x;
                }).ToArray();
            }
            case RopeType.Yarn:
            {
                double orig = r.OriginalMaxPositionEmbeddings!.Value;
                double Dim(double rot) => d * Math.Log(orig / (rot * 2 * Math.PI)) / (2 * Math.Log(r.Theta));
                double low = Dim(r.BetaFast), high = Dim(r.BetaSlow);
                if (r.Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
                low = Math.Max(low, 0);
                high = Math.Min(high, d - 1);
                if (low == high) high += 0.001;
                return f.Select((x, i) =>
                {
                    double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                    double extrapolationWeight = 1 - ramp;
                    return x / r.Factor * (1 - extrapolationWeight) + x * extrapolationWeight;
                }).ToArray();
            }
            default:
                return f;
        }
    }

    public static double Scaling(RopeConfig r)
    {
        if (r.Type != RopeType.Yarn) return 1;
        if (r.AttentionFactor is double a) return a;
        if (r.Mscale is double m && m != 0 && r.MscaleAllDim is double md && md != 0) return Mscale(r.Factor, m) / Mscale(r.Factor, md);
        return Mscale(r.Factor);
    }
}

/// <summary>
/// An independent float64 forward of a decoder-only LM, in plain tensor math on weights read from the
/// checkpoint by name. It shares no code with Speculators.Modeling: per-head attention with an explicit
/// causal/window mask, pairwise RoPE rotation, RMSNorm, gated MLP.
/// </summary>
internal static class Fp64Reference
{
    public sealed record Spec
    {
        public required int Layers { get; init; }
        public required int Heads { get; init; }
        public required int KvHeads { get; init; }
        public required int HeadDim { get; init; }
        public double Eps { get; init; } = 1e-6;
        public bool QkNorm { get; init; }
        public bool Tied { get; init; }
        public string Act { get; init; } = "silu";
        public required Func<int, int?> Window { get; init; }
        public required Func<int, RopeConfig> Rope { get; init; }
    }

    static Tensor Norm(Tensor x, Tensor w, double eps) => x.div(x.pow(2).mean([-1L], keepdim: true).add(eps).sqrt()).mul(w);

    static Tensor Act(Tensor x, string act) => act switch
    {
        "silu" => x.mul(x.neg().exp().add(1).reciprocal()),
        "gelu" => x.mul(0.5).mul(x.div(Math.Sqrt(2)).erf().add(1)),
        "gelu_pytorch_tanh" or "gelu_new" => x.mul(0.5).mul(x.add(x.pow(3).mul(0.044715)).mul(Math.Sqrt(2 / Math.PI)).tanh().add(1)),
        "relu" => x.clamp_min(0),
        _ => throw new ArgumentException(act),
    };

    static Tensor Lin(IReadOnlyDictionary<string, Tensor> w, string prefix, Tensor x)
    {
        var y = x.matmul(w[prefix + ".weight"].t());
        return w.TryGetValue(prefix + ".bias", out var b) ? y.add(b) : y;
    }

    /// <summary>Rotates channel pairs (i, i + rd/2) of x [heads, T, hd] by angle pos·f_i, scaling cos and sin.</summary>
    static Tensor Rotate(Tensor x, long[] positions, double[] invFreq, double scale)
    {
        int half = invFreq.Length, rd = 2 * half;
        var angles = new double[positions.Length * half];
        for (int t = 0; t < positions.Length; t++)
            for (int i = 0; i < half; i++) angles[t * half + i] = positions[t] * invFreq[i];
        var ang = torch.tensor(angles, ScalarType.Float64).view(positions.Length, half);
        var cos = ang.cos().mul(scale);
        var sin = ang.sin().mul(scale);
        var a = x.narrow(-1, 0, half);
        var b = x.narrow(-1, half, half);
        var ra = a.mul(cos).sub(b.mul(sin));
        var rb = b.mul(cos).add(a.mul(sin));
        var parts = new List<Tensor> { ra, rb };
        if (x.shape[^1] > rd) parts.Add(x.narrow(-1, rd, x.shape[^1] - rd));
        return torch.cat(parts, -1);
    }

    /// <summary>Hidden states at ids 0..N ([T, H] each) and logits [T, V] for one sequence.</summary>
    public static (Tensor[] Hidden, Tensor Logits) Forward(Spec s, IReadOnlyDictionary<string, Tensor> w, long[] ids, long[]? positions = null)
    {
        int t = ids.Length;
        positions ??= Enumerable.Range(0, t).Select(i => (long)i).ToArray();
        long seqLen = positions.Max() + 1;
        var x = w["model.embed_tokens.weight"].index_select(0, torch.tensor(ids));
        var hidden = new List<Tensor> { x };
        int group = s.Heads / s.KvHeads;
        for (int l = 0; l < s.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            var h = Norm(x, w[p + "input_layernorm.weight"], s.Eps);
            var q = Lin(w, p + "self_attn.q_proj", h).view(t, s.Heads, s.HeadDim).transpose(0, 1);
            var k = Lin(w, p + "self_attn.k_proj", h).view(t, s.KvHeads, s.HeadDim).transpose(0, 1);
            var v = Lin(w, p + "self_attn.v_proj", h).view(t, s.KvHeads, s.HeadDim).transpose(0, 1);
            if (s.QkNorm)
            {
                q = Norm(q, w[p + "self_attn.q_norm.weight"], s.Eps);
                k = Norm(k, w[p + "self_attn.k_norm.weight"], s.Eps);
            }
            var rope = s.Rope(l);
            var inv = RopeMath.InvFreq(rope, seqLen);
            double sc = RopeMath.Scaling(rope);
            q = Rotate(q, positions, inv, sc);
            k = Rotate(k, positions, inv, sc);
            int? window = s.Window(l);
            var allowed = new bool[t * t];
            for (int i = 0; i < t; i++)
                for (int j = 0; j < t; j++)
                    allowed[i * t + j] = j <= i && (window is not int win || j > i - win);
            var mask = torch.tensor(allowed).view(t, t);
            var heads = new List<Tensor>();
            for (int hh = 0; hh < s.Heads; hh++)
            {
                int kvh = hh / group;
                var scores = q[hh].matmul(k[kvh].t()).div(Math.Sqrt(s.HeadDim));
                scores = scores.masked_fill(mask.logical_not(), double.NegativeInfinity);
                heads.Add(scores.softmax(-1).matmul(v[kvh]));
            }
            var attn = torch.stack(heads, 1).reshape(t, s.Heads * s.HeadDim);
            x = x.add(Lin(w, p + "self_attn.o_proj", attn));
            var m = Norm(x, w[p + "post_attention_layernorm.weight"], s.Eps);
            var g = Act(Lin(w, p + "mlp.gate_proj", m), s.Act).mul(Lin(w, p + "mlp.up_proj", m));
            x = x.add(Lin(w, p + "mlp.down_proj", g));
            hidden.Add(x);
        }
        var head = s.Tied ? w["model.embed_tokens.weight"] : w["lm_head.weight"];
        var logits = Norm(x, w["model.norm.weight"], s.Eps).matmul(head.t());
        return (hidden.ToArray(), logits);
    }
}
