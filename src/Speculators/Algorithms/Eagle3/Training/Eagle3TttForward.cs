using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>How the TTT loop runs and is scored.</summary>
public sealed record Eagle3TttOptions
{
    /// <summary><c>--ttt-steps</c> (= <c>speculative_tokens</c>).</summary>
    public int Steps { get; init; } = 3;

    /// <summary>
    /// True (speculators HEAD): the token half at step k, position i, is the ground truth <c>input_ids[i + k]</c>
    /// (right-padded with id 0). False (speculators ≤ v0.6 default): the draft's own greedy prediction of the previous
    /// step, mapped to a target id with <c>id + d2t[id]</c>.
    /// </summary>
    public bool TeacherForcing { get; init; } = true;

    /// <summary><c>--loss-fn</c>.</summary>
    public LossSpec Loss { get; init; } = LossSpec.Single(LossKind.KlDiv);

    /// <summary><c>--ttt-step-loss-decay</c> γ: step k's loss is scaled by γ^k.</summary>
    public double StepLossDecay { get; init; } = 1.0;

    public void Validate()
    {
        if (Steps < 1) throw new SpeculatorsException($"--ttt-steps must be at least 1, found {Steps}.");
        if (!(StepLossDecay >= 0) || double.IsInfinity(StepLossDecay))
            throw new SpeculatorsException($"--ttt-step-loss-decay must be a finite number >= 0, found {StepLossDecay}.");
    }
}

/// <summary>What one TTT forward returns: the summed loss, the metric tensors and each step's greedy draft ids.</summary>
public sealed class Eagle3TttResult(Tensor loss, IReadOnlyDictionary<string, Tensor> metrics, IReadOnlyList<Tensor> draftTokens) : IDisposable
{
    /// <summary>Σ_k loss_k, differentiable.</summary>
    public Tensor Loss { get; } = loss;
    /// <summary>Detached 0-d <c>X_sum</c>/<c>X_total</c> tensors (see <see cref="TttMetrics"/>).</summary>
    public IReadOnlyDictionary<string, Tensor> Metrics { get; } = metrics;
    /// <summary>[1, L] int64 draft-vocabulary argmax of every step.</summary>
    public IReadOnlyList<Tensor> DraftTokens { get; } = draftTokens;

    public void Dispose()
    {
        Loss.Dispose();
        foreach (var t in Metrics.Values) t.Dispose();
        foreach (var t in DraftTokens) t.Dispose();
    }
}

/// <summary>
/// The Eagle-3 training forward over one packed, already shifted row (speculators.md §3.6):
/// <code>
/// h       = fc(norms(hidden_states))                                   once
/// targets = verifier_lm_head(verifier_norm(verifier_last_hidden_states)) over the draft vocabulary, no grad
/// ids     = input_ids
/// for k in 0..K−1:
///     x       = layers([embed(ids) | h], positions = position_ids + k)   attention: keys of steps 0..k (TttAttentionBackend)
///     logits  = lm_head(norm(x)) ;  h = norm(x) if norm_output else x
///     loss   += loss_k(logits, targets)                                  (TttMetrics with document ids: chains stay in their document)
///     ids     = input_ids shifted left by k+1, padded with 0             (teacher forcing; or the draft's argmax → d2t)
/// </code>
/// RoPE positions of step k are <c>position_ids + k</c>; the token and hidden halves of padding positions are
/// whatever the shift leaves there (they never reach the loss: padding has document id −1 and loss mask 0).
/// </summary>
public static class Eagle3TttForward
{
    /// <summary>Runs the TTT loop with block-sparse attention (<see cref="TttAttentionBackend"/> over <see cref="Eagle3Batch.Masks"/>).</summary>
    public static Eagle3TttResult Run(Eagle3DraftModel draft, Eagle3Batch batch, Eagle3TttOptions options)
    {
        using var backend = new TttAttentionBackend(batch.Masks);
        return Run(draft, batch, options, backend, backend.NextStep);
    }

    /// <summary>
    /// The TTT loop with a caller-supplied attention backend (<paramref name="nextStep"/> is called between steps):
    /// tests plug a dense reference here. The result belongs to the caller.
    /// </summary>
    public static Eagle3TttResult Run(Eagle3DraftModel draft, Eagle3Batch batch, Eagle3TttOptions options, IAttentionBackend backend, Action nextStep)
    {
        options.Validate();
        CheckBatch(draft, batch);
        using var scope = NewDisposeScope();
        var device = draft.Device;
        long length = batch.Length;
        var inputIds = batch.InputIds.to(ScalarType.Int64, device);
        var positions = batch.PositionIds.to(ScalarType.Int64, device);
        var metrics = new TttMetrics(batch.LossMask.to(device), options.Loss, options.StepLossDecay, batch.DocumentIds.to(device));

        var hidden = draft.CombineAuxHidden(batch.HiddenStates.to(device));
        var targets = draft.VerifierTargets(batch.VerifierLastHiddenStates.to(device));
        var ids = inputIds;
        var drafts = new List<Tensor>();
        for (int k = 0; k < options.Steps; k++)
        {
            if (k > 0) nextStep();
            var embeds = draft.Embed(ids);
            var x = draft.RunLayers(embeds, hidden, k == 0 ? positions : positions.add(k), backend);
            var (logits, next) = draft.Head(x);
            metrics.AddStep(logits, targets);
            Tensor argmax;
            using (torch.no_grad()) argmax = logits.argmax(-1);
            drafts.Add(argmax);
            hidden = next;
            if (k + 1 < options.Steps)
            {
                if (options.TeacherForcing)
                {
                    long keep = Math.Max(0, length - (k + 1));
                    var head = inputIds.narrow(1, Math.Min(k + 1, length), keep);
                    var pad = torch.zeros([1, length - keep], ScalarType.Int64, device);
                    ids = torch.cat([head, pad], 1);
                }
                else
                {
                    using (torch.no_grad()) ids = draft.DraftToTarget(argmax);
                }
            }
        }
        var loss = metrics.Loss.MoveToOuterDisposeScope();
        var outMetrics = metrics.Metrics.ToDictionary(kv => kv.Key, kv => kv.Value.MoveToOuterDisposeScope());
        var outDrafts = drafts.Select(t => t.MoveToOuterDisposeScope()).ToList();
        return new Eagle3TttResult(loss, outMetrics, outDrafts);
    }

    static void CheckBatch(Eagle3DraftModel draft, Eagle3Batch batch)
    {
        long aux = (long)draft.NumAuxLayers * draft.AuxHiddenSize;
        if (batch.HiddenStates.shape[2] != aux)
            throw new SpeculatorsException(
                $"the batch's hidden states have {batch.HiddenStates.shape[2]} features per token; the draft's fc expects {aux} ({draft.NumAuxLayers} aux layers × {draft.AuxHiddenSize}).");
        if (batch.VerifierLastHiddenStates.shape[2] != draft.AuxHiddenSize)
            throw new SpeculatorsException(
                $"the batch's verifier last hidden states have {batch.VerifierLastHiddenStates.shape[2]} features; the verifier norm expects {draft.AuxHiddenSize}.");
    }
}
