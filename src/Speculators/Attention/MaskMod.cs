using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Attention;

/// <summary>What a mask function says about a rectangle of (query, key) pairs.</summary>
public enum BlockKind : byte
{
    /// <summary>Every pair in the block is masked out: the block is skipped.</summary>
    Empty = 0,
    /// <summary>Mixed, or not known without looking at the elements.</summary>
    Partial = 1,
    /// <summary>Every pair in the block attends: no element mask is needed.</summary>
    Full = 2,
}

/// <summary>
/// A composable attention mask function <c>mask(q, kv) → bool</c> (true = the query may attend
/// to the key), the counterpart of flex_attention's <c>mask_mod</c> without batch/head
/// arguments. Every mask answers in two ways:
/// <list type="bullet">
/// <item><see cref="Evaluate"/>: element-wise over broadcastable int64 index tensors (used for
/// the element masks of partial blocks and for dense references);</item>
/// <item><see cref="Classify"/>: a cheap, conservative verdict on a whole rectangle from interval
/// bounds, so that <see cref="BlockMask"/> metadata costs O(blocks), not O(elements).
/// <see cref="BlockKind.Empty"/> and <see cref="BlockKind.Full"/> are promises;
/// <see cref="BlockKind.Partial"/> means "evaluate the elements".</item>
/// </list>
/// Masks are pure functions of (q, kv): they never depend on the query or key length, which is
/// what lets <see cref="BlockMask.ExtendKv"/> keep the blocks it already classified.
/// </summary>
public abstract class MaskMod
{
    /// <summary>
    /// Evaluates the mask for broadcastable int64 index tensors <paramref name="q"/> and
    /// <paramref name="kv"/> (non-negative, on one device). The result is a bool tensor that
    /// broadcasts to the shape of <c>q + kv</c> (it may be smaller when a mask ignores one side).
    /// </summary>
    public abstract Tensor Evaluate(Tensor q, Tensor kv);

    /// <summary>
    /// Classifies the block of queries [q0, q1) × keys [kv0, kv1) (non-empty, non-negative ranges).
    /// Empty and Full must be exact; Partial is always a safe answer.
    /// </summary>
    public abstract BlockKind Classify(long q0, long q1, long kv0, long kv1);

    /// <summary>A readable formula of the mask, for logs and test names.</summary>
    public abstract override string ToString();

    // ------------------------------------------------------------------ composition

    public static MaskMod operator &(MaskMod a, MaskMod b) => And(a, b);
    public static MaskMod operator |(MaskMod a, MaskMod b) => Or(a, b);
    public static MaskMod operator !(MaskMod a) => Not(a);

    /// <summary>True where every operand is true.</summary>
    public static MaskMod And(params MaskMod[] mods) => Combine(true, mods);

    /// <summary>True where any operand is true.</summary>
    public static MaskMod Or(params MaskMod[] mods) => Combine(false, mods);

    /// <summary>The complement.</summary>
    public static MaskMod Not(MaskMod mod) => mod is NotMod n ? n.Inner : new NotMod(mod);

    static MaskMod Combine(bool isAnd, MaskMod[] mods)
    {
        ArgumentNullException.ThrowIfNull(mods);
        if (mods.Length == 0) throw new ArgumentException("And/Or need at least one mask function", nameof(mods));
        var flat = new List<MaskMod>();
        foreach (var m in mods)
        {
            ArgumentNullException.ThrowIfNull(m, nameof(mods));
            if (m is CombineMod c && c.IsAnd == isAnd) flat.AddRange(c.Parts);
            else flat.Add(m);
        }
        return flat.Count == 1 ? flat[0] : new CombineMod(isAnd, [.. flat]);
    }

    // ------------------------------------------------------------------ primitives

    /// <summary>Every pair attends.</summary>
    public static MaskMod All() => new ConstMod(true);

    /// <summary>No pair attends.</summary>
    public static MaskMod None() => new ConstMod(false);

    /// <summary>Causal: <c>kv ≤ q</c>.</summary>
    public static MaskMod Causal() => new CausalMod();

