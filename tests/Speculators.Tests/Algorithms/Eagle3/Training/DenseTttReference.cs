using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>
/// An independent TTT forward for the tests: its own loop over the draft's modules, its own attention (dense scores,
/// GQA by repetition, a boolean mask written element by element from the spec's formula, softmax, values), its own
/// teacher-forced or fed-back tokens, and loss/metrics whose cross-document mask and prev_correct chains are built
/// with plain loops (the per-position loss itself is <see cref="DistillationLoss.Compound"/>, tested elsewhere).
/// </summary>
internal static class DenseTttReference
{
    /// <summary>mask(q, kv) of speculators.md §3.7 for kv over k+1 steps: ((kv &lt; L ∧ kv ≤ q [∧ kv &gt; q − w]) ∧ doc[q] ≥ 0 ∧ doc[q] == doc[kv]) ∨ kv mod L == q.</summary>
    public static bool[,] Mask(long[] doc, int steps, int? window)
    {
        int l = doc.Length;
        var m = new bool[l, steps * l];
        for (int q = 0; q < l; q++)
            for (int kv = 0; kv < steps * l; kv++)
            {
                bool causal = kv < l && kv <= q && (window is not int w || kv > q - w);
                bool document = kv < l && doc[q] >= 0 && doc[q] == doc[kv];
                m[q, kv] = (causal && document) || kv % l == q;
            }
        return m;
    }

    sealed class DenseBackend(long[] doc) : IAttentionBackend
    {
        readonly Dictionary<int, (List<Tensor> K, List<Tensor> V)> _cache = new();
        public int Step;

        public Tensor Attend(Tensor q, Tensor k, Tensor v, AttentionLayerInfo layer)
        {
            if (!_cache.TryGetValue(layer.LayerIndex, out var c)) _cache[layer.LayerIndex] = c = ([], []);
            c.K.Add(k.alias().DetachFromDisposeScope());
            c.V.Add(v.alias().DetachFromDisposeScope());
            using var scope = NewDisposeScope();
            int rep = layer.NumHeads / layer.NumKvHeads;
            var keys = torch.cat(c.K, 2).repeat_interleave(rep, 1);
            var values = torch.cat(c.V, 2).repeat_interleave(rep, 1);
            var allowed = Mask(doc, Step + 1, layer.SlidingWindow);
            int l = doc.Length, kvLen = (Step + 1) * l;
            var flat = new bool[l * kvLen];
            for (int i = 0; i < l; i++) for (int j = 0; j < kvLen; j++) flat[i * kvLen + j] = allowed[i, j];
            var mask = torch.tensor(flat, [1, 1, l, kvLen]).to(q.device);
            var scores = q.matmul(keys.transpose(2, 3)).mul(layer.Scale).masked_fill(mask.logical_not(), double.NegativeInfinity);
            return scores.softmax(-1).matmul(values).MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            foreach (var (k, v) in _cache.Values)
            {
                foreach (var t in k) t.Dispose();
                foreach (var t in v) t.Dispose();
            }
        }
    }

    /// <summary>Loss (differentiable) and metric values (as doubles, keys like <see cref="TttMetrics"/> without the pair split: <c>full_acc_k</c> etc. as (sum, total)).</summary>
    public static (Tensor Loss, Dictionary<string, (double Sum, double Total)> Metrics) Run(Eagle3DraftModel draft, Eagle3Batch batch, Eagle3TttOptions options)
    {
        using var scope = NewDisposeScope();
        int l = batch.Length;
        long[] doc = batch.DocumentIdArray;
        long[] ids0 = batch.InputIds.reshape(-1).data<long>().ToArray();
        long[] lossMask = batch.LossMask.reshape(-1).data<long>().ToArray();
        var backend = new DenseBackend(doc);
        try
        {
            var h = draft.CombineAuxHidden(batch.HiddenStates);
            var targets = draft.VerifierTargets(batch.VerifierLastHiddenStates);
            long[] targetArgmax = targets.argmax(-1).reshape(-1).data<long>().ToArray();
            var prev = lossMask.Select(x => x != 0).ToArray();
            long[] ids = ids0;
            Tensor? total = null;
            var metrics = new Dictionary<string, (double, double)>();
            for (int k = 0; k < options.Steps; k++)
            {
                backend.Step = k;
                var positions = batch.PositionIds.add(k);
                var x = draft.RunLayers(draft.Embed(torch.tensor(ids, [1, l])), h, positions, backend);
                var normed = draft.ApplyNorm(x);
                var logits = draft.ComputeLogits(normed);
                h = draft.Config.NormOutput ? normed : x;

                int n = l - k;
                var stepMask = new long[n];
                var valid = new bool[n];
                for (int i = 0; i < n; i++)
                {
                    valid[i] = doc[i] >= 0 && doc[i + k] == doc[i];
                    stepMask[i] = valid[i] && lossMask[i + k] != 0 ? 1 : 0;
                }
                var (lossK, _) = DistillationLoss.Compound(logits.narrow(1, 0, n), targets.narrow(1, k, n), torch.tensor(stepMask, [1, n]),
                    options.Loss, scale: Math.Pow(options.StepLossDecay, k));
                total = total is null ? lossK : total + lossK;

                long[] pred = logits.argmax(-1).reshape(-1).data<long>().ToArray();
                double condTotal = 0, correctSum = 0, fullTotal = 0;
                for (int i = 0; i < n; i++)
                {
                    prev[i] &= valid[i];
                    if (prev[i]) condTotal++;
                    bool correct = prev[i] && pred[i] == targetArgmax[i + k];
                    prev[i] = correct;
                    if (stepMask[i] == 1)
                    {
                        fullTotal++;
                        if (correct) correctSum++;
                    }
                }
                metrics[$"loss_{k}"] = (lossK.to(ScalarType.Float64).item<double>(), 1);
                metrics[$"full_acc_{k}"] = (correctSum, fullTotal);
                metrics[$"cond_acc_{k}"] = (correctSum, condTotal);

                if (options.TeacherForcing)
                {
                    var next = new long[l];
                    for (int i = 0; i + k + 1 < l; i++) next[i] = ids0[i + k + 1];
                    ids = next;
                }
                else
                {
                    var mapped = draft.DraftToTarget(torch.tensor(pred, [1, l]));
                    ids = mapped.reshape(-1).data<long>().ToArray();
                }
            }
            metrics["loss"] = (total!.to(ScalarType.Float64).item<double>(), 1);
            return (total!.MoveToOuterDisposeScope(), metrics);
        }
        finally
        {
            backend.Dispose();
        }
    }
}
