using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Speculators.Training;

/// <summary>
/// <c>training_state.json</c>: where a checkpoint sits in the run. <c>epoch</c>, <c>local_step</c> (0 = end of
/// the epoch) and <c>global_step</c> are the Python trainer's keys; the rest lets a resumed run continue bitwise:
/// the sampler position (a pure function of seed, epoch and completed steps), torch's CPU RNG state and
/// the shape of the data split it was written for.
/// </summary>
public sealed record TrainingState
{
    public const string FileName = "training_state.json";
    public const string CurrentFormat = "speculators-dotnet-training-state/1";

    [JsonPropertyName("format")] public string Format { get; init; } = CurrentFormat;
    [JsonPropertyName("epoch")] public int Epoch { get; init; }

    /// <summary>Optimizer steps completed in <see cref="Epoch"/>; 0 means the epoch is complete.</summary>
    [JsonPropertyName("local_step")] public int LocalStep { get; init; }

    [JsonPropertyName("global_step")] public long GlobalStep { get; init; }

    /// <summary>Why the checkpoint was written: <c>epoch_end</c>, <c>mid_epoch</c>, <c>interrupted</c>, <c>max_steps</c>, <c>best</c>.</summary>
    [JsonPropertyName("reason")] public string Reason { get; init; } = "epoch_end";

    [JsonPropertyName("seed")] public long Seed { get; init; }
    [JsonPropertyName("sampler_seed")] public long SamplerSeed { get; init; }
    [JsonPropertyName("world_size")] public int WorldSize { get; init; } = 1;
    [JsonPropertyName("total_seq_len")] public int TotalSeqLen { get; init; }
    [JsonPropertyName("train_rows")] public int TrainRows { get; init; }
    [JsonPropertyName("val_rows")] public int ValRows { get; init; }
    [JsonPropertyName("steps_per_epoch")] public int StepsPerEpoch { get; init; }

    /// <summary>Best validation loss so far (also in <c>checkpoint_best/val_metrics.json</c>).</summary>
    [JsonPropertyName("best_val_loss")] public double? BestValLoss { get; init; }

    /// <summary>Base64 of torch's default CPU generator state.</summary>
    [JsonPropertyName("torch_rng_state")] public string? TorchRngState { get; init; }

    [JsonPropertyName("algorithm")] public string? Algorithm { get; init; }
    [JsonPropertyName("written_by")] public string? WrittenBy { get; init; }

    [JsonExtensionData] public Dictionary<string, JsonElement>? Extra { get; set; }

    static readonly JsonSerializerOptions Options = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Options) + "\n";

    /// <summary>Parses a state file; a missing key the resume needs or malformed JSON throws naming the file.</summary>
    public static TrainingState Parse(string json, string path)
    {
        JsonObject? obj;
        try
        {
            obj = JsonNode.Parse(json) as JsonObject;
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{path}: not valid JSON ({e.Message}).");
        }
        if (obj == null) throw new SpeculatorsException($"{path}: expected a JSON object.");
        foreach (var key in new[] { "epoch", "local_step", "global_step" })
            if (obj[key] is null) throw new SpeculatorsException($"{path}: missing '{key}'.");
        try
        {
            return obj.Deserialize<TrainingState>(Options)!;
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{path}: {e.Message}");
        }
    }
}
