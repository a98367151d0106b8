using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Modeling;

/// <summary>What an attention backend needs to know about the calling layer.</summary>
/// <param name="LayerIndex">index of the decoder layer (keys per-layer state such as a KV cache)</param>
/// <param name="NumHeads">query heads</param>
/// <param name="NumKvHeads">key/value heads (GQA when fewer than query heads)</param>
/// <param name="HeadDim">channels per head</param>
/// <param name="Scale">softmax scale (HF: head_dim^-0.5)</param>
/// <param name="SlidingWindow">tokens a query may see, itself included; null = full causal attention</param>
public readonly record struct AttentionLayerInfo(int LayerIndex, int NumHeads, int NumKvHeads, int HeadDim, double Scale, int? SlidingWindow);

/// <summary>
/// The attention computation of <see cref="Attention"/>, supplied by the caller: inference uses
/// <see cref="SdpaAttentionBackend"/> (causal/padding/sliding masks, KV cache); training plugs in a
/// block-sparse backend with document masks and extra keys per TTT step.
/// </summary>
public interface IAttentionBackend
{
    /// <summary>
    /// <paramref name="q"/> [B, heads, T, hd] and <paramref name="k"/>, <paramref name="v"/> [B, kv_heads, T, hd]
    /// for the current tokens (after q/k norms and RoPE). Returns [B, heads, T, hd].
    /// </summary>
    Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer);
}

/// <summary>Shared attention math: GQA expansion and scaled-dot-product attention with an explicit scale.</summary>
public static class AttentionMath
{
    /// <summary>HF <c>repeat_kv</c>: [B, kv, T, hd] → [B, kv·n, T, hd], each kv head repeated n times in place.</summary>
    public static Tensor RepeatKv(Tensor x, int nRep)
    {
        if (nRep == 1) return x.alias();
        long b = x.shape[0], kv = x.shape[1], t = x.shape[2], hd = x.shape[3];
        using var e = x.unsqueeze(2).expand(b, kv, nRep, t, hd);
        return e.reshape(b, kv * nRep, t, hd);
    }

    /// <summary>
    /// softmax(q·kᵀ·scale + mask)·v via libtorch SDPA. <paramref name="mask"/> is boolean (true = attend),
    /// broadcastable to [B, heads, Tq, Tk]; <paramref name="causal"/> applies the top-left causal mask instead.
    /// TorchSharp's SDPA has no scale argument; a scale other than hd^-0.5 is folded into q.
    /// </summary>
    public static Tensor Sdpa(Tensor q, Tensor k, Tensor v, Tensor? mask, bool causal, double scale)
    {
        if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4 || q.shape[0] != k.shape[0] || q.shape[1] != k.shape[1]
            || q.shape[3] != k.shape[3] || k.shape[2] != v.shape[2] || k.shape[1] != v.shape[1])
            throw new SpeculatorsException(
                $"attention shapes do not match: q [{string.Join(", ", q.shape)}], k [{string.Join(", ", k.shape)}], v [{string.Join(", ", v.shape)}].");
        double defaultScale = 1.0 / Math.Sqrt(q.shape[3]);
        using var scope = NewDisposeScope();
        var qs = Math.Abs(scale - defaultScale) > 1e-12 * defaultScale ? q.mul(scale / defaultScale) : q;
        return F.scaled_dot_product_attention(qs, k, v, mask, 0.0, causal).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Default inference backend: libtorch SDPA with GQA expansion, a causal mask over cache slots, padding
/// masks and sliding windows, and an optional <see cref="KvCache"/>. One instance serves one forward step
/// (it precomputes the masks for that step's shape); <see cref="CausalLM.Forward"/> creates it.
/// <para>Padding: with a cache, each row of the attention mask must be right-padded (valid tokens first);
/// without a cache any 0/1 pattern works (left padding too). Outputs at padded positions are finite but
/// meaningless.</para>
/// </summary>
public sealed class SdpaAttentionBackend : IAttentionBackend, IDisposable
{
    readonly KvCache? _cache;
    readonly long[] _starts;
    readonly long[] _validNew;
    readonly Tensor? _keyValid;   // no cache: [B, T] bool
    readonly Tensor? _queryValid; // no cache: [B, T] bool
    readonly bool _anyPadding;
    readonly int _tokens;
    readonly Dictionary<int, Tensor?> _masks = new();

