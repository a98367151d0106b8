using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>
/// cos/sin tables from position ids, as transformers' <c>*RotaryEmbedding.forward</c> computes them: in
/// float32, <c>freqs = pos · inv_freq</c>, <c>emb = cat(freqs, freqs)</c>, <c>cos = cos(emb)·scaling</c>
/// (likewise sin), then cast to the model dtype. Training, data generation and decoding all go through
/// this one class, so their RoPE is bit-identical. Holds no parameters (HF's <c>inv_freq</c> is a
/// non-persistent buffer, not a checkpoint key).
/// </summary>
public sealed class RotaryEmbedding : IDisposable
{
    readonly Dictionary<string, Tensor> _invFreqByDevice = new(StringComparer.Ordinal);
    readonly object _gate = new();

    public RopeConfig Config { get; }
    public int RotaryDim => Config.RotaryDim;

    public RotaryEmbedding(RopeConfig config)
    {
        config.Validate("rotary embedding");
        Config = config;
    }

    Tensor InvFreq(Device device, long seqLen)
    {
        if (Config.Type == RopeType.Dynamic && seqLen > Config.MaxPositionEmbeddings)
        {
            using var cpu = Config.InverseFrequencies(seqLen);
            return cpu.to(device);
        }
        lock (_gate)
        {
            string key = $"{device.type}:{device.index}";
            if (!_invFreqByDevice.TryGetValue(key, out var t))
            {
                using var cpu = Config.InverseFrequencies();
                t = cpu.to(device).DetachFromDisposeScope();
                _invFreqByDevice[key] = t;
            }
            return t.alias();
        }
    }

    /// <summary>
    /// cos and sin [B, T, RotaryDim] in <paramref name="dtype"/> for <paramref name="positionIds"/> [B, T] (int64).
    /// Dynamic NTK uses <c>max(positionIds) + 1</c> as the sequence length, like transformers.
    /// </summary>
    public (Tensor Cos, Tensor Sin) Forward(Tensor positionIds, ScalarType dtype)
    {
        if (positionIds.dim() != 2)
            throw new SpeculatorsException($"position ids must be [batch, tokens], got shape [{string.Join(", ", positionIds.shape)}].");
        using var scope = NewDisposeScope();
        long seqLen = 0;
        if (Config.Type == RopeType.Dynamic && positionIds.numel() > 0) seqLen = positionIds.max().item<long>() + 1;
        var invFreq = InvFreq(positionIds.device, seqLen);
        var freqs = positionIds.to(ScalarType.Float32).unsqueeze(-1).mul(invFreq.view(1, 1, -1));
        var emb = torch.cat([freqs, freqs], -1);
        double scaling = Config.AttentionScaling;
        var cos = emb.cos().mul(scaling).to(dtype);
        var sin = emb.sin().mul(scaling).to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>rotate_half: <c>[x1, x2] → [−x2, x1]</c> over the last dimension.</summary>
    public static Tensor RotateHalf(Tensor x)
    {
        long half = x.shape[^1] / 2;
        using var x1 = x.narrow(-1, 0, half);
        using var x2 = x.narrow(-1, half, half);
        using var neg = x2.neg();
        return torch.cat([neg, x1], -1);
    }

    /// <summary>
    /// Applies RoPE to <paramref name="x"/> [B, heads, T, head_dim] with cos/sin [B, T, rd]:
    /// <c>x·cos + rotate_half(x)·sin</c> on the first rd channels; the rest pass through (partial rotary).
    /// </summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        long rd = cos.shape[^1];
        long hd = x.shape[^1];
        if (rd > hd || cos.shape[0] != x.shape[0] || cos.shape[1] != x.shape[2])
            throw new SpeculatorsException(
                $"RoPE tables [{string.Join(", ", cos.shape)}] do not fit a [batch, heads, tokens, head_dim] tensor of shape [{string.Join(", ", x.shape)}].");
        var c = cos.unsqueeze(1);
        var s = sin.unsqueeze(1);
        Tensor result;
        if (rd == hd)
        {
            result = x.mul(c).add(RotateHalf(x).mul(s));
        }
        else
        {
            var rot = x.narrow(-1, 0, rd);
            var pass = x.narrow(-1, rd, hd - rd);
            result = torch.cat([rot.mul(c).add(RotateHalf(rot).mul(s)), pass], -1);
        }
        return result.MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            foreach (var t in _invFreqByDevice.Values) t.Dispose();
            _invFreqByDevice.Clear();
        }
    }
}