    /// <summary>
    /// The lower edge of a sliding window: <c>kv &gt; q − window</c> (i.e. <c>q − kv &lt; window</c>).
    /// Combine with <see cref="Causal"/> for the usual causal sliding-window layer.
    /// </summary>
    public static MaskMod SlidingWindow(long window)
    {
        if (window < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "sliding window must be >= 1");
        return new SlidingWindowMod(window);
    }

    /// <summary>
    /// Same document: <c>doc[q] ≥ 0 and doc[q] == doc[kv]</c> for <c>q, kv &lt; docIds.Length</c>
    /// (false outside). Padding tokens carry document id −1 and attend to nothing through this mask.
    /// </summary>
    public static MaskMod Document(ReadOnlySpan<long> docIds) => new DocumentMod(ToIntIds(docIds, nameof(docIds)));

    /// <inheritdoc cref="Document(ReadOnlySpan{long})"/>
    public static MaskMod Document(Tensor docIds) => Document(HostIds(docIds, nameof(docIds)));

    /// <summary>
    /// The TTT diagonal: <c>kv mod L == q</c>. With keys laid out as [step0 | step1 | …] of L
    /// positions each, query i sees its own position in every step.
    /// </summary>
    public static MaskMod TttDiagonal(long seqLen)
    {
        if (seqLen < 1) throw new ArgumentOutOfRangeException(nameof(seqLen), seqLen, "sequence length must be >= 1");
        return new TttDiagonalMod(seqLen);
    }

    /// <summary>Keys in [lo, hi).</summary>
    public static MaskMod KvRange(long lo, long hi) => new RangeMod(lo, hi, onKv: true);

    /// <summary>Queries in [lo, hi).</summary>
    public static MaskMod QRange(long lo, long hi) => new RangeMod(lo, hi, onKv: false);

    /// <summary>
    /// DFlash context part: query q belongs to anchor block <c>j = q / blockSize</c> with anchor
    /// position <c>a = anchors[j]</c> and document <c>d = doc[a]</c>; it sees context keys
    /// <c>kv &lt; L</c> with <c>d ≥ 0</c>, <c>doc[kv] == d</c> and <c>kv &lt; a</c>
    /// (and <c>kv ≥ a − window</c> when a window is given). Queries past the last anchor block see nothing.
    /// </summary>
    public static MaskMod AnchorContext(ReadOnlySpan<long> anchors, ReadOnlySpan<long> docIds, int blockSize, long? slidingWindow = null)
        => new AnchorContextMod(anchors.ToArray(), ToIntIds(docIds, nameof(docIds)), blockSize, slidingWindow);

    /// <inheritdoc cref="AnchorContext(ReadOnlySpan{long}, ReadOnlySpan{long}, int, long?)"/>
    public static MaskMod AnchorContext(Tensor anchors, Tensor docIds, int blockSize, long? slidingWindow = null)
        => AnchorContext(HostIds(anchors, nameof(anchors)), HostIds(docIds, nameof(docIds)), blockSize, slidingWindow);

    /// <summary>
    /// DFlash block part: keys after a context of <paramref name="contextLen"/> hold the block
    /// tokens; query q sees block-token key kv when <c>kv ≥ L</c> and <c>(kv − L) / B == q / B</c>
    /// (bidirectional inside the block), and with <paramref name="causal"/> also <c>kv − L ≤ q</c>.
    /// </summary>
    public static MaskMod AnchorBlock(long contextLen, int blockSize, bool causal)
    {
        if (contextLen < 0) throw new ArgumentOutOfRangeException(nameof(contextLen), contextLen, "context length must be >= 0");
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be >= 1");
        return new AnchorBlockMod(contextLen, blockSize, causal);
    }

    /// <summary>
    /// A mask given only element-wise (like a flex_attention mask_mod). Its blocks are classified
    /// by evaluating their elements, so building a <see cref="BlockMask"/> costs O(q_len · kv_len)
    /// work (block row by block row, never one L×L tensor). Prefer the primitives above.
    /// </summary>
    public static MaskMod Custom(Func<Tensor, Tensor, Tensor> evaluate, string name)
    {
        ArgumentNullException.ThrowIfNull(evaluate);
        return new CustomMod(evaluate, name);
    }

