using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>
/// What a draft learns after the verifier has accepted tokens of one sequence: the verified positions
/// <c>p … p+n−1</c> (<see cref="StartPosition"/> = p), each with the token that follows it
/// (<see cref="NextTokens"/> = x_{p+1} … x_{p+n}; the last one is the token just sampled, not yet in the
/// verifier's cache) and the verifier's captured hidden states at those positions.
/// <para>Contract: every draft state of this sequence at positions ≥ p is stale (rejected drafts) and is
/// replaced; positions &lt; p stay. The first observation of a sequence starts at 0 and covers the prompt.</para>
/// </summary>
/// <param name="Sequence">row of the batch</param>
/// <param name="StartPosition">p</param>
/// <param name="NextTokens">x_{p+1} … x_{p+n}</param>
/// <param name="AuxHidden"><c>[n, A·H]</c> verifier hidden states at p … p+n−1 (the draft's <see cref="IDraftProposer.VerifierLayerIds"/>), or null when the draft asked for none</param>
/// <param name="Context">all committed tokens of the sequence, x_0 … x_{p+n} (prompt + output so far)</param>
public sealed record DraftObservation(int Sequence, long StartPosition, IReadOnlyList<long> NextTokens, Tensor? AuxHidden, IReadOnlyList<long> Context)
{
    /// <summary>n: verified positions covered.</summary>
    public int Count => NextTokens.Count;
}

/// <summary>
/// A draft behind the speculative decoder. The decoder calls, per batch: <see cref="Start"/>; after the
/// prefill and after every verification step <see cref="Observe"/> for the sequences still running; then
/// <see cref="Propose"/> for them. Proposals are target-vocabulary ids. This shape fits chain drafting
/// (Eagle-3: a first pass over the observed positions, then k−1 steps on the draft's own hidden state),
/// parallel block drafting (DFlash: one forward from the observed context gives k tokens), and drafts that
/// need no hidden states at all (<see cref="OracleDraft"/>, <see cref="RandomDraft"/>).
/// </summary>
public interface IDraftProposer : IDisposable
{
    /// <summary>For reports (e.g. "eagle3", "oracle").</summary>
    string Name { get; }
    /// <summary>Verifier hidden-state capture ids the draft consumes (ascending; empty = none).</summary>
    IReadOnlyList<int> VerifierLayerIds { get; }
    /// <summary>The draft's own k (checkpoint <c>speculative_tokens</c>), or null when it has none.</summary>
    int? DefaultNumSpeculativeTokens { get; }
    /// <summary>Counts the draft's forward passes (for the cost ratio in reports); 0 for drafts without a model.</summary>
    long ForwardPasses { get; }

    /// <summary>Starts a new batch of <paramref name="batchSize"/> empty sequences (drops any earlier state).</summary>
    void Start(int batchSize);
    /// <summary>Newly verified positions of some sequences (see <see cref="DraftObservation"/>).</summary>
    void Observe(IReadOnlyList<DraftObservation> observations);
    /// <summary>Proposes <paramref name="numTokens"/> target-vocabulary ids for each listed sequence (one row per sequence, in order).</summary>
    long[][] Propose(IReadOnlyList<int> sequences, int numTokens);
}
