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
        if (!SameDevice(q.device, mask.Device) || !SameDevice(k.device, mask.Device) || !SameDevice(v.device, mask.Device))
            throw new ArgumentException($"q ({q.device}), k ({k.device}), v ({v.device}) and the block mask ({mask.Device}) must be on one device");
    }

    /// <summary>Same device, treating an unspecified index ("cuda") as the default one ("cuda:0").</summary>
    static bool SameDevice(Device a, Device b) => a.type == b.type && (a.type == DeviceType.CPU || Math.Max(a.index, 0) == Math.Max(b.index, 0));

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
        /// <summary>Shapes of one call. Query heads are split as (Hkv, G): G heads share a kv head.</summary>
        readonly record struct Dims(long B, long Hkv, long G, long Lq, long Lkv, long D, long Dv, int Bq, int Bkv, double QFactor)
        {
            public static Dims Of(Tensor q, Tensor k, Tensor v, BlockMask m, double scale)
            {
                long d = q.shape[3];
                // The fused kernel scales by D^-0.5; another scale is folded into q.
                double factor = scale * Math.Sqrt(d);
                if (Math.Abs(factor - 1.0) < 1e-12) factor = 1.0;
                return new Dims(q.shape[0], k.shape[1], q.shape[1] / k.shape[1], q.shape[2], k.shape[2], d, v.shape[3],
                    m.QBlockSize, m.KvBlockSize, factor);
            }
        }

        /// <summary>
        /// The group's query rows of <paramref name="x"/> [B, Hq, Lq, X] as [B·Hkv, g, G·Bq, X]:
        /// the G heads sharing a kv head are stacked as rows of one problem (GQA without K/V repeat).
        /// </summary>
        static Tensor GatherRows(Tensor x, BlockMask.Group grp, Dims d)
        {
            long g = grp.QBlocks.Length, x3 = x.shape[3];
            var x5 = x.view(d.B, d.Hkv, d.G, d.Lq, x3);
            var sel = grp.RowIndex is null ? x5.narrow(3, grp.RowStart, d.Bq) : x5.index_select(3, grp.RowIndex);
            return sel.view(d.B, d.Hkv, d.G, g, d.Bq, x3).permute(0, 1, 3, 2, 4, 5).reshape(d.B * d.Hkv, g, d.G * d.Bq, x3);
        }

        /// <summary>Writes a group result [B·Hkv, g, G·Bq, X] into its rows of <paramref name="dest"/> [B, Hq, Lq, X] (contiguous).</summary>
        static void ScatterRows(Tensor dest, Tensor result, BlockMask.Group grp, Dims d)
        {
            long g = grp.QBlocks.Length, x3 = dest.shape[3];
            var r = result.view(d.B, d.Hkv, g, d.G, d.Bq, x3).permute(0, 1, 3, 2, 4, 5);
            var d5 = dest.view(d.B, d.Hkv, d.G, d.Lq, x3);
            if (grp.RowIndex is null) { d5.narrow(3, grp.RowStart, d.Bq).copy_(r.reshape(d.B, d.Hkv, d.G, d.Bq, x3)); return; }
            var rows = r.reshape(d.B, d.Hkv, d.G, g * d.Bq, x3);
            if (grp.ValidPos is null) d5.index_copy_(3, grp.RowIndex, rows);
            else d5.index_copy_(3, grp.ValidRows!, rows.index_select(3, grp.ValidPos));
        }

        /// <summary>The group's visible keys (or values) of [B, Hkv, Lkv, X] as [B·Hkv, g, n·Bkv, X].</summary>
        static Tensor GatherKv(Tensor x, BlockMask.Group grp, Dims d)
        {
            long g = grp.QBlocks.Length, cols = (long)grp.NumKvBlocks * d.Bkv, x3 = x.shape[3];
            var sel = grp.KvIndex is null ? x.narrow(2, grp.KvStart, cols) : x.index_select(2, grp.KvIndex);
            return sel.reshape(d.B * d.Hkv, g, cols, x3);
        }

        /// <summary>Zeroes the rows (empty or padded) of a group tensor [B·Hkv, g, G·Bq, X].</summary>
        static void ZeroRows(Tensor t, BlockMask.Group grp, Dims d)
        {
            if (grp.ZeroRows is null) return;
            long g = grp.QBlocks.Length;
            t.view(d.B * d.Hkv, g, d.G, d.Bq, t.shape[3]).masked_fill_(grp.ZeroRows.view(1, g, 1, d.Bq, 1), 0);
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

        static Tensor GatherQ(Tensor q, BlockMask.Group grp, Dims d)
        {
            var qg = GatherRows(q, grp, d);
            return d.QFactor == 1.0 ? qg : qg.mul_(d.QFactor);
        }

        public static Tensor Forward(Tensor q, Tensor k, Tensor v, BlockMask mask, double scale)
        {
            using var scope = NewDisposeScope();
            using var noGrad = torch.no_grad();
            var d = Dims.Of(q, k, v, mask, scale);
            var output = zeros([d.B, d.Hkv * d.G, d.Lq, d.Dv], dtype: q.dtype, device: q.device);
            foreach (var grp in mask.Plan.Groups)
            {
                using var inner = NewDisposeScope();
                var o = Sdpa(GatherQ(q, grp, d), GatherKv(k, grp, d), GatherKv(v, grp, d), GroupMask(grp, d, q.dtype, q.device));
                ZeroRows(o, grp, d);
                ScatterRows(output, o, grp, d);
            }
            return output.MoveToOuterDisposeScope();
        }

        public static (Tensor dq, Tensor dk, Tensor dv) Backward(Tensor q, Tensor k, Tensor v, Tensor gradOut, BlockMask mask, double scale)
        {
            using var scope = NewDisposeScope();
            var d = Dims.Of(q, k, v, mask, scale);
            // Key/value gradients gather contributions from many q blocks: accumulate in fp32 at least.
            var accType = q.dtype is ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
            var dq = zeros([d.B, d.Hkv * d.G, d.Lq, d.D], dtype: q.dtype, device: q.device);
            var dk = zeros([d.B, d.Hkv, d.Lkv, d.D], dtype: accType, device: q.device);
            var dv = zeros([d.B, d.Hkv, d.Lkv, d.Dv], dtype: accType, device: q.device);
            var qd = q.detach();
            var kd = k.detach();
            var vd = v.detach();
            var gd = gradOut.detach().to(q.dtype);
            foreach (var grp in mask.Plan.Groups)
            {
                using var inner = NewDisposeScope();
                long g = grp.QBlocks.Length, cols = (long)grp.NumKvBlocks * d.Bkv;
                Tensor qg, kg, vg, dog;
                Tensor? gmask;
                using (torch.no_grad())
                {
                    qg = GatherQ(qd, grp, d).requires_grad_(true);
                    kg = GatherKv(kd, grp, d).detach().requires_grad_(true);
                    vg = GatherKv(vd, grp, d).detach().requires_grad_(true);
                    dog = GatherRows(gd, grp, d);
                    ZeroRows(dog, grp, d);
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
                    var dqg = d.QFactor == 1.0 ? grads[0] : grads[0].mul(d.QFactor);
                    ScatterRows(dq, dqg, grp, d);
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
                return (dq.MoveToOuterDisposeScope(), dk.to(k.dtype).MoveToOuterDisposeScope(), dv.to(v.dtype).MoveToOuterDisposeScope());
        }
    }
}
