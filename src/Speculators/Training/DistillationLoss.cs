using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// Distillation losses over the draft vocabulary, computed in fp32 whatever the logits dtype.
/// <para><b>Memory.</b> The per-position losses run as one custom autograd function that walks the
/// rows in chunks (<see cref="ChunkElements"/> fp32 elements per temporary) and saves only its two
/// inputs plus each row's two log-sum-exps: the backward pass recomputes the chunk's probabilities
/// and writes the closed-form gradient straight into the logits gradient. An eager graph (log_softmax → kl_div → sum) would keep
/// two to three [N, Vd] fp32 tensors alive per TTT step (1 GiB each at N = 8192, Vd = 32000); this
/// keeps only the [N, Vd] gradient that the lm_head backward needs anyway, and chunk-sized temporaries.
/// This is the role of the Python tool's fused Triton kernels; values and gradients equal its eager
/// reference (<c>losses/eager.py</c>) up to fp32 rounding, which the tests check against fp64 autograd.</para>
/// </summary>
public static class DistillationLoss
{
    /// <summary>fp32 elements per chunk temporary (default 4 Mi = 16 MiB); rows per chunk = max(1, this ÷ Vd).</summary>
    public static long ChunkElements { get; set; } = 4L << 20;

    /// <summary>Denominator guard of the masked mean, as in the Python tool.</summary>
    public const double MaskEpsilon = 1e-5;

    /// <summary>
    /// Per-position loss <paramref name="kind"/> between <paramref name="logits"/> (draft) and
    /// <paramref name="targets"/> (verifier), both [..., Vd]; returns fp32 [...]. Differentiable
    /// with respect to <paramref name="logits"/> only (targets are treated as constants).
    /// </summary>
    public static Tensor PerPosition(LossKind kind, Tensor logits, Tensor targets)
    {
        if (logits.dim() < 1) throw new ArgumentException("logits must have a vocabulary dimension.", nameof(logits));
        if (!logits.shape.SequenceEqual(targets.shape))
            throw new ArgumentException(
                $"logits [{string.Join(", ", logits.shape)}] and targets [{string.Join(", ", targets.shape)}] must have the same shape.");
        if (!logits.is_floating_point() || !targets.is_floating_point())
            throw new ArgumentException($"logits and targets must be floating point, got {logits.dtype} and {targets.dtype}.");
        if (logits.numel() == 0)
            return torch.zeros(logits.shape[..^1], ScalarType.Float32, logits.device);
        return ChunkedLossFunction.apply(logits, targets, (int)kind);
    }

