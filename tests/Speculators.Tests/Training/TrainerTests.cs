using System.Text.Json.Nodes;
using Speculators.Distributed;
using Speculators.Formats;
using Speculators.Logging;
using Speculators.Training;
using TorchSharp;

namespace Speculators.Tests.Training;

/// <summary>The generic loop on a tiny test algorithm: determinism, resume equality, NaN stop, best tracking, layout, memory.</summary>
public class TrainerTests
{
    static TrainOptions Options(string savePath, int epochs = 2, int rows = 40) => new()
    {
        SpeculatorType = "test",
        SavePath = savePath,
        TotalSeqLen = 32,
        Epochs = epochs,
        TrainDataRatio = 0.8,
        Optimizer = new OptimizerOptions { Lr = 0.05 },
        SchedulerType = ScheduleKind.Cosine,
        SchedulerWarmupSteps = 2,
        PrefetchFactor = 2,
    };

    static (TrainResult Result, TrainerTestAlgorithm Algo) RunOnce(TrainOptions o, int rows = 40, Action<Trainer>? configure = null,
        CancellationToken stop = default, IMetricSink? sink = null, Action<TrainerTestAlgorithm>? setup = null)
    {
        var algo = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(rows));
        setup?.Invoke(algo);
        var trainer = new Trainer(algo, TrainerTestAlgorithm.Context(o), sink);
        configure?.Invoke(trainer);
        return (trainer.Run(stop), algo);
    }

    [Fact]
    public void SameSeedSameLossesAndTheLossFalls()
    {
        using var d1 = new TempDir();
        using var d2 = new TempDir();
        var (r1, a1) = RunOnce(Options(d1.Path));
        var (r2, a2) = RunOnce(Options(d2.Path));
        using (a1)
        using (a2)
        {
            Assert.Equal(TrainStopReason.Completed, r1.Reason);
            Assert.True(r1.TrainLosses.Count > 6);
            Assert.Equal(r1.TrainLosses, r2.TrainLosses);
            Assert.True(TrainerTestAlgorithm.SameWeights(a1.TrainableParameters, a2.TrainableParameters));
            Assert.True(r1.TrainLosses[^1].Loss < 0.5 * r1.TrainLosses[0].Loss, $"loss {r1.TrainLosses[0].Loss} → {r1.TrainLosses[^1].Loss}");
            // Validation ran every epoch with derived metrics.
            Assert.Equal(2, r1.Validation.Count);
            Assert.Equal(2 * r1.Validation[1].Metrics["loss"], r1.Validation[1].Metrics["loss_doubled"], 12);
        }
    }

    [Fact]
    public void InterruptedMidEpochAndResumedEndsBitwiseEqual()
    {
        using var straightDir = new TempDir();
        using var resumedDir = new TempDir();
        var (straight, sa) = RunOnce(Options(straightDir.Path, epochs: 3));
        using var _ = sa;

        using var cts = new CancellationTokenSource();
        var (first, fa) = RunOnce(Options(resumedDir.Path, epochs: 3), configure: t => t.AfterStep = s =>
        {
            if (s.Epoch == 1 && s.LocalStep == 2) cts.Cancel();
        }, stop: cts.Token);
        fa.Dispose();
        Assert.Equal(TrainStopReason.Interrupted, first.Reason);
        var state = JsonNode.Parse(File.ReadAllText(Path.Combine(resumedDir.Path, "1", TrainingState.FileName)))!;
        Assert.Equal(1, state["epoch"]!.GetValue<int>());
        Assert.Equal(2, state["local_step"]!.GetValue<int>());
        Assert.Equal("interrupted", state["reason"]!.GetValue<string>());
        Assert.True(new FileInfo(Path.Combine(resumedDir.Path, "epoch1_step2")).LinkTarget == "1");

        var (second, sb) = RunOnce(Options(resumedDir.Path, epochs: 3));
        using var __ = sb;
        Assert.Equal(TrainStopReason.Completed, second.Reason);
        Assert.Equal(Path.Combine(resumedDir.Path, "1"), second.ResumedFrom);
        Assert.Equal(straight.GlobalStep, second.GlobalStep);
        Assert.Equal(straight.TrainLosses, first.TrainLosses.Concat(second.TrainLosses).ToList());
        Assert.True(TrainerTestAlgorithm.SameWeights(sa.TrainableParameters, sb.TrainableParameters));
        // The best-loss record survives the resume: same checkpoint_best as the straight run.
        Assert.Equal(new FileInfo(Path.Combine(straightDir.Path, "checkpoint_best")).LinkTarget,
                     new FileInfo(Path.Combine(resumedDir.Path, "checkpoint_best")).LinkTarget);
    }

    [Fact]
    public void NanLossStopsWithTheStepAndKeepsTheLastGoodCheckpoint()
    {
        using var dir = new TempDir();
        var o = Options(dir.Path, epochs: 3);
        TrainerTestAlgorithm? algo = null;
        var e = Assert.Throws<TrainingDivergedException>(() =>
        {
            var r = RunOnce(o, setup: a => { a.NanAt = (1, 3); algo = a; });
        });
        using var _ = algo!;
        var store = new CheckpointStore(dir.Path);
        Assert.Equal(new[] { 0 }, store.Epochs());
        var state = TrainingState.Parse(File.ReadAllText(Path.Combine(dir.Path, "0", TrainingState.FileName)), "state");
        long expectedStep = state.GlobalStep + 3;
        Assert.Equal(expectedStep, e.GlobalStep);
        Assert.Contains($"global step {expectedStep}", e.Message);
        Assert.Contains("NaN", e.Message);
        Assert.Contains(Path.Combine(dir.Path, "0"), e.Message);
        // The kept checkpoint is loadable: a rerun (without the fault) resumes from it.
        var (r2, a2) = RunOnce(o);
        using var __ = a2;
        Assert.Equal(Path.Combine(dir.Path, "0"), r2.ResumedFrom);
        Assert.Equal(TrainStopReason.Completed, r2.Reason);
    }

    [Fact]
    public void CheckpointBestFollowsTheLowestValidationLoss()
    {
        using var dir = new TempDir();
        double[] scale = [5, 1, 3, 0.5, 2];
        var (r, a) = RunOnce(Options(dir.Path, epochs: 5), setup: x => x.ValidationScale = e => scale[e]);
        using var _ = a;
        var losses = r.Validation.Select(v => v.Metrics["loss"]).ToArray();
        int argmin = Array.IndexOf(losses, losses.Min());
        Assert.Equal(3, argmin);
        var store = new CheckpointStore(dir.Path);
        Assert.Equal(argmin, store.BestEpoch());
        Assert.Equal("3", new FileInfo(Path.Combine(dir.Path, CheckpointStore.BestLinkName)).LinkTarget);
        var valMetrics = JsonNode.Parse(File.ReadAllText(Path.Combine(dir.Path, "checkpoint_best", CheckpointStore.ValMetricsFile)))!;
        Assert.Equal(losses[3], valMetrics["loss_epoch"]!.GetValue<double>(), 12);
        Assert.Equal(losses[3], r.BestValLoss!.Value, 12);
        // val_metrics.json only where the best moved: epochs 0, 1 and 3.
        for (int e = 0; e < 5; e++)
            Assert.Equal(e is 0 or 1 or 3, File.Exists(Path.Combine(dir.Path, e.ToString(), CheckpointStore.ValMetricsFile)));
        Assert.Equal(new[] { 4, 3, 2, 1, 0 }, store.Epochs());
        Assert.True(File.Exists(Path.Combine(dir.Path, "epoch4_end")) || new FileInfo(Path.Combine(dir.Path, "epoch4_end")).LinkTarget != null);
    }

    [Fact]
    public void SaveBestKeepsOnlyTheBestCheckpoint()
    {
        using var dir = new TempDir();
        double[] scale = [5, 1, 3];
        var o = Options(dir.Path, epochs: 3) with { SaveBest = true };
        var (r, a) = RunOnce(o, setup: x => x.ValidationScale = e => scale[e]);
        using var _ = a;
        Assert.Equal(new[] { 1 }, new CheckpointStore(dir.Path).Epochs());
        Assert.Equal(1, new CheckpointStore(dir.Path).BestEpoch());
        Assert.True(File.Exists(Path.Combine(dir.Path, "1", CheckpointStore.ValMetricsFile)));
    }

    [Fact]
    public void SubEpochSavesAndMaxStepsStopWithAResumableCheckpoint()
    {
        using var dir = new TempDir();
        var o = Options(dir.Path, epochs: 2) with { CheckpointFreq = 0.5 };
        var saves = new List<(int Epoch, int Local)>();
        var (r, a) = RunOnce(o, configure: t => t.AfterStep = s =>
        {
            var st = Path.Combine(dir.Path, s.Epoch.ToString(), TrainingState.FileName);
            if (File.Exists(st))
            {
                var ts = TrainingState.Parse(File.ReadAllText(st), st);
                if (!saves.Contains((ts.Epoch, ts.LocalStep))) saves.Add((ts.Epoch, ts.LocalStep));
            }
        });
        a.Dispose();
        int steps = r.TrainLosses.Count / 2;
        int interval = (int)Math.Round(steps * 0.5, MidpointRounding.ToEven);
        Assert.Contains((0, interval), saves); // mid-epoch save observed in the next steps
        var end = TrainingState.Parse(File.ReadAllText(Path.Combine(dir.Path, "1", TrainingState.FileName)), "s");
        Assert.Equal(0, end.LocalStep);

        using var dir2 = new TempDir();
        var o2 = Options(dir2.Path, epochs: 3) with { MaxSteps = steps + 2 };
        var (r2, a2) = RunOnce(o2);
        a2.Dispose();
        Assert.Equal(TrainStopReason.MaxSteps, r2.Reason);
        Assert.Equal(steps + 2, r2.GlobalStep);
        var mid = TrainingState.Parse(File.ReadAllText(Path.Combine(dir2.Path, "1", TrainingState.FileName)), "s");
        Assert.Equal((1, 2, "max_steps"), (mid.Epoch, mid.LocalStep, mid.Reason));
        // The lr schedule ends at --max-steps (cosine reaches 0 there).
        var sched = JsonNode.Parse(File.ReadAllText(Path.Combine(dir2.Path, "1", CheckpointStore.SchedulerStateFile)))!.AsArray();
        Assert.Equal(steps + 2, sched[0]!["total_steps"]!.GetValue<long>());
        // A second run with the same --max-steps has nothing to do.
        var (r3, a3) = RunOnce(o2);
        a3.Dispose();
        Assert.Equal(TrainStopReason.MaxSteps, r3.Reason);
        Assert.Empty(r3.TrainLosses);
    }

    [Fact]
    public void CheckpointHoldsFp32MasterAndOptimizerStateByNameAndProvenance()
    {
        using var dir = new TempDir();
        var algo = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(40));
        using var _ = algo;
        var o = Options(dir.Path, epochs: 1) with { Optimizer = new OptimizerOptions { Kind = OptimizerKind.Muon, Lr = 0.01 } };
        var trainer = new Trainer(algo, TrainerTestAlgorithm.Context(o), null, new TrainerRunInfo { CommandLine = "speculators train --x 1", RunYaml = "train:\n  epochs: 1\n" });
        trainer.Run();
        string ck = Path.Combine(dir.Path, "0");
        foreach (var f in new[] { "config.json", "model.safetensors", CheckpointStore.MasterWeightsFile, CheckpointStore.OptimizerStateFile,
                                  CheckpointStore.SchedulerStateFile, TrainingState.FileName, CheckpointStore.TrainCommandFile })
            Assert.True(File.Exists(Path.Combine(ck, f)), f);
        Assert.Equal("train:\n  epochs: 1\n", File.ReadAllText(Path.Combine(dir.Path, CheckpointStore.RunYamlFile)));
        Assert.Equal("speculators train --x 1\n", File.ReadAllText(Path.Combine(ck, CheckpointStore.TrainCommandFile)));
        using var master = SafeTensorsFile.Open(Path.Combine(ck, CheckpointStore.MasterWeightsFile));
        using var w = master.Load("weight");
        Assert.Equal(torch.ScalarType.Float32, w.dtype);
        Assert.True(TrainerTestAlgorithm.Same(w, algo.Weight));
        using var opt = SafeTensorsFile.Open(Path.Combine(ck, CheckpointStore.OptimizerStateFile));
        Assert.Contains("weight.momentum_buffer", opt.Keys); // Muon for the matrix
        Assert.Contains("bias.exp_avg", opt.Keys);          // AdamW for the vector
        Assert.All(opt.Keys, k => Assert.Equal(SafeTensorsDType.F32, opt.Info(k).DType));
        var scalars = JsonNode.Parse(opt.Metadata["optimizers"])!.AsArray();
        Assert.Equal(new[] { "Muon", "AdamW" }, scalars.Select(s => s!["type"]!.GetValue<string>()));
        var state = TrainingState.Parse(File.ReadAllText(Path.Combine(ck, TrainingState.FileName)), "s");
        Assert.NotNull(state.TorchRngState);
        Assert.Equal(0, state.LocalStep);
    }

    [Fact]
    public void MemoryStaysFlatOverManySteps()
    {
        using var dir = new TempDir();
        // Saves every 10 epochs and validation every epoch run in between the measured steps too.
        var o = Options(dir.Path, epochs: 40, rows: 20) with { PrefetchFactor = 0, TrainDataRatio = 0.7, CheckpointFreq = 10 };
        var live = new List<long>();
        var (r, a) = RunOnce(o, rows: 20, configure: t => t.AfterStep = _ => live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount));
        using var __ = a;
        Assert.True(live.Count > 150, $"{live.Count} steps");
        // After warm-up (optimizer state created on the first step), the count of live tensors never grows.
        long settled = live[5];
        Assert.All(live.Skip(5), n => Assert.Equal(settled, n));
    }

    [Fact]
    public void TwoRanksInProcessTrainIdenticalReplicas()
    {
        using var d0 = new TempDir();
        var results = InProcessGroup.Run(2, pg =>
        {
            using var algo = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(40), seed: 1 + pg.Rank); // different init: rank 0 broadcasts
            var o = Options(d0.Path, epochs: 1) with { PrefetchFactor = 0 };
            var r = new Trainer(algo, TrainerTestAlgorithm.Context(o, pg)).Run();
            return (r.GlobalStep, algo.Weight.detach().clone().DetachFromDisposeScope());
        });
        Assert.Equal(results[0].GlobalStep, results[1].GlobalStep);
        Assert.True(TrainerTestAlgorithm.Same(results[0].Item2, results[1].Item2));
        Assert.True(File.Exists(Path.Combine(d0.Path, "0", TrainingState.FileName)));
        var state = TrainingState.Parse(File.ReadAllText(Path.Combine(d0.Path, "0", TrainingState.FileName)), "s");
        Assert.Equal(2, state.WorldSize);
    }
}
