using Speculators.Distributed;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>TTT loss/accuracy bookkeeping against a plain-loop transcription of the spec (§3.8) in doubles.</summary>
public class TttMetricsTests
{
    static int ArgMax(float[] row)
    {
        int best = 0;
        for (int i = 1; i < row.Length; i++) if (row[i] > row[best]) best = i;
        return best;
    }

    static double KlDouble(float[] logits, float[] targets)
    {
        double Lse(float[] x) { double m = x.Max(); return m + Math.Log(x.Sum(v => Math.Exp(v - m))); }
        double lq = Lse(logits), lp = Lse(targets), kl = 0;
        for (int j = 0; j < logits.Length; j++)
        {
            double logp = targets[j] - lp, logq = logits[j] - lq;
            kl += Math.Exp(logp) * (logp - logq);
        }
        return kl;
    }

    [Fact]
    public void StepsMatchTheSpecTranscription()
    {
        using var scope = NewDisposeScope();
        const int L = 9, V = 6, Steps = 3;
        const double gamma = 0.8;
        torch.manual_seed(21);
        var targets = torch.randn(1, L, V);
        long[] maskArr = { 0, 1, 1, 1, 0, 1, 1, 1, 1 };
        var mask = torch.tensor(maskArr).reshape(1, L);
        // Draft logits close to the targets so most chains survive a step or two, some flipped.
        var logitsPerStep = new List<Tensor>();
        for (int k = 0; k < Steps; k++)
        {
            var shifted = torch.cat(new[] { targets.narrow(1, k, L - k), torch.zeros(1, k, V) }, 1);
            var noise = torch.randn(1, L, V) * (0.6 + 0.5 * k);
            logitsPerStep.Add((shifted + noise).requires_grad_(true));
        }

        var metrics = new TttMetrics(mask, LossSpec.Parse("kl_div"), gamma);
        for (int k = 0; k < Steps; k++) metrics.AddStep(logitsPerStep[k], targets);
        var m = metrics.Metrics.ToDictionary(kv => kv.Key, kv => kv.Value.ToDouble());

        // Reference: plain loops over arrays.
        float[][] T = Enumerable.Range(0, L).Select(i => targets[0, i].data<float>().ToArray()).ToArray();
        var prev = maskArr.Select(x => x == 1).ToArray();
        double lossTotal = 0;
        for (int k = 0; k < Steps; k++)
        {
            float[][] Z = Enumerable.Range(0, L).Select(i => logitsPerStep[k][0, i].detach().data<float>().ToArray()).ToArray();
            int n = L - k;
            double num = 0, den = 0, condTotal = 0, correctSum = 0, fullTotal = 0;
            var correct = new bool[n];
            for (int i = 0; i < n; i++)
            {
                num += KlDouble(Z[i], T[i + k]) * maskArr[i + k] * Math.Pow(gamma, k);
                den += maskArr[i + k];
                if (prev[i]) condTotal++;
                correct[i] = ArgMax(Z[i]) == ArgMax(T[i + k]) && prev[i];
            }
            for (int i = 0; i < n; i++)
            {
                prev[i] = correct[i];
                if (maskArr[i + k] == 1)
                {
                    fullTotal++;
                    if (correct[i]) correctSum++;
                }
            }
            double lossK = num / (den + 1e-5);
            lossTotal += lossK;
            Assert.Equal(lossK, m[$"loss_{k}_sum"], 5);
            Assert.Equal(1.0, m[$"loss_{k}_total"]);
            Assert.Equal(correctSum, m[$"full_acc_{k}_sum"]);
            Assert.Equal(fullTotal, m[$"full_acc_{k}_total"]);
            Assert.Equal(correctSum, m[$"cond_acc_{k}_sum"]);
            Assert.Equal(condTotal, m[$"cond_acc_{k}_total"]);
        }
        Assert.Equal(lossTotal, m["loss_sum"], 5);
        Assert.Equal(lossTotal, metrics.Loss.ToDouble(), 5);
        Assert.Equal(1.0, m["loss_total"]);
        Assert.Equal(3 * 6 + 2, m.Count);
        // The test data must exercise both surviving and broken chains.
        Assert.InRange(m["cond_acc_1_sum"], 1, m["cond_acc_1_total"] - 1);

        metrics.Loss.backward();
        foreach (var l in logitsPerStep) Assert.NotNull(l.grad);
    }