    /// <param name="cache">cache to append to and attend over, or null</param>
    /// <param name="attentionMask">[B, T] 1 = token, 0 = padding, or null (no padding)</param>
    /// <param name="batch">B</param>
    /// <param name="tokens">T of this step</param>
    public SdpaAttentionBackend(KvCache? cache, Tensor? attentionMask, int batch, int tokens)
    {
        _cache = cache;
        _tokens = tokens;
        _starts = cache != null ? cache.Lengths.ToArray() : new long[batch];
        _validNew = Enumerable.Repeat((long)tokens, batch).ToArray();
        if (attentionMask is not null)
        {
            using var m = attentionMask.to(ScalarType.Bool).cpu();
            var rows = m.to(ScalarType.Int64).data<long>().ToArray();
            for (int b = 0; b < batch; b++)
            {
                long count = 0;
                bool seenPad = false;
                for (int t = 0; t < tokens; t++)
                {
                    bool valid = rows[b * tokens + t] != 0;
                    if (valid)
                    {
                        count++;
                        if (seenPad && cache != null)
                            throw new SpeculatorsException(
                                $"attention mask row {b} has a token after padding; with a KV cache, pad on the right (valid tokens first).");
                    }
                    else seenPad = true;
                }
                _validNew[b] = count;
                if (count != tokens) _anyPadding = true;
            }
            if (cache is null && _anyPadding)
            {
                _keyValid = attentionMask.to(ScalarType.Bool).DetachFromDisposeScope();
                _queryValid = _keyValid.alias().DetachFromDisposeScope();
            }
        }
    }

    /// <summary>Valid new tokens per sequence in this step (what the cache advances by).</summary>
    public IReadOnlyList<long> ValidNewTokens => _validNew;

    public Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer)
    {
        using var scope = NewDisposeScope();
        Tensor keys = k, values = v;
        if (_cache is not null) (keys, values) = _cache.Append(layer.LayerIndex, k, v, _starts);
        int nRep = layer.NumHeads / layer.NumKvHeads;
        keys = AttentionMath.RepeatKv(keys, nRep);
        values = AttentionMath.RepeatKv(values, nRep);
        long lk = keys.shape[2];
        int? window = layer.SlidingWindow is int w && w < lk ? w : null;
        bool noOffset = _starts.All(s => s == 0);
        Tensor? mask = null;
        bool causal = false;
        if (!_anyPadding && window == null && noOffset && lk == _tokens)
            causal = true;
        else if (!_anyPadding && window == null && _tokens == 1 && q.shape[0] == 1)
            mask = null; // one new token of one sequence sees every cached slot
        else
            mask = Mask(window, q.device, lk);
        return AttentionMath.Sdpa(q, keys, values, mask, causal, layer.Scale).MoveToOuterDisposeScope();
    }

    Tensor Mask(int? window, Device device, long lk)
    {
        int key = window ?? -1;
        if (_masks.TryGetValue(key, out var cached) && cached is not null && cached.shape[3] == lk) return cached.alias();
        var result = BuildMask(window, device, lk);
        if (_masks.TryGetValue(key, out var old)) old?.Dispose();
        _masks[key] = result;
        return result.alias();
    }

    Tensor BuildMask(int? window, Device device, long lk)
    {
        using var scope = NewDisposeScope();
        int batch = _starts.Length;
        var starts = torch.tensor(_starts, device: device).view(batch, 1, 1, 1);
        var qSlot = torch.arange(_tokens, ScalarType.Int64, device).view(1, 1, _tokens, 1).add(starts);
        var kSlot = torch.arange(lk, ScalarType.Int64, device).view(1, 1, 1, lk);
        var allowed = kSlot.le(qSlot);
        Tensor queryValid;
        if (_cache is not null)
        {
            var ends = torch.tensor(_starts.Zip(_validNew, (s, n) => s + n).ToArray(), device: device).view(batch, 1, 1, 1);
            allowed = allowed.logical_and(kSlot.lt(ends));
            queryValid = qSlot.lt(ends);
        }
        else if (_keyValid is not null)
        {
            var kv = _keyValid.to(device).view(batch, 1, 1, _tokens);
            allowed = allowed.logical_and(kv);
            queryValid = _queryValid!.to(device).view(batch, 1, _tokens, 1);
        }
        else
        {
            queryValid = torch.ones([batch, 1, _tokens, 1], ScalarType.Bool, device);
        }
        if (window is int w) allowed = allowed.logical_and(kSlot.gt(qSlot.sub(w)));
        // Padded query rows attend to their own slot only, so no row is empty (SDPA would give NaN).
        allowed = allowed.logical_or(kSlot.eq(qSlot).logical_and(queryValid.logical_not()));
        return allowed.DetachFromDisposeScope();
    }

    public void Dispose()
    {
        foreach (var m in _masks.Values) m?.Dispose();
        _masks.Clear();
        _keyValid?.Dispose();
        _queryValid?.Dispose();
    }
}