    // ------------------------------------------------------------------ algorithm masks

    /// <summary>
    /// The Eagle-3 training mask over keys [step0 | step1 | … ] (reference §3.7):
    /// <c>(causal [∧ sliding window] ∧ same document) ∨ kv mod L == q</c> with L = docIds.Length.
    /// For kv ≥ L only the diagonal survives; padding queries (doc −1) see only themselves.
    /// Use it with kv_len = (k+1)·L at TTT step k (<see cref="BlockMask.ExtendKv"/>).
    /// </summary>
    public static MaskMod Eagle3(ReadOnlySpan<long> docIds, long? slidingWindow = null)
    {
        var ids = ToIntIds(docIds, nameof(docIds));
        if (ids.Length == 0) throw new ArgumentException("document ids are empty", nameof(docIds));
        MaskMod causal = slidingWindow is long w ? Causal() & SlidingWindow(w) : Causal();
        return Or(And(causal, new DocumentMod(ids)), TttDiagonal(ids.Length));
    }

    /// <inheritdoc cref="Eagle3(ReadOnlySpan{long}, long?)"/>
    public static MaskMod Eagle3(Tensor docIds, long? slidingWindow = null) => Eagle3(HostIds(docIds, nameof(docIds)), slidingWindow);

    /// <summary>
    /// The DFlash anchor-block mask (reference §4.4): queries are M anchor blocks of
    /// <paramref name="blockSize"/> tokens, keys are [context L | block tokens M·B];
    /// <c>AnchorContext ∨ AnchorBlock</c>. <paramref name="causalInBlock"/> is true for sliding
    /// layers unless the window is non-causal; full-attention layers are bidirectional in the block.
    /// </summary>
    public static MaskMod DFlash(ReadOnlySpan<long> anchors, ReadOnlySpan<long> docIds, int blockSize,
        long? slidingWindow = null, bool causalInBlock = false)
        => Or(AnchorContext(anchors, docIds, blockSize, slidingWindow), AnchorBlock(docIds.Length, blockSize, causalInBlock));

    /// <inheritdoc cref="DFlash(ReadOnlySpan{long}, ReadOnlySpan{long}, int, long?, bool)"/>
    public static MaskMod DFlash(Tensor anchors, Tensor docIds, int blockSize, long? slidingWindow = null, bool causalInBlock = false)
        => DFlash(HostIds(anchors, nameof(anchors)), HostIds(docIds, nameof(docIds)), blockSize, slidingWindow, causalInBlock);

    /// <summary>
    /// The whole mask as a dense bool [qLen, kvLen] tensor on the CPU. For tests and debugging
    /// of small shapes only: this is exactly the L×L tensor the block mask avoids.
    /// </summary>
    public Tensor ToDense(long qLen, long kvLen)
    {
        using var scope = NewDisposeScope();
        var q = arange(qLen, dtype: ScalarType.Int64).unsqueeze(1);
        var kv = arange(kvLen, dtype: ScalarType.Int64).unsqueeze(0);
        return Evaluate(q, kv).expand(qLen, kvLen).contiguous().MoveToOuterDisposeScope();
    }

    // ------------------------------------------------------------------ helpers

    internal static long[] HostIds(Tensor t, string name)
    {
        ArgumentNullException.ThrowIfNull(t, name);
        var flat = t.dim() == 2 && t.shape[0] == 1 ? t[0] : t;
        if (flat.dim() != 1)
            throw new ArgumentException($"{name}: expected shape [L] or [1, L], got [{string.Join(", ", t.shape)}]", name);
        using var cpu = flat.to(ScalarType.Int64, CPU).contiguous();
        return cpu.data<long>().ToArray();
    }

    static int[] ToIntIds(ReadOnlySpan<long> ids, string name)
    {
        var r = new int[ids.Length];
        for (int i = 0; i < ids.Length; i++)
        {
            if (ids[i] < -1 || ids[i] > int.MaxValue)
                throw new ArgumentException($"{name}[{i}] = {ids[i]}: expected a document id >= 0, or -1 for padding", name);
            r[i] = (int)ids[i];
        }
        return r;
    }

