using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// Loss and accuracy bookkeeping of an Eagle-3 style test-time-training (TTT) forward, one call of
/// <see cref="AddStep"/> per draft step k, exactly as the Python tool's <c>eagle3/metrics.py</c>:
/// <code>
/// logits_k  = logits[:, :L-k]      targets_k = targets[:, k:]      mask_k = loss_mask[:, k:]
/// prevc_k   = prev_correct[:, :L-k]                  (a view, updated in place)
/// loss_k    = Σ_terms w · mean_b( Σ(e·mask_k·γ^k) / (Σmask_k + 1e-5) )
/// correct   = argmax(logits_k) == argmax(targets_k)
/// cond_total= Σ prevc_k ;  correct &amp;= prevc_k (written back) ;  correct = correct[mask_k == 1]
/// full_acc_k= Σcorrect / #(mask_k == 1) ;  cond_acc_k = Σcorrect / cond_total
/// </code>
/// A chain starts at position i (prev_correct starts as the loss mask) and predicts target position
/// i + k; loss = Σ_k loss_k (not averaged over steps). Metrics are <c>X_sum</c>/<c>X_total</c>
/// pairs of detached 0-d tensors (<c>loss</c>, <c>loss_k</c>, <c>full_acc_k</c>, <c>cond_acc_k</c>,
/// and <c>{term}_loss_k</c> for compound losses) for <see cref="MetricAccumulator"/>.
/// <para>With <c>documentIds</c> (packed rows, DESIGN.md §4) <b>a chain never scores a target from another
/// document</b>: it is valid at step k only when <c>doc[i] ≥ 0</c> and <c>doc[i + k] == doc[i]</c>, so
/// <c>mask_k ∧= valid_k</c> and <c>prevc_k ∧= valid_k</c> (a chain that leaves its document ends). With no chain
/// crossing a boundary this is the formula above exactly; Python scores crossing chains against the next
/// document's targets (the §3.8 quirk), which is what omitting <c>documentIds</c> reproduces.</para>
/// <para>Create it inside the forward's dispose scope; move <see cref="Loss"/> and the metric tensors
/// out with the forward's results. Metric tensors are fp32 (fp64 when the logits are fp64).</para>
/// </summary>
public sealed class TttMetrics
{
    readonly Tensor _lossMask;      // [B, L] (any integer or bool dtype)
    readonly Tensor _prevCorrect;   // [B, L] bool
    readonly Tensor? _documentIds;  // [B, L] int64, −1 = padding; null = Python's semantics
    readonly LossSpec _spec;
    readonly double _decay;
    readonly Dictionary<string, Tensor> _metrics = new();
    Tensor? _loss;
    int _step;

    /// <param name="lossMask">[B, L] 0/1 mask of the positions whose target is scored.</param>
    /// <param name="spec">Loss terms (default <c>kl_div</c> for Eagle-3).</param>
    /// <param name="stepLossDecay">γ: step k's loss is multiplied by γ^k (<c>--ttt-step-loss-decay</c>, default 1).</param>
    /// <param name="documentIds">[B, L] document of each position of a packed row (−1 = padding): chains stay in their document.</param>
    public TttMetrics(Tensor lossMask, LossSpec spec, double stepLossDecay = 1.0, Tensor? documentIds = null)
    {
        if (lossMask.dim() != 2) throw new ArgumentException($"loss mask must be [B, L], got [{string.Join(", ", lossMask.shape)}].", nameof(lossMask));
        if (documentIds is not null && !documentIds.shape.SequenceEqual(lossMask.shape))
            throw new ArgumentException($"document ids must be [B, L] like the loss mask [{string.Join(", ", lossMask.shape)}], got [{string.Join(", ", documentIds.shape)}].", nameof(documentIds));
        _lossMask = lossMask;
        _documentIds = documentIds?.to(ScalarType.Int64);
        _prevCorrect = lossMask.to(ScalarType.Bool).clone();
        _spec = spec;
        _decay = stepLossDecay;
    }

    /// <summary>Steps recorded so far.</summary>
    public int Steps => _step;

    /// <summary>Σ_k loss_k, differentiable (a 0 tensor before the first step).</summary>
    public Tensor Loss => _loss ?? torch.zeros(Array.Empty<long>(), ScalarType.Float32, _lossMask.device);

    /// <summary>
    /// The <c>_sum</c>/<c>_total</c> metric tensors (detached, 0-d), including <c>loss_sum</c>/<c>loss_total</c>.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> Metrics
    {
        get
        {
            var all = new Dictionary<string, Tensor>(_metrics);
            all["loss_sum"] = MetricDtype(Loss.detach());
            all["loss_total"] = Ones();
            return all;
        }
    }

    Tensor Ones() => torch.ones(Array.Empty<long>(), ScalarType.Float32, _lossMask.device);

