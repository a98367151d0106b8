using Speculators.Algorithms.Eagle3;
using Speculators.Modeling;
using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>
/// <see cref="IDraftProposer"/> over the Eagle-3 chain proposer (<see cref="Eagle3Proposer"/>, vLLM's proposal loop):
/// observations go to <see cref="Eagle3Proposer.Observe"/> (which replaces the draft's entries from the observed
/// position on, i.e. rolls back rejected drafts); a proposal is one batched first pass over the pending positions plus
/// k − 1 chain steps, greedy, mapped to target ids with d2t. One proposer per batch.
/// </summary>
public sealed class Eagle3Draft : IDraftProposer
{
    readonly Eagle3DraftModel _model;
    readonly Eagle3VerifierWeights? _verifierWeights;
    readonly bool _owns;
    Eagle3Proposer? _proposer;
    long _passes;

    /// <param name="model">a loaded draft</param>
    /// <param name="ownsModel">dispose the model with this object</param>
    public Eagle3Draft(Eagle3DraftModel model, bool ownsModel = false) : this(model, null, ownsModel) { }

    Eagle3Draft(Eagle3DraftModel model, Eagle3VerifierWeights? verifierWeights, bool ownsModel)
    {
        _model = model;
        _verifierWeights = verifierWeights;
        _owns = ownsModel;
        VerifierLayerIds = model.Config.AuxLayerIds?.ToArray()
            ?? throw new SpeculatorsException($"{model.Config.SourcePath}: eagle_aux_hidden_state_layer_ids are unresolved; load the draft with its verifier.");
    }

    /// <summary>
    /// Loads a speculators-format Eagle-3 checkpoint for <paramref name="verifier"/> (missing embeddings / lm_head come
    /// from it; missing aux ids take vLLM's default layers (2, N/2, N−3)).
    /// </summary>
    public static Eagle3Draft Load(string directory, CausalLM verifier, ScalarType dtype, Device device)
    {
        var weights = Eagle3VerifierWeights.FromModel(verifier);
        try
        {
            var model = Eagle3Checkpoint.Load(directory, weights, dtype, device);
            return new Eagle3Draft(model, weights, ownsModel: true);
        }
        catch
        {
            weights.Dispose();
            throw;
        }
    }

    public Eagle3DraftModel Model => _model;
    public string Name => "eagle3";
    public IReadOnlyList<int> VerifierLayerIds { get; }
    public int? DefaultNumSpeculativeTokens => _model.Config.SpeculativeTokens > 0 ? _model.Config.SpeculativeTokens : null;
    public long ForwardPasses => _passes;

    public void Start(int batchSize)
    {
        _proposer?.Dispose();
        _proposer = new Eagle3Proposer(_model, batchSize);
    }

    public void Observe(IReadOnlyList<DraftObservation> observations)
    {
        var p = _proposer ?? throw new InvalidOperationException("Start the batch first.");
        foreach (var o in observations)
        {
            var aux = o.AuxHidden ?? throw new InvalidOperationException("the Eagle-3 draft needs the verifier's aux hidden states.");
            p.Observe(o.Sequence, aux, o.NextTokens.ToArray(), o.StartPosition);
        }
    }

    public long[][] Propose(IReadOnlyList<int> sequences, int numTokens)
    {
        var p = _proposer ?? throw new InvalidOperationException("Start the batch first.");
        var all = p.Propose(numTokens);
        _passes += numTokens;
        var result = new long[sequences.Count][];
        for (int j = 0; j < sequences.Count; j++)
        {
            result[j] = all[sequences[j]];
            if (result[j].Length != numTokens)
                throw new InvalidOperationException($"sequence {sequences[j]} had no observation before Propose.");
        }
        return result;
    }

    public void Dispose()
    {
        _proposer?.Dispose();
        _proposer = null;
        if (_owns) _model.Dispose();
        _verifierWeights?.Dispose();
    }
}
