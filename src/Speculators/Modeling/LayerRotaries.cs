using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>
/// The rotary embeddings of a stack of layers: one <see cref="RotaryEmbedding"/> per distinct RoPE config
/// (<see cref="DecoderConfig.RopeFor"/>; sliding-window and full-attention layers may differ), shared by the layers
/// that use it. The verifier's decoder and the Eagle-3 draft both hold one.
/// </summary>
public sealed class LayerRotaries : IDisposable
{
    readonly RotaryEmbedding[] _rotaries;
    readonly int[] _ofLayer;

    public LayerRotaries(DecoderConfig config)
    {
        var distinct = new List<RopeConfig>();
        _ofLayer = new int[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            var r = config.RopeFor(i);
            int idx = distinct.IndexOf(r);
            if (idx < 0)
            {
                distinct.Add(r);
                idx = distinct.Count - 1;
            }
            _ofLayer[i] = idx;
        }
        _rotaries = distinct.Select(r => new RotaryEmbedding(r)).ToArray();
    }

    /// <summary>The rotary embedding of <paramref name="layer"/>.</summary>
    public RotaryEmbedding For(int layer) => _rotaries[_ofLayer[layer]];

    /// <summary>
    /// cos/sin tables for one forward pass: each distinct embedding is evaluated once, on the first layer that asks.
    /// Create it inside the forward's dispose scope.
    /// </summary>
    public Tables ForPositions(Tensor positionIds, ScalarType dtype) => new(this, positionIds, dtype);

    /// <summary>The lazily computed cos/sin tables of one forward pass.</summary>
    public sealed class Tables
    {
        readonly LayerRotaries _owner;
        readonly Tensor _positions;
        readonly ScalarType _dtype;
        readonly (Tensor Cos, Tensor Sin)?[] _tables;

        internal Tables(LayerRotaries owner, Tensor positions, ScalarType dtype)
        {
            _owner = owner;
            _positions = positions;
            _dtype = dtype;
            _tables = new (Tensor, Tensor)?[owner._rotaries.Length];
        }

        /// <summary>cos and sin for <paramref name="layer"/>.</summary>
        public (Tensor Cos, Tensor Sin) For(int layer)
        {
            int r = _owner._ofLayer[layer];
            _tables[r] ??= _owner._rotaries[r].Forward(_positions, _dtype);
            return _tables[r]!.Value;
        }
    }

    public void Dispose()
    {
        foreach (var r in _rotaries) r.Dispose();
    }
}