    static Tensor MetricDtype(Tensor t) => t.dtype == ScalarType.Float64 ? t : t.to(ScalarType.Float32);

    /// <summary>
    /// The chains valid at step <paramref name="k"/>: [B, L−k] bool over chain starts i, true when position i is a
    /// document position and i + k lies in the same document.
    /// </summary>
    public static Tensor ValidChains(Tensor documentIds, int k)
    {
        long n = documentIds.shape[1] - k;
        using var scope = NewDisposeScope();
        var start = documentIds.narrow(1, 0, n);
        var target = documentIds.narrow(1, k, n);
        return start.ge(0).logical_and(start.eq(target)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Records draft step k = <see cref="Steps"/>: <paramref name="logits"/> and
    /// <paramref name="targets"/> are the full-length [B, L, Vd] draft and verifier logits of this
    /// step. Returns loss_k (differentiable).
    /// </summary>
    public Tensor AddStep(Tensor logits, Tensor targets)
    {
        long batch = _lossMask.shape[0], length = _lossMask.shape[1];
        if (logits.dim() != 3 || logits.shape[0] != batch || logits.shape[1] != length || !logits.shape.SequenceEqual(targets.shape))
            throw new ArgumentException(
                $"step {_step}: expected logits and targets [B={batch}, L={length}, Vd], got [{string.Join(", ", logits.shape)}] and [{string.Join(", ", targets.shape)}].");
        int k = _step;
        if (k >= length) throw new ArgumentException($"step {k}: the row has only {length} positions.");
        long n = length - k;

        var logitsK = logits.narrow(1, 0, n);
        var targetsK = targets.narrow(1, k, n);
        var maskK = _lossMask.narrow(1, k, n);
        var prevK = _prevCorrect.narrow(1, 0, n);
        var valid = _documentIds is null ? null : ValidChains(_documentIds, k);
        if (valid is not null) maskK = maskK.to(ScalarType.Bool).logical_and(valid);

        var (lossK, terms) = DistillationLoss.Compound(logitsK, targetsK, maskK, _spec, scale: Math.Pow(_decay, k));

        using (torch.no_grad())
        {
            var pred = logitsK.argmax(-1);
            var target = targetsK.argmax(-1);
            var correct = pred.eq(target);
            if (valid is not null) prevK.logical_and_(valid);
            var condTotal = prevK.sum().to(ScalarType.Float32);
            correct = correct.logical_and(prevK);
            prevK.copy_(correct);
            var selected = maskK.to(ScalarType.Bool);
            var correctSum = correct.logical_and(selected).sum().to(ScalarType.Float32);
            var fullTotal = selected.sum().to(ScalarType.Float32);

            _metrics[$"loss_{k}_sum"] = MetricDtype(lossK.detach());
            _metrics[$"loss_{k}_total"] = Ones();
            _metrics[$"full_acc_{k}_sum"] = correctSum;
            _metrics[$"full_acc_{k}_total"] = fullTotal;
            _metrics[$"cond_acc_{k}_sum"] = correctSum.clone();
            _metrics[$"cond_acc_{k}_total"] = condTotal;
            foreach (var (name, value) in terms)
            {
                _metrics[$"{name}_loss_{k}_sum"] = MetricDtype(value);
                _metrics[$"{name}_loss_{k}_total"] = Ones();
            }
        }

        _loss = _loss is null ? lossK : _loss + lossK;
        _step++;
        return lossK;
    }

    /// <summary>
    /// Estimated acceptance length 1 + Σ_k Π_{j≤k} cond_acc_j from per-step conditional accuracies
    /// (the expected number of tokens per verifier step for a greedy chain draft).
    /// </summary>
    public static double EstimatedAcceptanceLength(IReadOnlyList<double> conditionalAccuracies)
    {
        double total = 1.0, product = 1.0;
        foreach (var a in conditionalAccuracies)
        {
            product *= a;
            total += product;
        }
        return total;
    }

    /// <summary>
    /// <see cref="EstimatedAcceptanceLength(IReadOnlyList{double})"/> read from normalized metrics
    /// (<c>cond_acc_0{suffix}</c>, <c>cond_acc_1{suffix}</c>, … while present). Null when there is no
    /// <c>cond_acc_0</c>.
    /// </summary>
    public static double? EstimatedAcceptanceLength(IReadOnlyDictionary<string, double> normalized, string prefix = "", string suffix = "")
    {
        var acc = new List<double>();
        for (int k = 0; normalized.TryGetValue($"{prefix}cond_acc_{k}{suffix}", out double a); k++) acc.Add(a);
        return acc.Count == 0 ? null : EstimatedAcceptanceLength(acc);
    }

    /// <summary>Metric key of the estimated acceptance length (validation).</summary>
    public const string EstimatedAcceptanceLengthKey = "est_acceptance_length";
}
