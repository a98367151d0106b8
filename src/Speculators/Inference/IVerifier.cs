using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>
/// The target model as the decoder sees it: a causal LM that extends a batch of sequences held in its
/// KV cache and can roll sequences back. <see cref="CausalLmVerifier"/> adapts our HF models; tests
/// plug in small doubles. Decoding math (argmax, sampling, acceptance) happens in the decoder, so an
/// implementation only runs the model.
/// </summary>
public interface IVerifier
{
    /// <summary>Target vocabulary size V (logit columns).</summary>
    int VocabSize { get; }
    /// <summary>Hidden size H of the captured hidden states.</summary>
    int HiddenSize { get; }
    /// <summary>Decoder layers N (capture ids are in [0, N]).</summary>
    int NumLayers { get; }
    /// <summary>Longest sequence (prompt + generated tokens) the model supports (<c>max_position_embeddings</c>).</summary>
    int MaxContextLength { get; }
    /// <summary>Where logits and hidden states live.</summary>
    Device Device { get; }
    /// <summary>For reports: what the model is (architecture, dtype, path).</summary>
    string Description { get; }

    /// <summary>
    /// Starts a batch of <paramref name="batchSize"/> empty sequences with their own KV cache. Every
    /// <see cref="IVerifierSession.Extend"/> returns the hidden states of <paramref name="captureLayerIds"/>
    /// (vLLM capture ids: id k = residual stream entering layer k; ascending) concatenated per token.
    /// </summary>
    IVerifierSession StartSession(int batchSize, IReadOnlyList<int> captureLayerIds);
}

/// <summary>A batch of sequences in one KV cache (see <see cref="IVerifier.StartSession"/>).</summary>
public interface IVerifierSession : IDisposable
{
    int BatchSize { get; }
    /// <summary>Tokens held in the cache per sequence.</summary>
    IReadOnlyList<long> Lengths { get; }

    /// <summary>
    /// Appends <paramref name="tokens"/>[b] to sequence b (positions <c>Lengths[b]</c>…; an empty list leaves
    /// the sequence alone) in one forward pass and advances the lengths.
    /// </summary>
    /// <param name="tokens">new tokens per sequence (count = <see cref="BatchSize"/>)</param>
    /// <param name="lastOnly">true: logits only at each sequence's last new token (<c>[B, 1, V]</c>); false: at every new token</param>
    VerifierStep Extend(IReadOnlyList<IReadOnlyList<long>> tokens, bool lastOnly);

    /// <summary>Rolls sequence b back to <paramref name="lengths"/>[b] tokens (≤ its length): rejected drafts leave the cache.</summary>
    void Truncate(IReadOnlyList<long> lengths);
}

/// <summary>
/// One <see cref="IVerifierSession.Extend"/> result; owns its tensors. Rows are right-padded: row b's
/// first <see cref="Counts"/>[b] slots are its new tokens, later slots are meaningless.
/// </summary>
public sealed class VerifierStep : IDisposable
{
    /// <summary><c>[B, T, V]</c> logits (any float dtype) at the new tokens, or <c>[B, 1, V]</c> when only the last was asked for.</summary>
    public required Tensor Logits { get; init; }
    /// <summary><c>[B, T, A·H]</c> captured hidden states of every new token (layer-major concatenation, as vLLM's <c>torch.cat</c>), or null when none were asked for.</summary>
    public Tensor? AuxHidden { get; init; }
    /// <summary>New tokens per sequence.</summary>
    public required int[] Counts { get; init; }

    public void Dispose()
    {
        Logits.Dispose();
        AuxHidden?.Dispose();
    }
}