    /// <summary>One copy of a host array per device, made on first use (kept out of dispose scopes).</summary>
    internal sealed class DeviceCopies(long[] host)
    {
        readonly Dictionary<string, Tensor> _copies = [];

        public Tensor On(Device device)
        {
            lock (_copies)
            {
                var key = device.ToString();
                if (!_copies.TryGetValue(key, out var t))
                {
                    t = tensor(host, dtype: ScalarType.Int64).to(device).DetachFromDisposeScope();
                    _copies[key] = t;
                }
                return t;
            }
        }
    }

    internal static long[] Widen(int[] a)
    {
        var r = new long[a.Length];
        for (int i = 0; i < a.Length; i++) r[i] = a[i];
        return r;
    }
}

sealed class ConstMod(bool value) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv) => full(1, 1, value, dtype: ScalarType.Bool, device: q.device);
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1) => value ? BlockKind.Full : BlockKind.Empty;
    public override string ToString() => value ? "all" : "none";
}

sealed class CombineMod(bool isAnd, MaskMod[] parts) : MaskMod
{
    public bool IsAnd { get; } = isAnd;
    public MaskMod[] Parts { get; } = parts;

    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var scope = NewDisposeScope();
        var acc = Parts[0].Evaluate(q, kv);
        for (int i = 1; i < Parts.Length; i++)
            acc = IsAnd ? acc.logical_and(Parts[i].Evaluate(q, kv)) : acc.logical_or(Parts[i].Evaluate(q, kv));
        return acc.MoveToOuterDisposeScope();
    }

    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        bool allDecisive = true;
        foreach (var p in Parts)
        {
            var c = p.Classify(q0, q1, kv0, kv1);
            if (IsAnd && c == BlockKind.Empty) return BlockKind.Empty;
            if (!IsAnd && c == BlockKind.Full) return BlockKind.Full;
            if (c == BlockKind.Partial) allDecisive = false;
        }
        // AND with no Empty part: Full only if every part is Full. OR with no Full part: Empty only if every part is Empty.
        return allDecisive ? (IsAnd ? BlockKind.Full : BlockKind.Empty) : BlockKind.Partial;
    }

    public override string ToString() => "(" + string.Join(IsAnd ? " & " : " | ", Parts.Select(p => p.ToString())) + ")";
}

sealed class NotMod(MaskMod inner) : MaskMod
{
    public MaskMod Inner { get; } = inner;
    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var m = Inner.Evaluate(q, kv);
        return m.logical_not();
    }
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1) => Inner.Classify(q0, q1, kv0, kv1) switch
    {
        BlockKind.Empty => BlockKind.Full,
        BlockKind.Full => BlockKind.Empty,
        _ => BlockKind.Partial,
    };
    public override string ToString() => "!" + Inner;
}

sealed class CausalMod : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv) => kv.le(q);
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
        => kv1 - 1 <= q0 ? BlockKind.Full : kv0 > q1 - 1 ? BlockKind.Empty : BlockKind.Partial;
    public override string ToString() => "causal";
}

sealed class SlidingWindowMod(long window) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var d = q - kv;
        return d.lt(window);
    }
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
        => (q1 - 1) - kv0 < window ? BlockKind.Full : q0 - (kv1 - 1) >= window ? BlockKind.Empty : BlockKind.Partial;
    public override string ToString() => $"window({window})";
}

sealed class RangeMod(long lo, long hi, bool onKv) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        var x = onKv ? kv : q;
        using var a = x.ge(lo);
        using var b = x.lt(hi);
        return a.logical_and(b);
    }
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        long a = onKv ? kv0 : q0, b = onKv ? kv1 : q1;
        if (b <= lo || a >= hi) return BlockKind.Empty;
        return a >= lo && b <= hi ? BlockKind.Full : BlockKind.Partial;
    }
    public override string ToString() => $"{(onKv ? "kv" : "q")} in [{lo}, {hi})";
}

sealed class DocumentMod : MaskMod
{
    readonly int _n;
    readonly RangeMinMax _bounds;
    readonly DeviceCopies _doc;

