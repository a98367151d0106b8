using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>
/// The Eagle-3 TTT metrics (<see cref="TttMetrics"/> with document ids): §3.8 exactly when no chain leaves its document
/// (equal to the metrics without document ids), and chains never scored against another document's targets (DESIGN.md §4).
/// </summary>
public class TttMetricsTests
{
    public TttMetricsTests() => E3TrainFixtures.SingleThreaded();

    static Dictionary<string, double> Values(IReadOnlyDictionary<string, Tensor> metrics) =>
        metrics.ToDictionary(kv => kv.Key, kv => kv.Value.to(ScalarType.Float64).item<double>());

    [Fact]
    public void OneDocumentEqualsTheSpecMetrics()
    {
        using var scope = NewDisposeScope();
        using var gen = new torch.Generator(4, torch.CPU);
        const int l = 60, vd = 11;
        var mask = torch.rand([2, l], generator: gen).lt(0.7).to(ScalarType.Int64);
        var docs = torch.zeros([2, l], ScalarType.Int64);
        var targets = torch.randn([2, l, vd], generator: gen).mul(2);
        var spec = LossSpec.Parse("{\"kl_div\": 0.7, \"ce\": 0.3}");
        var ours = new TttMetrics(mask, spec, 0.9, documentIds: docs);
        var reference = new TttMetrics(mask, spec, 0.9);
        for (int k = 0; k < 4; k++)
        {
            // Step-k logits at i close to the targets at i + k, so accuracies are neither 0 nor 1.
            var logits = targets.roll(-k, 1).add(torch.randn([2, l, vd], generator: gen).mul(0.7));
            ours.AddStep(logits, targets);
            reference.AddStep(logits, targets);
        }
        var a = Values(ours.Metrics);
        var b = Values(reference.Metrics);
        Assert.Equal(b.Keys.Order(), a.Keys.Order());
        foreach (var (key, value) in b) Assert.Equal(value, a[key], 1e-6);
        Assert.InRange(a["cond_acc_2_sum"] / a["cond_acc_2_total"], 0.01, 0.99);
    }

    [Fact]
    public void ChainsNeverScoreTheNextDocument()
    {
        // Documents [0 0 0 | 1 1 1], every position supervised, logits equal to the targets wherever a chain stays in its
        // document; the chain starting at the last token of document 0 would, at step 1, be scored against the first
        // target of document 1, where its logits are made wrong. Python's metrics count it; ours must not.
        using var scope = NewDisposeScope();
        using var gen = new torch.Generator(9, torch.CPU);
        const int l = 6, vd = 7;
        var mask = torch.ones([1, l], ScalarType.Int64);
        var docs = torch.tensor(new long[] { 0, 0, 0, 1, 1, 1 }, [1, l]);
        var targets = torch.randn([1, l, vd], generator: gen).mul(3);
        var spec = LossSpec.Single(LossKind.KlDiv);
        var ours = new TttMetrics(mask, spec, documentIds: docs);
        var python = new TttMetrics(mask, spec);

        // Step 0: logits[i] = targets[i] (all chains correct).
        ours.AddStep(targets, targets);
        python.AddStep(targets, targets);
        // Step 1: logits[i] predicts targets[i + 1]; position 2 (chain crossing into document 1) is wrong.
        var step1 = torch.cat([targets.narrow(1, 1, l - 1), targets.narrow(1, 0, 1)], 1).clone();
        step1[0, 2] = targets[0, 3].neg();
        ours.AddStep(step1, targets);
        python.AddStep(step1, targets);

        var a = Values(ours.Metrics);
        var p = Values(python.Metrics);
        // Chains i = 0, 1, 3, 4 stay in their documents at step 1; i = 2 crosses (and i = 5 has no target).
        Assert.Equal(4, a["full_acc_1_total"]);
        Assert.Equal(4, a["full_acc_1_sum"]);
        Assert.Equal(4, a["cond_acc_1_total"]);
        Assert.Equal(1.0, a["cond_acc_1_sum"] / a["cond_acc_1_total"]);
        Assert.True(a["loss_1_sum"] < 1e-5, $"loss_1 {a["loss_1_sum"]} must ignore the crossing chain");
        // Python's semantics score the crossing chain: one more total, a wrong prediction, a positive loss.
        Assert.Equal(5, p["full_acc_1_total"]);
        Assert.Equal(4, p["full_acc_1_sum"]);
        Assert.True(p["loss_1_sum"] > 0.1);
        // Step 0 is the same in both.
        Assert.Equal(p["loss_0_sum"], a["loss_0_sum"], 1e-7);
        Assert.Equal(p["full_acc_0_total"], a["full_acc_0_total"]);
    }

    [Fact]
    public void ForwardLossOfLaterStepsIgnoresTheNextDocumentsTargets()
    {
        // In the full TTT forward: changing the verifier state (the target) at the first position of document 1, whose
        // loss mask is 1, changes loss_0 (document 1's own chain starts there) but not loss_1 or loss_2: the only chains
        // that reach that target at steps 1 and 2 start in document 0.
        using var scope = NewDisposeScope();
        using var draft = E3TrainFixtures.Draft(Eagle3LayerStyle.Llama, normOutput: true);
        using var a = E3TrainFixtures.Batch([6, 8], 16, seed: 21, blockSize: 4);
        a.LossMask.fill_(1);
        var last = a.VerifierLastHiddenStates.clone();
        last[0, 6] = last[0, 6].neg().mul(2);
        using var b = new Eagle3Batch(a.InputIds.clone(), a.HiddenStates.clone(), last, a.LossMask.clone(), a.PositionIds.clone(),
            a.DocumentIds.clone(), a.DocumentIdArray, [0, 1], [6, 8], 0, 4);
        var options = new Eagle3TttOptions { Steps = 3 };
        using var ra = Eagle3TttForward.Run(draft, a, options);
        using var rb = Eagle3TttForward.Run(draft, b, options);
        var ma = Values(ra.Metrics);
        var mb = Values(rb.Metrics);
        Assert.True(Math.Abs(ma["loss_0_sum"] - mb["loss_0_sum"]) > 1e-4, "the perturbed target must matter for its own document");
        Assert.Equal(ma["loss_1_sum"], mb["loss_1_sum"], 1e-12);
        Assert.Equal(ma["loss_2_sum"], mb["loss_2_sum"], 1e-12);
        Assert.Equal(ma["full_acc_1_total"], mb["full_acc_1_total"]);
        Assert.Equal(5 + 7, ma["full_acc_1_total"]);   // chains of length ≥ 2 per document (padding excluded)
    }
}
