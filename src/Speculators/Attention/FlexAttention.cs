using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Attention;

/// <summary>
/// Block-sparse attention driven by a <see cref="BlockMask"/> ("our flex_attention"), forward
/// and backward, without any q_len × kv_len tensor.
/// <para>
/// Design: the q blocks are grouped by their number of visible kv blocks; for each group the
/// visible key/value blocks are gathered (a view when they are one contiguous range) and one
/// fused <c>scaled_dot_product_attention</c> call computes the group, with an element mask only
/// when the group has partial blocks. GQA is handled without repeating K/V: the G query heads
/// that share a kv head are stacked as rows of one problem. Each q block sees all of its kv
/// blocks in one call, so no cross-call softmax merging is needed and fully masked blocks are
/// never touched. The backward pass is a custom autograd function that saves only q, k, v and
/// recomputes each group with the fused kernel's own backward (flash-style recomputation), so
/// the graph holds no per-block tensors.
/// </para>
/// </summary>
public static class FlexAttention
{
    /// <summary>
    /// Attention of <paramref name="q"/> [B, Hq, Lq, D] over <paramref name="k"/> / <paramref name="v"/>
    /// [B, Hkv, Lkv, D] (Hq a multiple of Hkv; query head h uses kv head h / (Hq/Hkv)) under
    /// <paramref name="mask"/> (Lq = mask.QLen, Lkv = mask.KvLen). Returns [B, Hq, Lq, D];
    /// differentiable with respect to q, k and v. <paramref name="scale"/> defaults to D^-0.5.
    /// Rows that see no key return 0. q, k, v share dtype and device (the mask's device).
    /// </summary>
    public static Tensor Forward(Tensor q, Tensor k, Tensor v, BlockMask mask, double? scale = null)
    {
        Validate(q, k, v, mask);
        double s = scale ?? 1.0 / Math.Sqrt(q.shape[3]);
        if (!(s > 0) || double.IsInfinity(s)) throw new ArgumentOutOfRangeException(nameof(scale), s, "scale must be a positive finite number");
        bool needsGraph = torch.is_grad_enabled() && (q.requires_grad || k.requires_grad || v.requires_grad);
        if (!needsGraph) return Core.Forward(q, k, v, mask, s);
        return FlexAttentionFunction.apply(q, k, v, mask, s);
    }

