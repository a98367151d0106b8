using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Attention;

/// <summary>
/// Independent truth for the attention tests: the masks written as scalar formulas straight from
/// the reference (speculators §3.7, §4.4), and dense masked attention with plain tensor ops.
/// </summary>
internal static class AttentionReference
{
    /// <summary>Packed document ids: documents of the given lengths, then <paramref name="padding"/> tokens of −1.</summary>
    public static long[] PackedDocs(int[] lengths, int padding = 0)
    {
        var ids = new List<long>();
        for (int d = 0; d < lengths.Length; d++) ids.AddRange(Enumerable.Repeat((long)d, lengths[d]));
        ids.AddRange(Enumerable.Repeat(-1L, padding));
        return [.. ids];
    }

    /// <summary>Random packing of about <paramref name="total"/> tokens: some length-1 documents, optional padding.</summary>
    public static long[] RandomDocs(Random rng, int total, int maxDoc, bool padding)
    {
        var lengths = new List<int>();
        int pad = padding ? rng.Next(1, Math.Max(2, total / 6)) : 0;
        int left = total - pad;
        while (left > 0)
        {
            int len = rng.NextDouble() < 0.25 ? 1 : rng.Next(1, maxDoc + 1);
            len = Math.Min(len, left);
            lengths.Add(len);
            left -= len;
        }
        return PackedDocs([.. lengths], pad);
    }

    /// <summary>Eagle-3 mask, verbatim from §3.7 with kv over [step0 | step1 | …] of L each.</summary>
    public static bool Eagle3(long q, long kv, long[] doc, long? window)
    {
        long L = doc.Length;
        bool causal = q >= kv && (window is not long w || kv > q - w);
        bool document = doc[q] != -1 && doc[q] == doc[kv % L];
        bool diagonal = kv % L == q;
        return (causal && document) || diagonal;
    }

    /// <summary>DFlash anchor-block mask, verbatim from §4.4 (L = context length).</summary>
    public static bool DFlash(long q, long kv, long[] anchors, long[] doc, int blockSize, long? window, bool causalInBlock)
    {
        long L = doc.Length;
        long a = anchors[q / blockSize];
        long d = doc[a];
        bool basePrefix = kv < L && doc[kv] == d && d != -1 && kv < a && (window is not long w || kv >= a - w);
        bool sameBlock = kv >= L && (kv - L) / blockSize == q / blockSize && (!causalInBlock || kv <= q + L);
        return basePrefix || sameBlock;
    }

    public static bool[,] Dense(long qLen, long kvLen, Func<long, long, bool> f)
    {
        var m = new bool[qLen, kvLen];
        for (long i = 0; i < qLen; i++)
            for (long j = 0; j < kvLen; j++) m[i, j] = f(i, j);
        return m;
    }

    public static Tensor ToTensor(bool[,] m)
    {
        long r = m.GetLength(0), c = m.GetLength(1);
        var flat = new bool[r * c];
        for (long i = 0; i < r; i++)
            for (long j = 0; j < c; j++) flat[i * c + j] = m[i, j];
        return tensor(flat).view(r, c);
    }

    /// <summary>Same shape and same elements.</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (!a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    public static bool[,] FromTensor(Tensor t)
    {
        long r = t.shape[0], c = t.shape[1];
        var data = t.contiguous().data<bool>().ToArray();
        var m = new bool[r, c];
        for (long i = 0; i < r; i++)
            for (long j = 0; j < c; j++) m[i, j] = data[i * c + j];
        return m;
    }

    /// <summary>
    /// Dense masked attention with plain ops (differentiable): GQA by repeating kv heads, scores
    /// over the whole [Lq, Lkv] grid, masked softmax where a row with no visible key gives 0.
    /// </summary>
    public static Tensor Attention(Tensor q, Tensor k, Tensor v, Tensor mask, double scale)
    {
        long groups = q.shape[1] / k.shape[1];
        var kr = k.repeat_interleave(groups, dim: 1);
        var vr = v.repeat_interleave(groups, dim: 1);
        var s = q.matmul(kr.transpose(-1, -2)) * scale;
        var visible = mask.to(q.device).view(1, 1, mask.shape[0], mask.shape[1]);
        s = s.masked_fill(visible.logical_not(), double.NegativeInfinity);
        var rowMax = s.amax([-1], keepdim: true).detach();
        rowMax = rowMax.masked_fill(rowMax.isinf(), 0);
        var p = (s - rowMax).exp();
        var l = p.sum(-1, keepdim: true);
        p = p / l.masked_fill(l.eq(0), 1);
        return p.matmul(vr);
    }
}
