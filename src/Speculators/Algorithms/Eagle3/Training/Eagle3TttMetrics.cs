using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// Loss and metrics of the Eagle-3 TTT loop: speculators' <c>eagle3/metrics.py</c> (§3.8, the bookkeeping of
/// <see cref="TttMetrics"/>) plus DESIGN.md §4's rule that <b>a TTT chain never scores a target from another
/// document</b>. A chain starts at position i of a packed row and, at step k, predicts target position i + k; it is
/// valid at step k only when <c>document_ids[i] ≥ 0</c> and <c>document_ids[i + k] == document_ids[i]</c>. Per step:
/// <code>
/// valid_k   = doc[:, :L-k] ≥ 0  ∧  doc[:, :L-k] == doc[:, k:]
/// mask_k    = loss_mask[:, k:] ∧ valid_k
/// loss_k    = Σ_terms w · mean_b( Σ(e·mask_k·γ^k) / (Σmask_k + 1e-5) )        (DistillationLoss.Compound)
/// prevc_k   = prev_correct[:, :L-k] ∧ valid_k                          (a chain that leaves its document ends)
/// cond_total= Σ prevc_k ;  correct = (argmax logits_k == argmax targets_k) ∧ prevc_k  (written back)
/// full_acc_k= Σ(correct ∧ mask_k) / Σ mask_k ;  cond_acc_k = Σ(correct ∧ mask_k) / cond_total
/// </code>
/// With no chain crossing a document boundary (one document, or k smaller than every document), valid_k is true on
/// every non-padding position and this equals <see cref="TttMetrics"/> exactly (tested). Python scores such chains
/// against the next document's targets (§3.8 quirk); they are normally masked by prompt tokens, but not always.
/// Metric keys (as <c>_sum</c>/<c>_total</c> pairs of detached 0-d fp32 tensors): <c>loss</c>, <c>loss_k</c>,
/// <c>full_acc_k</c>, <c>cond_acc_k</c>, and <c>{term}_loss_k</c> for compound losses.
/// </summary>
public sealed class Eagle3TttMetrics
{
    readonly Tensor _lossMask;     // [B, L] bool
    readonly Tensor _documentIds;  // [B, L] int64
    readonly Tensor _prevCorrect;  // [B, L] bool
    readonly LossSpec _spec;
    readonly double _decay;
    readonly Dictionary<string, Tensor> _metrics = new();
    Tensor? _loss;
    int _step;

    /// <param name="lossMask">[B, L] 0/1 (any integer or bool dtype)</param>
    /// <param name="documentIds">[B, L] int64, −1 = padding</param>
    /// <param name="spec">loss terms (<c>--loss-fn</c>)</param>
    /// <param name="stepLossDecay">γ (<c>--ttt-step-loss-decay</c>)</param>
    public Eagle3TttMetrics(Tensor lossMask, Tensor documentIds, LossSpec spec, double stepLossDecay = 1.0)
    {
        if (lossMask.dim() != 2 || !lossMask.shape.SequenceEqual(documentIds.shape))
            throw new ArgumentException($"loss mask and document ids must both be [B, L], got [{string.Join(", ", lossMask.shape)}] and [{string.Join(", ", documentIds.shape)}].");
        _lossMask = lossMask.to(ScalarType.Bool);
        _documentIds = documentIds.to(ScalarType.Int64);
        _prevCorrect = _lossMask.clone();
        _spec = spec;
        _decay = stepLossDecay;
    }

    public int Steps => _step;

    /// <summary>Σ_k loss_k (differentiable); 0 before the first step.</summary>
    public Tensor Loss => _loss ?? torch.zeros(Array.Empty<long>(), ScalarType.Float32, _lossMask.device);

    /// <summary>The metric tensors, including <c>loss_sum</c>/<c>loss_total</c>.</summary>
    public IReadOnlyDictionary<string, Tensor> Metrics
    {
        get
        {
            var all = new Dictionary<string, Tensor>(_metrics)
            {
                ["loss_sum"] = Loss.detach().to(ScalarType.Float32),
                ["loss_total"] = Ones(),
            };
            return all;
        }
    }

    Tensor Ones() => torch.ones(Array.Empty<long>(), ScalarType.Float32, _lossMask.device);

    /// <summary>
    /// The chains valid at step <paramref name="k"/>: [B, L−k] bool over chain starts i, true when position i is a
    /// document position and i + k lies in the same document.
    /// </summary>
    public static Tensor ValidChains(Tensor documentIds, int k)
    {
        long l = documentIds.shape[1], n = l - k;
        using var scope = NewDisposeScope();
        var start = documentIds.narrow(1, 0, n);
        var target = documentIds.narrow(1, k, n);
        return start.ge(0).logical_and(start.eq(target)).MoveToOuterDisposeScope();
    }

    /// <summary>Records step k = <see cref="Steps"/> from full-length [B, L, Vd] draft logits and verifier targets; returns loss_k.</summary>
    public Tensor AddStep(Tensor logits, Tensor targets)
    {
        long batch = _lossMask.shape[0], length = _lossMask.shape[1];
        if (logits.dim() != 3 || logits.shape[0] != batch || logits.shape[1] != length || !logits.shape.SequenceEqual(targets.shape))
            throw new ArgumentException(
                $"step {_step}: expected logits and targets [B={batch}, L={length}, Vd], got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", targets.shape)}].");
        int k = _step;
        if (k >= length) throw new ArgumentException($"step {k}: the row has only {length} positions.");
        long n = length - k;

        var valid = ValidChains(_documentIds, k);
        var maskK = _lossMask.narrow(1, k, n).logical_and(valid);
        var logitsK = logits.narrow(1, 0, n);
        var targetsK = targets.narrow(1, k, n);
        var (lossK, terms) = DistillationLoss.Compound(logitsK, targetsK, maskK, _spec, scale: Math.Pow(_decay, k));

        using (torch.no_grad())
        {
            var prevK = _prevCorrect.narrow(1, 0, n);
            prevK.logical_and_(valid);
            var condTotal = prevK.sum().to(ScalarType.Float32);
            var correct = logitsK.argmax(-1).eq(targetsK.argmax(-1)).logical_and(prevK);
            prevK.copy_(correct);
            var correctSum = correct.logical_and(maskK).sum().to(ScalarType.Float32);
            var fullTotal = maskK.sum().to(ScalarType.Float32);

            _metrics[$"loss_{k}_sum"] = lossK.detach().to(ScalarType.Float32);
            _metrics[$"loss_{k}_total"] = Ones();
            _metrics[$"full_acc_{k}_sum"] = correctSum;
            _metrics[$"full_acc_{k}_total"] = fullTotal;
            _metrics[$"cond_acc_{k}_sum"] = correctSum.clone();
            _metrics[$"cond_acc_{k}_total"] = condTotal;
            foreach (var (name, value) in terms)
            {
                _metrics[$"{name}_loss_{k}_sum"] = value.to(ScalarType.Float32);
                _metrics[$"{name}_loss_{k}_total"] = Ones();
            }
        }

        _loss = _loss is null ? lossK : _loss + lossK;
        _step++;
        return lossK;
    }
}
