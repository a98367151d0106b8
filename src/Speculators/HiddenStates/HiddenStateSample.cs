using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>Where a sample came from.</summary>
public enum SampleOrigin
{
    /// <summary>Read from <c>hs_{i}.safetensors</c>.</summary>
    File,
    /// <summary>Computed by the verifier for this request.</summary>
    Generated,
}

/// <summary>Why a row has no sample (counted in <see cref="HiddenStateProviderStats"/>).</summary>
public enum HiddenStateSkipReason
{
    /// <summary>No file and the policy did not generate one.</summary>
    Missing,
    /// <summary>The file is not a readable safetensors file (truncated, corrupt header, I/O error).</summary>
    Unreadable,
    /// <summary><c>hidden_states</c> or <c>token_ids</c> absent.</summary>
    WrongKeys,
    /// <summary>A tensor has another element type than the store's.</summary>
    WrongDType,
    /// <summary>A tensor has another shape than [T, A+1, H] / [T].</summary>
    WrongShape,
    /// <summary><c>token_ids</c> differs from the prepared row's <c>input_ids</c>.</summary>
    TokenMismatch,
    /// <summary><c>hidden_states</c> holds NaN or ±Inf.</summary>
    NonFinite,
    /// <summary>The row is longer than the verifier's context and the store skips such rows.</summary>
    TooLong,
}

/// <summary>
/// Hidden states of one prepared row: <see cref="Hidden"/> [T, A+1, H] on the CPU in the store dtype (aux
/// ids ascending, then layer N) and <see cref="TokenIds"/> [T] (equal to the row's <c>input_ids</c>, or their
/// first T when the store truncates long rows).
/// <para>
/// Ownership: the caller owns the sample and must <see cref="Dispose"/> it. <see cref="Hidden"/> is detached
/// from every dispose scope when it is handed out, so a sample survives the scope of the code that asked for
/// it (including a scope on the thread where a provider completed synchronously); to let a scope manage it
/// instead, call <c>sample.Hidden.MoveToOtherDisposeScope(...)</c> or attach it yourself.
/// </para>
/// </summary>
public sealed class HiddenStateSample : IDisposable
{
    bool _disposed;

    public HiddenStateSample(int row, long[] tokenIds, Tensor hidden, SampleOrigin origin)
    {
        if (hidden.dim() != 3 || hidden.shape[0] != tokenIds.Length)
            throw new ArgumentException($"hidden states [{string.Join(", ", hidden.shape)}] do not match {tokenIds.Length} token ids.");
        Row = row;
        TokenIds = tokenIds;
        Hidden = hidden.DetachFromDisposeScope();
        Origin = origin;
    }

    /// <summary>Prepared-dataset row index (the <c>i</c> of <c>hs_{i}.safetensors</c>).</summary>
    public int Row { get; }
    /// <summary>T token ids.</summary>
    public long[] TokenIds { get; }
    /// <summary>[T, A+1, H], CPU, store dtype. Owned by this sample.</summary>
    public Tensor Hidden { get; }
    public SampleOrigin Origin { get; }
    /// <summary>T.</summary>
    public int Length => TokenIds.Length;

    /// <summary>
    /// The auxiliary states flattened layer-major, [T, A·H] (<c>[aux0 | aux1 | …]</c>, speculators.md §3.1).
    /// A new tensor in the current dispose scope.
    /// </summary>
    public Tensor AuxFlat()
    {
        long t = Hidden.shape[0], a = Hidden.shape[1] - 1, h = Hidden.shape[2];
        using var aux = Hidden.narrow(1, 0, a);
        return aux.reshape(t, a * h);
    }

    /// <summary>Layer N's states (verifier last hidden states, before the final norm), [T, H]. A new view in the current scope.</summary>
    public Tensor LastLayer() => Hidden.select(1, Hidden.shape[1] - 1);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Hidden.Dispose();
    }
}