    [Fact]
    public void CompoundLossesReportEachTermPerStep()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(4);
        var targets = torch.randn(1, 5, 4);
        var mask = torch.ones(1, 5, ScalarType.Int64);
        var metrics = new TttMetrics(mask, LossSpec.Parse("{\"ce\": 0.25, \"tv\": 1.0}"));
        metrics.AddStep(torch.randn(1, 5, 4), targets);
        metrics.AddStep(torch.randn(1, 5, 4), targets);
        var m = metrics.Metrics;
        foreach (var key in new[] { "ce_loss_0", "tv_loss_0", "ce_loss_1", "tv_loss_1" })
        {
            Assert.True(m.ContainsKey(key + "_sum"), key);
            Assert.Equal(1.0, m[key + "_total"].ToDouble());
        }
        for (int k = 0; k < 2; k++)
            Assert.Equal(0.25 * m[$"ce_loss_{k}_sum"].ToDouble() + m[$"tv_loss_{k}_sum"].ToDouble(), m[$"loss_{k}_sum"].ToDouble(), 5);
    }

    [Fact]
    public void EstimatedAcceptanceLengthChainsConditionalAccuracies()
    {
        Assert.Equal(1 + 0.8 + 0.8 * 0.5 + 0.8 * 0.5 * 0.25, TttMetrics.EstimatedAcceptanceLength(new[] { 0.8, 0.5, 0.25 }), 12);
        var normalized = new Dictionary<string, double> { ["cond_acc_0_epoch"] = 0.5, ["cond_acc_1_epoch"] = 0.5, ["loss_epoch"] = 3 };
        Assert.Equal(1.75, TttMetrics.EstimatedAcceptanceLength(normalized, suffix: "_epoch"));
        Assert.Null(TttMetrics.EstimatedAcceptanceLength(new Dictionary<string, double>()));
    }

    [Fact]
    public void NormalizationFollowsPythonRules()
    {
        var raw = new Dictionary<string, double>
        {
            ["loss_sum"] = 10, ["loss_total"] = 5,
            ["acc_sum"] = 3, ["acc_total"] = 0,
            ["orphan_total"] = 4,
            ["standalone"] = 12,
        };
        var n = MetricAccumulator.Normalize(raw, worldSize: 3);
        Assert.Equal(2.0, n["loss"]);
        Assert.Equal(0.0, n["acc"]);
        Assert.Equal(4.0, n["standalone"]);
        Assert.False(n.ContainsKey("orphan_total"));
        Assert.False(n.ContainsKey("loss_sum"));
        Assert.Equal(3, n.Count);
    }

    [Fact]
    public void AccumulatorSumsBatchesAndRanks()
    {
        using var scope = NewDisposeScope();
        var acc = new MetricAccumulator();
        acc.Add(new Dictionary<string, Tensor> { ["full_acc_0_sum"] = torch.tensor(3.0f), ["full_acc_0_total"] = torch.tensor(4.0f) });
        acc.Add(new Dictionary<string, double> { ["full_acc_0_sum"] = 1, ["full_acc_0_total"] = 4 });
        Assert.Equal(2, acc.Count);
        Assert.Equal(0.5, acc.Normalize()["full_acc_0"]);

        // Three ranks with different counts: the reduced ratio is the pooled one, identical everywhere.
        var results = InProcessGroup.Run(3, pg =>
        {
            var a = new MetricAccumulator();
            a.Add(new Dictionary<string, double> { ["x_sum"] = pg.Rank + 1, ["x_total"] = 2 * (pg.Rank + 1), ["y"] = 3.0 * pg.Rank });
            a.AllReduce(pg);
            return a.Normalize(pg.WorldSize);
        });
        foreach (var r in results)
        {
            Assert.Equal(6.0 / 12.0, r["x"], 12);
            Assert.Equal((0 + 3 + 6) / 3.0, r["y"], 12);
        }

        var err = Assert.Throws<AggregateException>(() => InProcessGroup.Run(2, pg =>
        {
            var a = new MetricAccumulator();
            a.Add(new Dictionary<string, double> { [pg.Rank == 0 ? "a_sum" : "b_sum"] = 1 });
            a.AllReduce(pg);
        }));
        Assert.Contains("different metric keys", err.InnerException!.Message);
    }

    [Fact]
    public void FlatKeysFollowTheLoggingConvention()
    {
        var n = new Dictionary<string, double> { ["loss"] = 1, ["full_acc_1"] = 0.5 };
        Assert.Equal(new[] { "train/full_acc_1", "train/loss" }, MetricKeys.Train(n).Keys.OrderBy(k => k, StringComparer.Ordinal));
        Assert.Equal(new[] { "val/full_acc_1_epoch", "val/loss_epoch" }, MetricKeys.Validation(n).Keys.OrderBy(k => k, StringComparer.Ordinal));
    }
}
