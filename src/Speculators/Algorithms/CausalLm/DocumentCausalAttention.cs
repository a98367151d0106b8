using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.CausalLm;

/// <summary>
/// Document-causal attention over a packed row: each document attends causally to itself only (and within the
/// layer's sliding window), padding attends to nothing and outputs zeros. Documents are contiguous in a packed
/// row, so instead of one dense [T, T] mask this runs libtorch's fused causal SDPA once per document and
/// concatenates: Σ len² work instead of T², exact, and differentiable through autograd.
/// <see cref="DenseMask"/> gives the equivalent boolean mask (the reference the tests compare against).
/// </summary>
public sealed class DocumentCausalAttention : IAttentionBackend
{
    readonly int[] _offsets;
    readonly int[] _lengths;
    readonly int _totalLength;

    /// <param name="offsets">start of each document in the row</param>
    /// <param name="lengths">tokens of each document (contiguous, in order, non-overlapping)</param>
    /// <param name="totalLength">the row length T (the rest is padding)</param>
    public DocumentCausalAttention(IReadOnlyList<int> offsets, IReadOnlyList<int> lengths, int totalLength)
    {
        if (offsets.Count != lengths.Count) throw new ArgumentException("offsets and lengths differ in count");
        int end = 0;
        for (int i = 0; i < offsets.Count; i++)
        {
            if (offsets[i] < end || lengths[i] < 0 || offsets[i] + lengths[i] > totalLength)
                throw new ArgumentException($"document {i} [{offsets[i]}, {offsets[i] + lengths[i]}) overlaps or leaves the row of {totalLength}");
            end = offsets[i] + lengths[i];
        }
        _offsets = offsets.ToArray();
        _lengths = lengths.ToArray();
        _totalLength = totalLength;
    }

    public Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer)
    {
        if (q.dim() != 4 || q.shape[2] != _totalLength || k.shape[2] != _totalLength)
            throw new SpeculatorsException($"document attention expects [B, heads, {_totalLength}, hd] inputs, got q [{string.Join(", ", q.shape)}], k [{string.Join(", ", k.shape)}].");
        using var scope = NewDisposeScope();
        int rep = layer.NumHeads / layer.NumKvHeads;
        var kk = AttentionMath.RepeatKv(k, rep);
        var vv = AttentionMath.RepeatKv(v, rep);
        var parts = new List<Tensor>(_offsets.Length * 2 + 1);
        int cursor = 0;
        for (int i = 0; i < _offsets.Length; i++)
        {
            int off = _offsets[i], len = _lengths[i];
            if (len == 0) continue;
            if (off > cursor) parts.Add(torch.zeros(q.shape[0], q.shape[1], off - cursor, q.shape[3], q.dtype, q.device));
            var qd = q.narrow(2, off, len);
            var kd = kk.narrow(2, off, len);
            var vd = vv.narrow(2, off, len);
            Tensor? mask = null;
            bool causal = true;
            if (layer.SlidingWindow is int w && w < len)
            {
                mask = WindowMask(len, w, q.device);
                causal = false;
            }
            parts.Add(AttentionMath.Sdpa(qd, kd, vd, mask, causal, layer.Scale));
            cursor = off + len;
        }
        if (cursor < _totalLength)
            parts.Add(torch.zeros(q.shape[0], q.shape[1], _totalLength - cursor, q.shape[3], q.dtype, q.device));
        var result = parts.Count == 1 ? parts[0] : torch.cat(parts, 2);
        return result.MoveToOuterDisposeScope();
    }

    static Tensor WindowMask(int len, int window, Device device)
    {
        var q = torch.arange(len, device: device).unsqueeze(1);
        var k = torch.arange(len, device: device).unsqueeze(0);
        return k.le(q).logical_and(k.gt(q - window));
    }

    /// <summary>
    /// The same attention pattern as one boolean [T, T] mask (true = attend): same document, causal, inside the
    /// window; padding queries see only themselves (their output is discarded).
    /// </summary>
    public Tensor DenseMask(int? slidingWindow = null)
    {
        var doc = new long[_totalLength];
        Array.Fill(doc, -1L);
        for (int i = 0; i < _offsets.Length; i++)
            for (int t = 0; t < _lengths[i]; t++) doc[_offsets[i] + t] = i;
        using var scope = NewDisposeScope();
        var d = torch.tensor(doc);
        var q = torch.arange(_totalLength).unsqueeze(1);
        var k = torch.arange(_totalLength).unsqueeze(0);
        var allowed = d.unsqueeze(1).eq(d.unsqueeze(0)).logical_and(d.unsqueeze(0).ge(0)).logical_and(k.le(q));
        if (slidingWindow is int w) allowed = allowed.logical_and(k.gt(q - w));
        allowed = allowed.logical_or(torch.eye(_totalLength, dtype: ScalarType.Bool));
        return allowed.MoveToOuterDisposeScope();
    }
}
