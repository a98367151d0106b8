namespace Speculators.Training;

/// <summary>
/// Everything a training run is configured with (speculators.md §7.1 names in snake_case are the YAML
/// keys, <c>--kebab-case</c> the flags; see <see cref="RunParameters"/>). The generic part drives the
/// <see cref="Trainer"/>; <see cref="Eagle3"/> and <see cref="CausalLm"/> are read by their algorithm factories.
/// </summary>
public sealed record TrainOptions
{
    /// <summary><c>--speculator-type</c>: which <see cref="ITrainingAlgorithmFactory"/> builds the model.</summary>
    public string SpeculatorType { get; init; } = "eagle3";

    /// <summary><c>--dry-run</c>: build, initialize, save the model under <c>{save_path}/dry_run</c>, exit.</summary>
    public bool DryRun { get; init; }

    /// <summary><c>--seed</c>: torch's global seed, fresh-weight initialization and the per-row noise.</summary>
    public long Seed { get; init; } = 42;

    /// <summary><c>--data-path</c>: the prepared dataset (HF save_to_disk layout).</summary>
    public string DataPath { get; init; } = "./output";

    /// <summary><c>--from-pretrained</c>: a model to fine-tune instead of a fresh one (null: fresh).</summary>
    public string? FromPretrained { get; init; }

    /// <summary><c>--total-seq-len</c>: tokens per packed row per rank per step.</summary>
    public int TotalSeqLen { get; init; } = 8192;

    /// <summary><c>--train-data-ratio</c>: train = rows [0, ⌊N·ratio⌋), validation = the rest.</summary>
    public double TrainDataRatio { get; init; } = 0.9;

    /// <summary><c>--prefetch-factor</c>: batches loaded ahead on a background task (0: load on the training thread).</summary>
    public int PrefetchFactor { get; init; } = 4;

    /// <summary><c>--optimizer</c>, <c>--lr</c>, <c>--weight-decay</c>, <c>--muon-*</c>.</summary>
    public OptimizerOptions Optimizer { get; init; } = new();

    /// <summary><c>--scheduler-type</c>.</summary>
    public ScheduleKind SchedulerType { get; init; } = ScheduleKind.Linear;

    public long? SchedulerWarmupSteps { get; init; }
    public double? SchedulerWarmupRatio { get; init; }

    /// <summary><c>--scheduler-total-steps</c>; null: epochs × steps per epoch (capped by <see cref="MaxSteps"/>).</summary>
    public long? SchedulerTotalSteps { get; init; }

    public double SchedulerNumCosineCycles { get; init; } = 0.5;

    /// <summary><c>--epochs</c>.</summary>
    public int Epochs { get; init; } = 20;

    /// <summary><c>--max-steps</c>: stop after this many optimizer steps (global, across resumes).</summary>
    public long? MaxSteps { get; init; }

    /// <summary><c>--checkpoint-freq</c>: ≥ 1 saves every N epochs (an integer); &lt; 1 also saves every ⌈steps·freq⌉ steps.</summary>
    public double CheckpointFreq { get; init; } = 1.0;

    /// <summary><c>--save-best</c>: keep only the best checkpoint (saved when validation improves).</summary>
    public bool SaveBest { get; init; }

    /// <summary>Resume from the latest complete checkpoint under <see cref="SavePath"/> (<c>--no-resume</c> turns it off).</summary>
    public bool Resume { get; init; } = true;

    /// <summary><c>--log-freq</c>: log train metrics every N optimizer steps.</summary>
    public int LogFreq { get; init; } = 1;

    /// <summary><c>--save-path</c>: the checkpoint root.</summary>
    public string SavePath { get; init; } = "./output/checkpoints";

    /// <summary><c>--device</c>.</summary>
    public string Device { get; init; } = "cpu";

    /// <summary><c>--hidden-states-dtype</c>: the autocast compute dtype; null chooses per device (<see cref="Precision.DefaultComputeDtype"/>).</summary>
    public string? ComputeDtype { get; init; }

    /// <summary><c>--max-grad-norm</c>: global gradient-norm clip (speculators: 1.0).</summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary><c>--num-threads</c>: torch intra-op threads (null: libtorch's default).</summary>
    public int? NumThreads { get; init; }

    /// <summary><c>--logger</c>: comma list of metric backends (<c>tensorboard</c>, <c>console</c>).</summary>
    public string Logger { get; init; } = "";

    /// <summary><c>--log-dir</c>.</summary>
    public string LogDir { get; init; } = "./logs";

    /// <summary><c>--run-name</c>: placeholders <c>{time}</c>, <c>{utc_time}</c>, <c>{rank}</c>, <c>{local_rank}</c>; null: <c>{time}</c>.</summary>
    public string? RunName { get; init; }

    /// <summary>Eagle-3 options (read by the Eagle-3 factory).</summary>
    public Eagle3TrainingOptions Eagle3 { get; init; } = new();

    /// <summary>Causal-LM pretraining options (read by the causal-LM factory).</summary>
    public CausalLmTrainingOptions CausalLm { get; init; } = new();

    /// <summary>Checks ranges and combinations; errors name the flag.</summary>
    public void Validate()
    {
        if (Epochs < 1) throw new SpeculatorsException($"--epochs: expected >= 1, got {Epochs}.");
        if (TotalSeqLen < 2) throw new SpeculatorsException($"--total-seq-len: expected >= 2, got {TotalSeqLen}.");
        if (!(TrainDataRatio > 0 && TrainDataRatio <= 1))
            throw new SpeculatorsException($"--train-data-ratio: expected a value in (0, 1], got {TrainDataRatio}.");
        if (PrefetchFactor < 0) throw new SpeculatorsException($"--prefetch-factor: expected >= 0, got {PrefetchFactor}.");
        if (MaxSteps is long m && m < 1) throw new SpeculatorsException($"--max-steps: expected >= 1, got {m}.");
        if (!(CheckpointFreq > 0) || double.IsInfinity(CheckpointFreq))
            throw new SpeculatorsException($"--checkpoint-freq: expected a positive number, got {CheckpointFreq}.");
        if (CheckpointFreq > 1 && CheckpointFreq != Math.Floor(CheckpointFreq))
            throw new SpeculatorsException($"--checkpoint-freq: values above 1 must be whole epochs, got {CheckpointFreq}.");
        if (LogFreq < 1) throw new SpeculatorsException($"--log-freq: expected >= 1, got {LogFreq}.");
        if (!(MaxGradNorm > 0)) throw new SpeculatorsException($"--max-grad-norm: expected > 0, got {MaxGradNorm}.");
        if (NumThreads is int t && t < 1) throw new SpeculatorsException($"--num-threads: expected >= 1, got {t}.");
        if (!(Optimizer.Lr >= 0) || double.IsInfinity(Optimizer.Lr)) throw new SpeculatorsException($"--lr: expected a finite value >= 0, got {Optimizer.Lr}.");
        if (SchedulerTotalSteps is long ts && ts < 1) throw new SpeculatorsException($"--scheduler-total-steps: expected >= 1, got {ts}.");
        if (string.IsNullOrWhiteSpace(SavePath)) throw new SpeculatorsException("--save-path must not be empty.");
    }
}
