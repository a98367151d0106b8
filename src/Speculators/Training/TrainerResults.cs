namespace Speculators.Training;

/// <summary>Provenance and hyper-parameters the trainer records (rank 0): <c>run.yaml</c>, <c>train_command.txt</c>, the sinks' hparams.</summary>
public sealed record TrainerRunInfo
{
    /// <summary>The command line as typed (written to <c>train_command.txt</c> at the root and in every checkpoint).</summary>
    public string? CommandLine { get; init; }

    /// <summary>The resolved non-default options as YAML (written to <c>run.yaml</c>).</summary>
    public string? RunYaml { get; init; }

    /// <summary>The resolved configuration logged as hyper-parameters (the algorithm's are added).</summary>
    public IReadOnlyDictionary<string, object?>? Hyperparameters { get; init; }
}

/// <summary>Why <see cref="Trainer.Run"/> returned.</summary>
public enum TrainStopReason
{
    /// <summary>All epochs ran.</summary>
    Completed,
    /// <summary><c>--max-steps</c> was reached.</summary>
    MaxSteps,
    /// <summary>A stop was requested (SIGINT/SIGTERM); a resumable checkpoint was written.</summary>
    Interrupted,
    /// <summary><c>--dry-run</c>: the model was built and saved.</summary>
    DryRun,
}

/// <summary>One optimizer step, reported to <see cref="Trainer.AfterStep"/> (tests, progress hooks).</summary>
/// <param name="Epoch">0-based epoch</param>
/// <param name="LocalStep">steps completed in this epoch, this one included</param>
/// <param name="StepsInEpoch">steps the epoch has</param>
/// <param name="GlobalStep">optimizer steps completed in the run, this one included</param>
/// <param name="Loss">this rank's loss of the step</param>
public readonly record struct TrainerStepInfo(int Epoch, int LocalStep, int StepsInEpoch, long GlobalStep, double Loss);

/// <summary>What a run did.</summary>
public sealed record TrainResult
{
    public required TrainStopReason Reason { get; init; }

    /// <summary>Optimizer steps completed in the whole run (including before a resume).</summary>
    public required long GlobalStep { get; init; }

    /// <summary>The checkpoint written last (or the dry-run model directory), if any.</summary>
    public string? LastCheckpoint { get; init; }

    /// <summary>Where <c>checkpoint_best</c> points, if anywhere.</summary>
    public string? BestCheckpoint { get; init; }

    public double? BestValLoss { get; init; }

    /// <summary>The checkpoint this run resumed from, if any.</summary>
    public string? ResumedFrom { get; init; }

    /// <summary>(global step, loss) of every step this process ran.</summary>
    public required IReadOnlyList<(long Step, double Loss)> TrainLosses { get; init; }

    /// <summary>Normalized validation metrics (no prefix, no suffix) per validated epoch.</summary>
    public required IReadOnlyList<(int Epoch, IReadOnlyDictionary<string, double> Metrics)> Validation { get; init; }

    /// <summary>Dataset rows the algorithm could not load (skipped).</summary>
    public long SkippedRows { get; init; }
}

/// <summary>
/// The run stopped because the loss or the gradient norm was not finite. Nothing was saved after the last
/// good checkpoint (named in the message), which a rerun resumes from.
/// </summary>
public sealed class TrainingDivergedException(string message, long globalStep) : SpeculatorsException(message)
{
    /// <summary>The global step (0-based) whose loss or gradient was not finite.</summary>
    public long GlobalStep { get; } = globalStep;
}
