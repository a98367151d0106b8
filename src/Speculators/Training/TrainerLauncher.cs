using Speculators.Distributed;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// What <c>speculators train</c> does after parsing (the CLI stays thin; the quickstart and tests call this too):
/// typed options, per-algorithm resolution, device/threads/seed/precision, the algorithm from its factory, the
/// metric sinks, then <see cref="Trainer.Run"/>.
/// </summary>
public static class TrainerLauncher
{
    /// <param name="config">the resolved configuration</param>
    /// <param name="commandLine">the command as typed (train_command.txt)</param>
    /// <param name="stop">cancelled on SIGINT/SIGTERM (a resumable checkpoint is written)</param>
    /// <param name="group">process group (default: this process alone)</param>
    public static TrainResult Run(RunConfig config, string commandLine, CancellationToken stop = default, IProcessGroup? group = null)
    {
        group ??= SingleProcessGroup.Instance;
        var options = config.ToOptions();
        // The trainer parses the Eagle-3 flags, so it resolves them too (verifier directory, aux ids, vocabulary
        // mapping), rejecting mismatches before anything is built.
        if (string.Equals(options.SpeculatorType, "eagle3", StringComparison.OrdinalIgnoreCase))
            options = options with { Eagle3 = options.Eagle3.Resolve(options.DataPath, config.ExplicitKeys) };
        var factory = TrainingAlgorithms.Find(options.SpeculatorType);

        var device = Devices.Parse(options.Device);
        if (options.NumThreads is int threads) torch.set_num_threads(threads);
        ScalarType compute;
        if (options.ComputeDtype is string given)
        {
            compute = Precision.ParseComputeDtype(given, device.type);
        }
        else
        {
            compute = Precision.DefaultComputeDtype(device.type);
            if (compute == ScalarType.Float32)
                Log.Info("compute dtype float32: this CPU has no native bf16 matmul (avx512_bf16/amx_bf16), where bf16 is emulated and far slower; pass --hidden-states-dtype bfloat16 to force it.");
        }
        torch.manual_seed(options.Seed);

        var context = new TrainingContext { Options = options, Device = device, ComputeDtype = compute, Group = group };
        using var algorithm = factory.Create(context);
        string runName = TrainerSinks.RunName(options.RunName, group.Rank, group.LocalRank);
        long resumeStep = options.Resume && !options.DryRun ? TrainerSinks.PeekResumeStep(options.SavePath) : 0;
        using var sink = TrainerSinks.Create(options, group.Rank, runName, resumeStep);
        var trainer = new Trainer(algorithm, context, sink, new TrainerRunInfo
        {
            CommandLine = commandLine,
            RunYaml = config.ToYaml(nonDefaultOnly: true),
            Hyperparameters = config.Hyperparameters(),
        });
        return trainer.Run(stop);
    }
}
