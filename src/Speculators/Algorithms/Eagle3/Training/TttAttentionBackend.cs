using Speculators.Attention;
using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// The attention of the TTT loop (speculators.md §3.6–3.7): every draft layer appends this step's keys/values to its
/// own per-step list (the training "KV cache"), and the queries of step k attend over the keys of steps 0..k laid out
/// [step 0 | … | step k] (kv_len = (k+1)·L) through <see cref="FlexAttention"/> with the step's
/// <see cref="BlockMask"/> from <see cref="Eagle3MaskSet"/> (the document-causal mask, with the layer's sliding
/// window, OR the TTT diagonal). Inside an <see cref="Autocast"/> region q/k/v are cast to the compute dtype (torch's
/// autocast runs attention in bf16); outside one they share the query's dtype. Gradients flow to every step's k/v.
/// One instance serves one forward; call <see cref="NextStep"/> between TTT steps and dispose it after the forward
/// (the graph keeps what the backward needs).
/// </summary>
public sealed class TttAttentionBackend : IAttentionBackend, IDisposable
{
    readonly Eagle3MaskSet _masks;
    readonly Dictionary<int, (List<Tensor> Keys, List<Tensor> Values)> _cache = new();
    int _step;

    public TttAttentionBackend(Eagle3MaskSet masks)
    {
        _masks = masks;
    }

    /// <summary>The current TTT step k.</summary>
    public int Step => _step;

    /// <summary>Moves to the next TTT step; every layer must have attended once in the current one.</summary>
    public void NextStep()
    {
        foreach (var (layer, c) in _cache)
            if (c.Keys.Count != _step + 1)
                throw new InvalidOperationException($"draft layer {layer} attended {c.Keys.Count} times by the end of TTT step {_step}; expected {_step + 1}.");
        _step++;
    }

    public Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer)
    {
        long l = _masks.Length;
        if (q.shape[0] != 1 || q.shape[2] != l || k.shape[2] != l || v.shape[2] != l)
            throw new SpeculatorsException(
                $"TTT attention expects one packed row of {l} positions per step; got q [{string.Join(", ", q.shape)}], k [{string.Join(", ", k.shape)}].");
        if (!_cache.TryGetValue(layer.LayerIndex, out var c))
        {
            if (_step != 0) throw new InvalidOperationException($"draft layer {layer.LayerIndex} first attended at TTT step {_step}.");
            _cache[layer.LayerIndex] = c = ([], []);
        }
        if (c.Keys.Count != _step)
            throw new InvalidOperationException($"draft layer {layer.LayerIndex} attended twice in TTT step {_step}.");
        // Own handles (the caller's scope disposes k and v when the layer returns); alias keeps the autograd edge.
        c.Keys.Add(k.alias().DetachFromDisposeScope());
        c.Values.Add(v.alias().DetachFromDisposeScope());

        using var scope = NewDisposeScope();
        var keys = c.Keys.Count == 1 ? c.Keys[0].alias() : torch.cat(c.Keys, 2);
        var values = c.Values.Count == 1 ? c.Values[0].alias() : torch.cat(c.Values, 2);
        var qq = Autocast.Cast(q);
        keys = Autocast.Cast(keys);
        values = Autocast.Cast(values);
        if (keys.dtype != qq.dtype) keys = keys.to(qq.dtype);
        if (values.dtype != qq.dtype) values = values.to(qq.dtype);
        var mask = _masks.For(layer.SlidingWindow, _step);
        return FlexAttention.Forward(qq, keys, values, mask, layer.Scale).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        foreach (var (keys, values) in _cache.Values)
        {
            foreach (var t in keys) t.Dispose();
            foreach (var t in values) t.Dispose();
        }
        _cache.Clear();
    }
}