    /// <summary>
    /// <c>Σ(e·mask·w·scale) / (Σmask + 1e-5)</c> per batch row, then the mean over rows: the Python
    /// tool's <c>loss_function</c>. <paramref name="perPosition"/> and <paramref name="mask"/> are
    /// [B, L]; <paramref name="positionWeight"/> (optional, [B, L]) and <paramref name="scale"/> are
    /// decay multipliers that do not enter the denominator.
    /// </summary>
    public static Tensor MaskedMean(Tensor perPosition, Tensor mask, Tensor? positionWeight = null, double scale = 1.0)
    {
        if (perPosition.dim() != 2 || !perPosition.shape.SequenceEqual(mask.shape))
            throw new ArgumentException(
                $"expected per-position losses and mask of the same shape [B, L], got [{string.Join(", ", perPosition.shape)}] and [{string.Join(", ", mask.shape)}].");
        using var scope = NewDisposeScope();
        var m = mask.to(perPosition.dtype);
        var e = perPosition * m;
        if (positionWeight is not null) e = e * positionWeight.to(perPosition.dtype);
        if (scale != 1.0) e = e * scale;
        var denominator = m.sum(1) + MaskEpsilon;
        return (e.sum(1) / denominator).mean().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The weighted sum of the terms of <paramref name="spec"/> (Python <c>compound_loss</c>) and,
    /// when there is more than one term, each unweighted term (detached) by name.
    /// </summary>
    public static (Tensor Total, IReadOnlyList<(string Name, Tensor Value)> Terms) Compound(
        Tensor logits, Tensor targets, Tensor mask, LossSpec spec, Tensor? positionWeight = null, double scale = 1.0)
    {
        var terms = new List<(string, Tensor)>();
        Tensor? total = null;
        foreach (var term in spec.Terms)
        {
            Tensor value;
            using (var scope = NewDisposeScope())
            {
                var e = PerPosition(term.Kind, logits, targets);
                if (e.dim() != 2) e = e.reshape(mask.shape);
                value = MaskedMean(e, mask, positionWeight, scale).MoveToOuterDisposeScope();
            }
            if (spec.IsCompound) terms.Add((term.Name, value.detach()));
            var weighted = term.Weight == 1.0 ? value : value * term.Weight;
            total = total is null ? weighted : total + weighted;
        }
        return (total!, terms);
    }

    /// <summary>Rows per chunk for vocabulary size <paramref name="vocab"/>.</summary>
    internal static long RowsPerChunk(long vocab) => Math.Max(1, ChunkElements / Math.Max(1, vocab));

    /// <summary>
    /// fp32 per-row loss of one chunk from the chunk's logits <paramref name="z"/>, targets
    /// <paramref name="t"/> and their row log-sum-exps (kept by the forward so the backward need not
    /// recompute the reductions).
    /// </summary>
    internal static Tensor ChunkForward(LossKind kind, Tensor z, Tensor t, Tensor lseZ, Tensor lseT)
    {
        var logq = z - lseZ;
        var logp = t - lseT;
        switch (kind)
        {
            case LossKind.KlDiv:
            {
                var p = logp.exp();
                return (p.xlogy(p) - p * logq).sum(-1);
            }
            case LossKind.ReverseKl:
                return (logq.exp() * (logq - logp)).sum(-1);
            case LossKind.JensenShannon:
            {
                var logm = logq.logaddexp(logp) - Math.Log(2.0);
                var klp = (logp.exp() * (logp - logm)).sum(-1);
                var klq = (logq.exp() * (logq - logm)).sum(-1);
                return 0.5 * (klp + klq);
            }
            case LossKind.CrossEntropy:
                return -logq.gather(-1, t.argmax(-1, keepdim: true)).squeeze(-1);
            case LossKind.TotalVariation:
                return 1.0 - logq.exp().minimum(logp.exp()).sum(-1);
            case LossKind.NegLogAcceptance:
                return -logq.exp().minimum(logp.exp()).sum(-1).clamp_min(MaskEpsilon).log();
            case LossKind.LkHybrid:
            {
                var p = logp.exp();
                var alpha = logq.exp().minimum(p).sum(-1);
                var kl = (p.xlogy(p) - p * logq).sum(-1);
                var w = (-3.0 * alpha).exp();
                return w * kl + (1.0 - w) * (1.0 - alpha);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    /// <summary>d(loss_row)/d(z) for one chunk (before scaling by the upstream gradient).</summary>
    internal static Tensor ChunkGradient(LossKind kind, Tensor z, Tensor t, Tensor lseZ, Tensor lseT)
    {
        var logq = z - lseZ;
        var q = logq.exp();
        switch (kind)
        {
            case LossKind.KlDiv:
                return q - (t - lseT).exp();
            case LossKind.ReverseKl:
            {
                var f = logq - (t - lseT);
                return q * (f - (q * f).sum(-1, keepdim: true));
            }
            case LossKind.JensenShannon:
            {
                var h = 0.5 * (logq - (logq.logaddexp(t - lseT) - Math.Log(2.0)));
                return q * (h - (q * h).sum(-1, keepdim: true));
            }
            case LossKind.CrossEntropy:
            {
                var label = t.argmax(-1, keepdim: true);
                q.scatter_add_(-1, label, torch.full(label.shape, -1.0f, ScalarType.Float32, q.device));
                return q;
            }
            case LossKind.TotalVariation:
            {
                // min(q, p) passes the gradient to q where q < p, half of it on ties (torch.minimum's rule).
                var c = MinimumShare(q, (t - lseT).exp());
                return q * ((c * q).sum(-1, keepdim: true) - c);
            }
            case LossKind.NegLogAcceptance:
            {
                var p = (t - lseT).exp();
                var c = MinimumShare(q, p);
                var alpha = q.minimum(p).sum(-1, keepdim: true);
                var dAlpha = q * (c - (c * q).sum(-1, keepdim: true));
                var live = alpha.ge(MaskEpsilon).to(ScalarType.Float32);
                return -dAlpha / alpha.clamp_min(MaskEpsilon) * live;
            }
            case LossKind.LkHybrid:
            {
                var p = (t - lseT).exp();
                var c = MinimumShare(q, p);
                var alpha = q.minimum(p).sum(-1, keepdim: true);
                var w = (-3.0 * alpha).exp();
                var dTv = q * ((c * q).sum(-1, keepdim: true) - c);
                return w * (q - p) + (1.0 - w) * dTv;
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(kind), kind, null);
        }
    }

    static Tensor MinimumShare(Tensor q, Tensor p) =>
        q.lt(p).to(ScalarType.Float32) + 0.5 * q.eq(p).to(ScalarType.Float32);

    /// <summary>The chunked loss as an autograd node: saves its inputs and two floats per row, recomputes the rest in backward.</summary>
    sealed class ChunkedLossFunction : autograd.SingleTensorFunction<ChunkedLossFunction>
    {
        public override string Name => "ChunkedDistillationLoss";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var logits = (Tensor)vars[0];
            var targets = (Tensor)vars[1];
            var kind = (LossKind)(int)vars[2];
            long vocab = logits.shape[^1];
            var outShape = logits.shape[..^1];
            long rows = logits.numel() / vocab;
            var result = torch.empty(rows, ScalarType.Float32, logits.device);
            // Row log-sum-exps: 8 bytes per row, saved so the backward skips two reductions per chunk.
            var lseZ = torch.empty(new[] { rows, 1L }, ScalarType.Float32, logits.device);
            var lseT = torch.empty(new[] { rows, 1L }, ScalarType.Float32, logits.device);
            using (var scope = NewDisposeScope())
            {
                var z2 = logits.reshape(rows, vocab);
                var t2 = targets.reshape(rows, vocab);
                long chunk = RowsPerChunk(vocab);
                for (long r0 = 0; r0 < rows; r0 += chunk)
                {
                    using var inner = NewDisposeScope();
                    long n = Math.Min(chunk, rows - r0);
                    var z = z2.narrow(0, r0, n).to(ScalarType.Float32);
                    var t = t2.narrow(0, r0, n).to(ScalarType.Float32);
                    var lz = lseZ.narrow(0, r0, n);
                    var lt = lseT.narrow(0, r0, n);
                    lz.copy_(z.logsumexp(-1, keepdim: true));
                    lt.copy_(t.logsumexp(-1, keepdim: true));
                    result.narrow(0, r0, n).copy_(ChunkForward(kind, z, t, lz, lt));
                }
            }
            ctx.save_for_backward(new List<Tensor> { logits, targets, lseZ, lseT });
            ctx.save_data("kind", (int)kind);
            return result.reshape(outShape);
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var logits = saved[0];
            var targets = saved[1];
            var lseZ = saved[2];
            var lseT = saved[3];
            var kind = (LossKind)(int)ctx.get_data("kind");
            var shape = logits.shape;
            long vocab = logits.shape[^1];
            long rows = logits.numel() / vocab;
            var grad = torch.zeros(new[] { rows, vocab }, logits.dtype, logits.device);
            using (var scope = NewDisposeScope())
            {
                var z2 = logits.reshape(rows, vocab);
                var t2 = targets.reshape(rows, vocab);
                var g1 = gradOutput.reshape(rows).to(ScalarType.Float32);
                long chunk = RowsPerChunk(vocab);
                for (long r0 = 0; r0 < rows; r0 += chunk)
                {
                    using var inner = NewDisposeScope();
                    long n = Math.Min(chunk, rows - r0);
                    var g = g1.narrow(0, r0, n);
                    // Masked-out rows (padding, prompt tokens) get zero upstream gradient: skip their softmaxes.
                    if (g.abs().max().ToDouble() == 0.0) continue;
                    var z = z2.narrow(0, r0, n).to(ScalarType.Float32);
                    var t = t2.narrow(0, r0, n).to(ScalarType.Float32);
                    var d = ChunkGradient(kind, z, t, lseZ.narrow(0, r0, n), lseT.narrow(0, r0, n)) * g.unsqueeze(1);
                    grad.narrow(0, r0, n).copy_(d);
                }
            }
            foreach (var s in saved) s.Dispose();
            return new List<Tensor> { grad.reshape(shape), null!, null! };
        }
    }
}