    static void Validate(Tensor q, Tensor k, Tensor v, BlockMask mask)
    {
        ArgumentNullException.ThrowIfNull(q);
        ArgumentNullException.ThrowIfNull(k);
        ArgumentNullException.ThrowIfNull(v);
        ArgumentNullException.ThrowIfNull(mask);
        static string S(Tensor t) => "[" + string.Join(", ", t.shape) + "]";
        if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4)
            throw new ArgumentException($"q, k, v must be 4-D [B, H, L, D]; got q {S(q)}, k {S(k)}, v {S(v)}");
        if (q.shape[0] != k.shape[0] || k.shape[0] != v.shape[0])
            throw new ArgumentException($"batch sizes differ: q {S(q)}, k {S(k)}, v {S(v)}");
        if (k.shape[1] != v.shape[1] || k.shape[2] != v.shape[2])
            throw new ArgumentException($"k and v must share heads and length: k {S(k)}, v {S(v)}");
        if (k.shape[1] < 1 || q.shape[1] % k.shape[1] != 0)
            throw new ArgumentException($"query heads ({q.shape[1]}) must be a multiple of kv heads ({k.shape[1]})");
        if (q.shape[3] != k.shape[3])
            throw new ArgumentException($"q and k head dims differ: q {S(q)}, k {S(k)}");
        if (q.shape[2] != mask.QLen || k.shape[2] != mask.KvLen)
            throw new ArgumentException($"lengths (q {q.shape[2]}, kv {k.shape[2]}) do not match the block mask (q_len {mask.QLen}, kv_len {mask.KvLen})");
        if (q.dtype != k.dtype || k.dtype != v.dtype)
            throw new ArgumentException($"q, k, v dtypes differ: {q.dtype}, {k.dtype}, {v.dtype}");
        if (!q.is_floating_point())
            throw new ArgumentException($"q, k, v must be floating point, got {q.dtype}");
        if (q.device.ToString() != mask.Device.ToString() || k.device.ToString() != mask.Device.ToString() || v.device.ToString() != mask.Device.ToString())
            throw new ArgumentException($"q ({q.device}), k ({k.device}), v ({v.device}) and the block mask ({mask.Device}) must be on one device");
    }

    sealed class FlexAttentionFunction : torch.autograd.SingleTensorFunction<FlexAttentionFunction>
    {
        public override string Name => "FlexAttention";

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            var (q, k, v, mask, scale) = ((Tensor)vars[0], (Tensor)vars[1], (Tensor)vars[2], (BlockMask)vars[3], (double)vars[4]);
            ctx.save_for_backward([q, k, v]);
            ctx.save_data("mask", mask);
            ctx.save_data("scale", scale);
            return Core.Forward(q, k, v, mask, scale);
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var saved = ctx.get_saved_variables();
            var mask = (BlockMask)ctx.get_data("mask");
            var scale = (double)ctx.get_data("scale");
            var (dq, dk, dv) = Core.Backward(saved[0], saved[1], saved[2], gradOutput, mask, scale);
            foreach (var t in saved) t.Dispose();
            return [dq, dk, dv, null!, null!];
        }
    }

    /// <summary>The computation, shared by the graph-less path and the autograd function.</summary>
    static class Core
    {
        /// <summary>Shapes of one call: q is laid out as qP [B, Hkv, nQ, G, Bq, D].</summary>
        readonly record struct Dims(long B, long Hkv, long G, long Lq, long Lkv, long D, long Dv, int Bq, int Bkv, int NQ, double QFactor)
        {
            public static Dims Of(Tensor q, Tensor k, Tensor v, BlockMask m, double scale)
            {
                long d = q.shape[3];
                // The fused kernel scales by D^-0.5; another scale is folded into q.
                double factor = scale * Math.Sqrt(d);
                if (Math.Abs(factor - 1.0) < 1e-12) factor = 1.0;
                return new Dims(q.shape[0], k.shape[1], q.shape[1] / k.shape[1], q.shape[2], k.shape[2], d, v.shape[3],
                    m.QBlockSize, m.KvBlockSize, m.NumQBlocks, factor);
            }
        }

        /// <summary>[B, Hq, Lq, X] → [B, Hkv, nQ, G, Bq, X] (padded rows are 0).</summary>
        static Tensor ToBlocks(Tensor x, Dims d)
        {
            long x3 = x.shape[3];
            var t = x.reshape(d.B, d.Hkv, d.G, d.Lq, x3);
            long pad = (long)d.NQ * d.Bq - d.Lq;
            if (pad > 0) t = F.pad(t, [0, 0, 0, pad]);
            return t.view(d.B, d.Hkv, d.G, d.NQ, d.Bq, x3).permute(0, 1, 3, 2, 4, 5).contiguous();
        }

        /// <summary>[B, Hkv, nQ, G, Bq, X] → [B, Hq, Lq, X].</summary>
        static Tensor FromBlocks(Tensor xp, Dims d)
        {
            long x3 = xp.shape[5];
            return xp.permute(0, 1, 3, 2, 4, 5).reshape(d.B, d.Hkv * d.G, (long)d.NQ * d.Bq, x3)
                .narrow(2, 0, d.Lq).contiguous();
        }

        /// <summary>Rows of the group's q blocks as [B·Hkv, g, G·Bq, D].</summary>
        static Tensor GatherQ(Tensor qp, BlockMask.Group grp, Dims d)
        {
            long g = grp.QBlocks.Length, x3 = qp.shape[5];
            var sel = g == 1 ? qp.narrow(2, grp.QBlocks[0], 1) : qp.index_select(2, grp.QIndex);
            return sel.reshape(d.B * d.Hkv, g, d.G * d.Bq, x3);
        }

        /// <summary>The group's visible keys (or values) as [B·Hkv, g, n·Bkv, X].</summary>
        static Tensor GatherKv(Tensor x, BlockMask.Group grp, Dims d)
        {
            long g = grp.QBlocks.Length, cols = (long)grp.NumKvBlocks * d.Bkv, x3 = x.shape[3];
            var sel = grp.KvIndex is null ? x.narrow(2, grp.KvStart, cols) : x.index_select(2, grp.KvIndex);
            return sel.reshape(d.B * d.Hkv, g, cols, x3);
        }

        /// <summary>
        /// The group's additive mask [1, g, G·Bq, n·Bkv] in the compute dtype (0 = attend, −inf =
        /// masked), or null when every pair attends. Additive rather than bool: SDPA would convert
        /// a bool mask to this form itself, at the cost of another full-size pass per call.
        /// </summary>
        static Tensor? GroupMask(BlockMask.Group grp, Dims d, ScalarType dtype, Device device)
        {
            if (grp.PartialBlocked is null && grp.EmptyRows is null) return null;
            long g = grp.QBlocks.Length, cols = (long)grp.NumKvBlocks * d.Bkv;
            var m = zeros([g, d.G, d.Bq, cols], dtype: dtype, device: device);
            if (grp.PartialBlocked is not null)
                m.narrow(3, (long)grp.NumFull * d.Bkv, (long)grp.NumPartial * d.Bkv)
                    .masked_fill_(grp.PartialBlocked.unsqueeze(1), double.NegativeInfinity);
            if (grp.EmptyRows is not null)     // rows that see nothing: attend anywhere, zeroed afterwards
                m.masked_fill_(grp.EmptyRows.view(g, 1, d.Bq, 1), 0);
            return m.view(1, g, d.G * d.Bq, cols);
        }

        static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask) =>
            F.scaled_dot_product_attention(q, k, v, attn_mask: mask);

        public static Tensor Forward(Tensor q, Tensor k, Tensor v, BlockMask mask, double scale)
        {
            using var scope = NewDisposeScope();
            using var noGrad = torch.no_grad();
            var d = Dims.Of(q, k, v, mask, scale);
            var plan = mask.Plan;
            var qp = ToBlocks(q, d);
            if (d.QFactor != 1.0) qp.mul_(d.QFactor);
            var outP = zeros([d.B, d.Hkv, d.NQ, d.G, d.Bq, d.Dv], dtype: q.dtype, device: q.device);
            foreach (var grp in plan.Groups)
            {
                using var inner = NewDisposeScope();
                long g = grp.QBlocks.Length;
                var o = Sdpa(GatherQ(qp, grp, d), GatherKv(k, grp, d), GatherKv(v, grp, d), GroupMask(grp, d, q.dtype, q.device))
                    .view(d.B, d.Hkv, g, d.G, d.Bq, d.Dv);
                if (g == 1) outP.narrow(2, grp.QBlocks[0], 1).copy_(o);
                else outP.index_copy_(2, grp.QIndex, o);
            }
            if (plan.EmptyRows is not null)
                outP.masked_fill_(plan.EmptyRows.view(1, 1, d.NQ, 1, d.Bq, 1), 0);
            return FromBlocks(outP, d).MoveToOuterDisposeScope();
        }

        public static (Tensor dq, Tensor dk, Tensor dv) Backward(Tensor q, Tensor k, Tensor v, Tensor gradOut, BlockMask mask, double scale)
        {
            using var scope = NewDisposeScope();
            var d = Dims.Of(q, k, v, mask, scale);
            var plan = mask.Plan;
            // Key/value gradients gather contributions from many q blocks: accumulate in fp32 at least.
            var accType = q.dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            Tensor qp, dop;
            using (torch.no_grad())
            {
                qp = ToBlocks(q.detach(), d);
                if (d.QFactor != 1.0) qp.mul_(d.QFactor);
                dop = ToBlocks(gradOut.to(q.dtype), d);
                if (plan.EmptyRows is not null)
                    dop.masked_fill_(plan.EmptyRows.view(1, 1, d.NQ, 1, d.Bq, 1), 0);
            }
            var dqp = zeros([d.B, d.Hkv, d.NQ, d.G, d.Bq, d.D], dtype: q.dtype, device: q.device);
            var dk = zeros(d.B, d.Hkv, d.Lkv, d.D, dtype: accType, device: q.device);
            var dv = zeros(d.B, d.Hkv, d.Lkv, d.Dv, dtype: accType, device: q.device);
            var kd = k.detach();
            var vd = v.detach();
            foreach (var grp in plan.Groups)
            {
                using var inner = NewDisposeScope();
                long g = grp.QBlocks.Length, cols = (long)grp.NumKvBlocks * d.Bkv;
                Tensor qg, kg, vg, dog;
                Tensor? gmask;
                using (torch.no_grad())
                {
                    qg = GatherQ(qp, grp, d).detach().requires_grad_(true);
                    kg = GatherKv(kd, grp, d).detach().requires_grad_(true);
                    vg = GatherKv(vd, grp, d).detach().requires_grad_(true);
                    dog = GatherQ(dop, grp, d);
                    gmask = GroupMask(grp, d, q.dtype, q.device);
                }
                IList<Tensor> grads;
                using (torch.enable_grad())
                {
                    var o = Sdpa(qg, kg, vg, gmask);
                    grads = torch.autograd.grad([o], [qg, kg, vg], [dog]);
                }
                using (torch.no_grad())
                {
                    var dqg = grads[0].view(d.B, d.Hkv, g, d.G, d.Bq, d.D);
                    if (g == 1) dqp.narrow(2, grp.QBlocks[0], 1).copy_(dqg);
                    else dqp.index_copy_(2, grp.QIndex, dqg);
                    var dkg = grads[1].reshape(d.B, d.Hkv, g * cols, d.D).to(accType);
                    var dvg = grads[2].reshape(d.B, d.Hkv, g * cols, d.Dv).to(accType);
                    if (grp.KvIndex is null)
                    {
                        dk.narrow(2, grp.KvStart, cols).add_(dkg);
                        dv.narrow(2, grp.KvStart, cols).add_(dvg);
                    }
                    else
                    {
                        dk.index_add_(2, grp.KvIndex, dkg, 1);
                        dv.index_add_(2, grp.KvIndex, dvg, 1);
                    }
                }
            }
            using (torch.no_grad())
            {
                if (d.QFactor != 1.0) dqp.mul_(d.QFactor);
                var dq = FromBlocks(dqp, d);
                var dkOut = dk.to(k.dtype);
                var dvOut = dv.to(v.dtype);
                return (dq.MoveToOuterDisposeScope(), dkOut.MoveToOuterDisposeScope(), dvOut.MoveToOuterDisposeScope());
            }
        }
    }
}