    public DocumentMod(int[] docIds)
    {
        _n = docIds.Length;
        _bounds = new RangeMinMax(docIds);
        _doc = new DeviceCopies(Widen(docIds));
    }

    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var scope = NewDisposeScope();
        if (_n == 0) return zeros(1, 1, dtype: ScalarType.Bool, device: q.device).MoveToOuterDisposeScope();
        var doc = _doc.On(q.device);
        var dq = doc.take(q.clamp_max(_n - 1));
        var dk = doc.take(kv.clamp_max(_n - 1));
        var r = dq.eq(dk).logical_and(dq.ge(0)).logical_and(q.lt(_n)).logical_and(kv.lt(_n));
        return r.MoveToOuterDisposeScope();
    }

    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        if (q0 >= _n || kv0 >= _n) return BlockKind.Empty;
        var (qMin, qMax, qNeg) = _bounds.Query(q0, Math.Min(q1, _n));
        var (kMin, kMax, kNeg) = _bounds.Query(kv0, Math.Min(kv1, _n));
        if (qMax < 0 || kMax < 0) return BlockKind.Empty;               // only padding on one side
        if (qMax < kMin || kMax < qMin) return BlockKind.Empty;         // disjoint document ranges
        if (!qNeg && !kNeg && qMin == qMax && kMin == kMax && qMin == kMin && q1 <= _n && kv1 <= _n)
            return BlockKind.Full;                                      // one document on both sides
        return BlockKind.Partial;
    }

    public override string ToString() => $"document({_n})";
}

sealed class TttDiagonalMod(long seqLen) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var r = kv.remainder(seqLen);
        return r.eq(q);
    }

    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        // Some kv in [kv0, kv1) has kv mod L in [q0, q1)  <=>  some copy m·L + [q0, q1) meets [kv0, kv1).
        bool any = false;
        for (long m = kv0 / seqLen; m <= (kv1 - 1) / seqLen && !any; m++)
            any = Math.Max(kv0, m * seqLen + q0) < Math.Min(kv1, m * seqLen + q1);
        if (!any) return BlockKind.Empty;
        return q1 - q0 == 1 && kv1 - kv0 == 1 ? BlockKind.Full : BlockKind.Partial;
    }

    public override string ToString() => $"ttt_diagonal({seqLen})";
}

sealed class AnchorContextMod : MaskMod
{
    readonly long[] _anchors;
    readonly int[] _anchorDoc;     // doc[anchors[j]], -1 when the anchor is outside the context
    readonly int _blockSize;
    readonly long? _window;
    readonly long _contextLen;
    readonly RangeMinMax _docBounds;
    readonly DeviceCopies _anchorsT, _anchorDocT, _docT;

