using System.Diagnostics;
using Speculators.Tests.Algorithms.CausalLm;
using Speculators.Training;

namespace Speculators.Tests.Cli;

/// <summary>A real SIGINT to a real <c>speculators train</c> process: it writes a normal resumable checkpoint and exits 130.</summary>
public class TrainSignalTests
{
    [Fact]
    public async Task SigintWritesAResumableCheckpointThatTheNextRunResumesFrom()
    {
        if (OperatingSystem.IsWindows()) return;
        using var dir = new TempDir();
        string data = CausalLmTestData.WriteDataset(dir.File("data"));
        string cfg = CausalLmTestData.WriteConfig(dir.File("cfg"));
        string ckpt = dir.File("ckpt");
        string[] args =
        [
            "train", "--speculator-type", "causal_lm", "--data-path", data, "--model-config", cfg, "--save-path", ckpt,
            "--total-seq-len", "96", "--num-threads", "1", "--epochs", "1000", "--scheduler-total-steps", "100000",
        ];
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = dir.Path,
        };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "speculators.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        try
        {
            // Wait for the end-of-epoch-0 checkpoint, so the signal lands while epoch 1 is training.
            var clock = Stopwatch.StartNew();
            string first = Path.Combine(ckpt, "0", TrainingState.FileName);
            while (!File.Exists(first))
            {
                if (p.HasExited) Assert.Fail($"the run exited early: {await stderr}");
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(120), "no checkpoint after 120 s");
                await Task.Delay(50);
            }
            await Task.Delay(300);
            using (var kill = Process.Start("kill", ["-INT", p.Id.ToString()])) kill.WaitForExit();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await p.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
        string err = await stderr, output = await stdout;
        Assert.True(p.ExitCode == 130, $"exit {p.ExitCode}\n{output}\n{err}");
        Assert.Contains("SIGINT: finishing the current step", err);
        Assert.Contains("interrupted at global step", output);

        var store = new CheckpointStore(ckpt);
        int latest = store.Epochs()[0];
        var state = TrainingState.Parse(File.ReadAllText(Path.Combine(store.PathOf(latest), TrainingState.FileName)), "state");
        // "epoch_end" when the signal arrived during validation (the epoch's checkpoint was already written).
        Assert.Contains(state.Reason, new[] { "interrupted", "epoch_end" });
        Assert.Contains($"interrupted at global step {state.GlobalStep};", output);
        Assert.DoesNotContain(Directory.EnumerateDirectories(ckpt), d => d.EndsWith(".tmp") || d.EndsWith(".old"));

        // The same command continues from exactly there.
        var again = CliRunner.Ok([.. args[..^4], "--epochs", "1000", "--max-steps", (state.GlobalStep + 2).ToString(), "--scheduler-total-steps", "100000"]);
        Assert.Contains($"resuming from {store.PathOf(latest)}", again.Stderr);
        Assert.Contains($"global step {state.GlobalStep + 2}", again.Stdout);
    }
}
