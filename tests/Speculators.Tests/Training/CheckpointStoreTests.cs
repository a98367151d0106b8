using Speculators.Training;
using Speculators.Util;

namespace Speculators.Tests.Training;

/// <summary>The atomic directory protocol under a kill at every step, recovery, and fallback past corrupt checkpoints.</summary>
public class CheckpointStoreTests
{
    sealed class Killed : Exception
    {
    }

    static void WriteVersion(string dir, string version)
    {
        File.WriteAllText(Path.Combine(dir, "a.txt"), version);
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllText(Path.Combine(dir, "sub", "b.txt"), version);
    }

    static string VersionOf(string dir) => File.ReadAllText(Path.Combine(dir, "a.txt")) + "/" + File.ReadAllText(Path.Combine(dir, "sub", "b.txt"));

    [Theory]
    [InlineData("during-write", "v1")]
    [InlineData("tmp-written", "v1")]
    [InlineData("old-renamed", "v1")]
    [InlineData("new-renamed", "v2")]
    public void KillAtAnyPointLeavesALoadableCheckpoint(string killAt, string expected)
    {
        using var root = new TempDir();
        var store = new CheckpointStore(root.Path);
        store.Save("3", d => WriteVersion(d, "v1"));
        store.FaultInjection = point => { if (point == killAt) throw new Killed(); };
        Assert.Throws<Killed>(() => store.Save("3", d =>
        {
            File.WriteAllText(Path.Combine(d, "a.txt"), "v2");
            if (killAt == "during-write") throw new Killed(); // half-written tmp
            Directory.CreateDirectory(Path.Combine(d, "sub"));
            File.WriteAllText(Path.Combine(d, "sub", "b.txt"), "v2");
        }));
        // A kill leaves the tmp directory behind (the protocol's own cleanup on exceptions does not run when killed).
        if (killAt != "during-write") Assert.True(Directory.Exists(Path.Combine(root.Path, "3.tmp")) || killAt == "new-renamed");
        if (killAt == "old-renamed")
        {
            Assert.False(Directory.Exists(Path.Combine(root.Path, "3")));
            Assert.Empty(store.Epochs()); // nothing resumable until recovery
        }

        var fresh = new CheckpointStore(root.Path);
        var actions = fresh.Recover();
        if (killAt is "old-renamed" or "new-renamed") Assert.NotEmpty(actions);
        Assert.Equal(new[] { 3 }, fresh.Epochs());
        Assert.Equal($"{expected}/{expected}", VersionOf(fresh.PathOf(3)));
        Assert.Equal(new[] { "3" }, Directory.EnumerateFileSystemEntries(root.Path).Select(Path.GetFileName).ToArray());
    }

    [Fact]
    public void EpochsAreIntegerRealDirectoriesNewestFirst()
    {
        using var root = new TempDir();
        var store = new CheckpointStore(root.Path);
        foreach (var n in new[] { "0", "2", "10", "interrupted", "dry_run", "007", "3.tmp" }) Directory.CreateDirectory(Path.Combine(root.Path, n));
        store.UpdateEpochLink(10, 0);
        store.UpdateBest(2);
        Assert.Equal(new[] { 10, 2, 0 }, store.Epochs());
        Assert.Equal(2, store.BestEpoch());
        Assert.Equal("10", new FileInfo(Path.Combine(root.Path, "epoch10_end")).LinkTarget);
        store.UpdateEpochLink(10, 7);
        Assert.False(File.Exists(Path.Combine(root.Path, "epoch10_end")) || new FileInfo(Path.Combine(root.Path, "epoch10_end")).LinkTarget != null);
        Assert.Equal("10", new FileInfo(Path.Combine(root.Path, "epoch10_step7")).LinkTarget);
        store.UpdateBest(10);
        Assert.Equal(10, store.BestEpoch());
        Assert.Null(store.BestValLoss()); // no val_metrics.json there
        store.WriteValMetrics(10, new Dictionary<string, double> { ["loss_epoch"] = 1.25 });
        Assert.Equal(1.25, store.BestValLoss());
    }

    [Fact]
    public void CorruptLatestCheckpointIsReportedAndThePreviousOneIsUsed()
    {
        using var dir = new TempDir();
        var o = new TrainOptions { SavePath = dir.Path, TotalSeqLen = 32, Epochs = 2, TrainDataRatio = 0.8, Optimizer = new OptimizerOptions { Lr = 0.05 } };
        using (var a = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(40)))
            new Trainer(a, TrainerTestAlgorithm.Context(o)).Run();
        // Truncate the newest checkpoint's optimizer state: a half-written file left by a disk failure.
        string victim = Path.Combine(dir.Path, "1", CheckpointStore.OptimizerStateFile);
        var bytes = File.ReadAllBytes(victim);
        File.WriteAllBytes(victim, bytes[..(bytes.Length / 2)]);

        var log = new StringWriter();
        var old = Log.Writer;
        Log.Writer = log;
        try
        {
            using var a = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(40));
            var r = new Trainer(a, TrainerTestAlgorithm.Context(o with { Epochs = 3 })).Run();
            Assert.Equal(Path.Combine(dir.Path, "0"), r.ResumedFrom);
            Assert.Equal(TrainStopReason.Completed, r.Reason);
        }
        finally
        {
            Log.Writer = old;
        }
        string text = log.ToString();
        Assert.Contains($"checkpoint {Path.Combine(dir.Path, "1")} is unusable", text);
        Assert.Contains(CheckpointStore.OptimizerStateFile, text);
        Assert.Contains("Trying the previous one", text);

        // When every checkpoint is unusable the run refuses to start over silently.
        foreach (var e in new[] { "0", "1", "2" })
            File.WriteAllText(Path.Combine(dir.Path, e, TrainingState.FileName), "{ not json");
        using var b = new TrainerTestAlgorithm(TrainerTestAlgorithm.Lengths(40));
        var ex = Assert.Throws<SpeculatorsException>(() => new Trainer(b, TrainerTestAlgorithm.Context(o with { Epochs = 4 })).Run());
        Assert.Contains("no usable checkpoint", ex.Message);
        Assert.Contains("--no-resume", ex.Message);
    }
}
