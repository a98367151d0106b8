using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>
/// Per-layer key/value cache for a batch of sequences, each with its own length.
/// Layout: K and V [B, kv_heads, capacity, head_dim] per layer, grown by doubling. Sequence b's tokens
/// occupy slots [0, Lengths[b]); a forward step writes its T new tokens at slots Lengths[b] + t and
/// then advances each length by the number of valid (unpadded) new tokens, so sequences of different
/// lengths decode together. <see cref="Truncate(IReadOnlyList{long})"/> rolls sequences back (rejected
/// speculative drafts); stale slots past a length are never attended to and get overwritten.
/// </summary>
public sealed class KvCache : IDisposable
{
    readonly long[] _lengths;
    readonly Dictionary<int, (Tensor K, Tensor V)> _layers = new();
    long _capacity;

    public int BatchSize { get; }
    /// <summary>Valid tokens per sequence.</summary>
    public IReadOnlyList<long> Lengths => _lengths;
    public long MaxLength => _lengths.Length == 0 ? 0 : _lengths.Max();
    /// <summary>Allocated slots per sequence (grows on demand).</summary>
    public long Capacity => _capacity;
    public int LayerCount => _layers.Count;

    public KvCache(int batchSize, long initialCapacity = 64)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize));
        BatchSize = batchSize;
        _lengths = new long[batchSize];
        _capacity = Math.Max(1, initialCapacity);
    }

    /// <summary>
    /// Writes <paramref name="k"/>, <paramref name="v"/> [B, kv_heads, T, hd] of <paramref name="layer"/> at
    /// slots <c>starts[b] + t</c> and returns views of the slots [0, max_b(starts[b] + T)) of that layer.
    /// Lengths do not change until <see cref="Commit"/>.
    /// </summary>
    public (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v, IReadOnlyList<long> starts)
    {
        if (k.shape[0] != BatchSize || v.shape[0] != BatchSize)
            throw new SpeculatorsException($"KV cache holds {BatchSize} sequences but the step has batch {k.shape[0]}.");
        long t = k.shape[2];
        long end = 0;
        for (int b = 0; b < BatchSize; b++) end = Math.Max(end, starts[b] + t);
        if (!_layers.TryGetValue(layer, out var kv))
        {
            while (_capacity < end) _capacity *= 2;
            kv = (Alloc(k, _capacity), Alloc(v, _capacity));
            _layers[layer] = kv;
        }
        else if (kv.K.shape[2] < end || kv.K.shape[1] != k.shape[1] || kv.K.shape[3] != k.shape[3])
        {
            if (kv.K.shape[1] != k.shape[1] || kv.K.shape[3] != k.shape[3])
                throw new SpeculatorsException($"KV cache layer {layer} holds [{string.Join(", ", kv.K.shape)}] entries; the step gives [{string.Join(", ", k.shape)}].");
            long cap = kv.K.shape[2];
            while (cap < end) cap *= 2;
            _capacity = Math.Max(_capacity, cap);
            kv = (Grow(kv.K, cap), Grow(kv.V, cap));
            _layers[layer] = kv;
        }
        using (torch.no_grad())
        {
            bool uniform = starts.All(s => s == starts[0]);
            if (uniform)
            {
                using var kd = kv.K.narrow(2, starts[0], t);
                using var vd = kv.V.narrow(2, starts[0], t);
                kd.copy_(k);
                vd.copy_(v);
            }
            else
            {
                for (int b = 0; b < BatchSize; b++)
                {
                    using var kb = kv.K[b].narrow(1, starts[b], t);
                    using var vb = kv.V[b].narrow(1, starts[b], t);
                    using var ks = k[b];
                    using var vs = v[b];
                    kb.copy_(ks);
                    vb.copy_(vs);
                }
            }
        }
        return (kv.K.narrow(2, 0, end), kv.V.narrow(2, 0, end));
    }

    static Tensor Alloc(Tensor like, long capacity) =>
        torch.zeros([like.shape[0], like.shape[1], capacity, like.shape[3]], like.dtype, like.device).DetachFromDisposeScope();

    static Tensor Grow(Tensor old, long capacity)
    {
        var grown = torch.zeros([old.shape[0], old.shape[1], capacity, old.shape[3]], old.dtype, old.device).DetachFromDisposeScope();
        using (torch.no_grad())
        using (var dst = grown.narrow(2, 0, old.shape[2]))
            dst.copy_(old);
        old.Dispose();
        return grown;
    }

    /// <summary>Advances each sequence by <paramref name="added"/>[b] tokens after a successful step.</summary>
    public void Commit(IReadOnlyList<long> added)
    {
        if (added.Count != BatchSize) throw new ArgumentException($"expected {BatchSize} counts", nameof(added));
        for (int b = 0; b < BatchSize; b++) _lengths[b] += added[b];
    }

    /// <summary>Rolls every sequence back to at most <paramref name="length"/> tokens.</summary>
    public void Truncate(long length) => Truncate(Enumerable.Repeat(length, BatchSize).ToArray());

    /// <summary>Rolls sequence b back to <paramref name="lengths"/>[b] tokens (must not exceed its current length).</summary>
    public void Truncate(IReadOnlyList<long> lengths)
    {
        if (lengths.Count != BatchSize) throw new SpeculatorsException($"KV cache truncate: expected {BatchSize} lengths, got {lengths.Count}.");
        for (int b = 0; b < BatchSize; b++)
            if (lengths[b] < 0 || lengths[b] > _lengths[b])
                throw new SpeculatorsException($"KV cache truncate: sequence {b} has {_lengths[b]} tokens; cannot set its length to {lengths[b]}.");
        for (int b = 0; b < BatchSize; b++) _lengths[b] = lengths[b];
    }

    /// <summary>Empties every sequence (keeps the allocation).</summary>
    public void Reset() => Array.Clear(_lengths);

    public void Dispose()
    {
        foreach (var (k, v) in _layers.Values)
        {
            k.Dispose();
            v.Dispose();
        }
        _layers.Clear();
    }
}
