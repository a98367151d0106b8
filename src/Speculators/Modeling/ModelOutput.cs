using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>Which positions <see cref="CausalLM.Forward"/> computes logits for.</summary>
public sealed class LogitsSelection
{
    internal enum Kind { All, None, Last, At }

    internal Kind Mode { get; }
    internal Tensor? Positions { get; }

    LogitsSelection(Kind mode, Tensor? positions = null)
    {
        Mode = mode;
        Positions = positions;
    }

    /// <summary>Every position: logits [B, T, V].</summary>
    public static readonly LogitsSelection All = new(Kind.All);
    /// <summary>No logits (hidden states only; the lm_head matmul is skipped).</summary>
    public static readonly LogitsSelection None = new(Kind.None);
    /// <summary>The last valid token of each sequence (per the attention mask): logits [B, 1, V].</summary>
    public static readonly LogitsSelection Last = new(Kind.Last);
    /// <summary>Given positions [B, K] (int64, indices into this step's T tokens): logits [B, K, V].</summary>
    public static LogitsSelection At(Tensor positions) => new(Kind.At, positions);
}

/// <summary>
/// Result of <see cref="CausalLM.Forward"/>. Owns its tensors (dispose it, or move what you keep).
/// </summary>
public sealed class ModelOutput : IDisposable
{
    /// <summary>Logits in the model dtype: [B, T, V] (all), [B, K, V] (selected), or null.</summary>
    public Tensor? Logits { get; init; }
    /// <summary>For selected logits, the token index of each row [B, K] (int64); null for all/none.</summary>
    public Tensor? LogitsPositions { get; init; }
    /// <summary>Captured residual streams [B, T, A, H] in ascending <see cref="CaptureLayerIds"/> order, or null.</summary>
    public Tensor? HiddenStates { get; init; }
    /// <summary>The capture ids (sorted, distinct) that <see cref="HiddenStates"/> holds.</summary>
    public IReadOnlyList<int> CaptureLayerIds { get; init; } = [];
    /// <summary>Residual stream after the last layer that ran, before the final norm [B, T, H].</summary>
    public required Tensor LastHidden { get; init; }

    public void Dispose()
    {
        Logits?.Dispose();
        LogitsPositions?.Dispose();
        HiddenStates?.Dispose();
        LastHidden.Dispose();
    }
}