    public AnchorContextMod(long[] anchors, int[] docIds, int blockSize, long? window)
    {
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be >= 1");
        if (window is < 1) throw new ArgumentOutOfRangeException(nameof(window), window, "sliding window must be >= 1");
        if (anchors.Length == 0) throw new ArgumentException("anchors are empty", nameof(anchors));
        _anchors = anchors;
        _blockSize = blockSize;
        _window = window;
        _contextLen = docIds.Length;
        _anchorDoc = new int[anchors.Length];
        for (int j = 0; j < anchors.Length; j++)
        {
            if (anchors[j] < 0) throw new ArgumentException($"anchors[{j}] = {anchors[j]} is negative", nameof(anchors));
            _anchorDoc[j] = anchors[j] < docIds.Length ? docIds[anchors[j]] : -1;
        }
        _docBounds = new RangeMinMax(docIds);
        _anchorsT = new DeviceCopies(anchors);
        _anchorDocT = new DeviceCopies(Widen(_anchorDoc));
        _docT = new DeviceCopies(Widen(docIds));
    }

    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var scope = NewDisposeScope();
        long m = _anchors.Length;
        if (_contextLen == 0) return zeros(1, 1, dtype: ScalarType.Bool, device: q.device).MoveToOuterDisposeScope();
        var j = q.div(_blockSize, rounding_mode: RoundingMode.floor).clamp_max(m - 1);
        var a = _anchorsT.On(q.device).take(j);
        var d = _anchorDocT.On(q.device).take(j);
        var dk = _docT.On(q.device).take(kv.clamp_max(_contextLen - 1));
        var r = kv.lt(_contextLen).logical_and(q.lt(m * _blockSize)).logical_and(d.ge(0))
            .logical_and(dk.eq(d)).logical_and(kv.lt(a));
        if (_window is long w) r = r.logical_and(kv.ge(a - w));
        return r.MoveToOuterDisposeScope();
    }

    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        long m = _anchors.Length;
        if (q0 >= m * _blockSize || kv0 >= _contextLen) return BlockKind.Empty;
        long j0 = q0 / _blockSize, j1 = (Math.Min(q1, m * _blockSize) - 1) / _blockSize;
        long aMin = long.MaxValue, aMax = long.MinValue;
        int dMin = int.MaxValue, dMax = int.MinValue;
        bool dNeg = false;
        for (long j = j0; j <= j1; j++)
        {
            aMin = Math.Min(aMin, _anchors[j]);
            aMax = Math.Max(aMax, _anchors[j]);
            int d = _anchorDoc[j];
            if (d < 0) { dNeg = true; continue; }
            dMin = Math.Min(dMin, d);
            dMax = Math.Max(dMax, d);
        }
        if (dMax < 0) return BlockKind.Empty;                         // every anchor in padding
        if (kv0 >= aMax) return BlockKind.Empty;                      // all keys at or after every anchor
        if (_window is long w && Math.Min(kv1, _contextLen) - 1 < aMin - w) return BlockKind.Empty;
        var (kMin, kMax, kNeg) = _docBounds.Query(kv0, Math.Min(kv1, _contextLen));
        if (kMax < 0 || kMax < dMin || dMax < kMin) return BlockKind.Empty;
        bool full = !dNeg && !kNeg && dMin == dMax && kMin == kMax && kMin == dMin
            && q1 <= m * _blockSize && kv1 <= _contextLen && kv1 - 1 < aMin
            && (_window is not long w2 || kv0 >= aMax - w2);
        return full ? BlockKind.Full : BlockKind.Partial;
    }

    public override string ToString() => $"anchor_context(M={_anchors.Length}, B={_blockSize}, L={_contextLen}{(_window is long w ? $", window={w}" : "")})";
}

sealed class AnchorBlockMod(long contextLen, int blockSize, bool causal) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv)
    {
        using var scope = NewDisposeScope();
        var rel = kv - contextLen;
        var r = kv.ge(contextLen).logical_and(
            rel.div(blockSize, rounding_mode: RoundingMode.floor).eq(q.div(blockSize, rounding_mode: RoundingMode.floor)));
        if (causal) r = r.logical_and(rel.le(q));
        return r.MoveToOuterDisposeScope();
    }

    public override BlockKind Classify(long q0, long q1, long kv0, long kv1)
    {
        if (kv1 <= contextLen) return BlockKind.Empty;
        long r0 = Math.Max(kv0, contextLen) - contextLen, r1 = kv1 - contextLen;   // block-token offsets [r0, r1)
        long qa0 = q0 / blockSize, qa1 = (q1 - 1) / blockSize;
        long ka0 = r0 / blockSize, ka1 = (r1 - 1) / blockSize;
        if (qa1 < ka0 || ka1 < qa0) return BlockKind.Empty;             // no shared anchor block
        if (causal && r0 > q1 - 1) return BlockKind.Empty;
        bool full = kv0 >= contextLen && qa0 == qa1 && ka0 == ka1 && qa0 == ka0 && (!causal || r1 - 1 <= q0);
        return full ? BlockKind.Full : BlockKind.Partial;
    }

    public override string ToString() => $"anchor_block(L={contextLen}, B={blockSize}{(causal ? ", causal" : "")})";
}

sealed class CustomMod(Func<Tensor, Tensor, Tensor> evaluate, string name) : MaskMod
{
    public override Tensor Evaluate(Tensor q, Tensor kv) => evaluate(q, kv);
    public override BlockKind Classify(long q0, long q1, long kv0, long kv1) => BlockKind.Partial;
    public override string ToString() => name;
}
