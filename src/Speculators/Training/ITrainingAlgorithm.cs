using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// What the trainer drives. One implementation per algorithm (Eagle-3 draft distillation,
/// causal-LM pretraining for the quickstart's target, DFlash next), so algorithms are added,
/// not wired through `if` chains. The trainer owns the loop, optimizers, schedules, precision
/// region, checkpoints, resume, logging and process group; the algorithm owns its model, its data
/// (per-sample preprocessing and collation) and its loss/metrics.
/// </summary>
public interface ITrainingAlgorithm : IDisposable
{
    /// <summary>Algorithm name recorded in run.yaml and logs ("eagle3", "causal_lm").</summary>
    string Name { get; }

    /// <summary>
    /// The module holding every parameter; trainable ones are fp32 master weights and
    /// <c>named_parameters()</c> keys equal checkpoint keys (optimizer state is keyed by them).
    /// </summary>
    nn.Module Model { get; }

    /// <summary>
    /// Trainable parameters by fully qualified name, in a stable order: what the optimizers update, what gradients
    /// are averaged over ranks for, and what checkpoints keep in fp32 (<c>master_weights.safetensors</c>) for resume.
    /// </summary>
    IReadOnlyList<NamedParameter> TrainableParameters { get; }

    /// <summary>Token count of every dataset row (the sampler packs by these; the trainer splits train/val by index).</summary>
    IReadOnlyList<int> RowLengths { get; }

    /// <summary>
    /// Loads and collates one packed batch from dataset rows (this rank's share of one step).
    /// The trainer calls it ahead of time on a background task (prefetch), so it must not touch
    /// trainable parameters. Rows that cannot be loaded are skipped and counted in the batch.
    /// </summary>
    ValueTask<ITrainingBatch> LoadBatchAsync(IReadOnlyList<int> rows, BatchContext context, CancellationToken cancellationToken);

    /// <summary>
    /// Forward pass inside the trainer's precision region: a scalar loss (differentiable when
    /// <paramref name="training"/>) and metrics as detached 0-d <c>X_sum</c>/<c>X_total</c> tensors
    /// (or plain values) for <see cref="MetricAccumulator"/>. Results belong to the caller.
    /// </summary>
    StepOutput Forward(ITrainingBatch batch, bool training);

    /// <summary>Adds derived figures to normalized validation metrics (e.g. est_acceptance_length).</summary>
    void AddDerivedValidationMetrics(IDictionary<string, double> normalizedValidationMetrics);

    /// <summary>
    /// Writes the model in its final, servable form (config + weights; for drafts the speculators
    /// format vLLM loads) into <paramref name="directory"/>, which exists and is empty; validates it.
    /// </summary>
    void SaveModel(string directory);

    /// <summary>
    /// Loads weights written by <see cref="SaveModel"/> (fine-tuning, tools). The trainer does not call it on resume:
    /// it restores <see cref="TrainableParameters"/> from the checkpoint's fp32 <c>master_weights.safetensors</c>.
    /// </summary>
    void LoadModel(string directory);

    /// <summary>Model FLOPs per trained token, forward + backward (for MFU and throughput reports).</summary>
    double TrainingFlopsPerToken { get; }

    /// <summary>Hyperparameters to log and to record in run.yaml.</summary>
    IReadOnlyDictionary<string, object?> Hyperparameters { get; }
}

/// <summary>Where a batch sits in the run; noise and other randomness derive from it (a pure function of seed, epoch and row).</summary>
public sealed record BatchContext(int Epoch, int Step, bool Training, long Seed, int TotalSequenceLength);

/// <summary>A collated batch ready for <see cref="ITrainingAlgorithm.Forward"/>; owns its tensors.</summary>
public interface ITrainingBatch : IDisposable
{
    /// <summary>Real (non-padding) tokens in the batch.</summary>
    long Tokens { get; }

    /// <summary>Samples packed into the batch.</summary>
    int Samples { get; }

    /// <summary>Rows that were requested but skipped (missing or invalid data), for the run summary.</summary>
    int SkippedRows { get; }
}

/// <summary>Loss and metrics of one forward pass.</summary>
public sealed class StepOutput(Tensor loss, IReadOnlyDictionary<string, Tensor> metrics) : IDisposable
{
    public Tensor Loss { get; } = loss;
    public IReadOnlyDictionary<string, Tensor> Metrics { get; } = metrics;

    public void Dispose()
    {
        Loss.Dispose();
        foreach (var t in Metrics.Values) t.Dispose();
    }
}
