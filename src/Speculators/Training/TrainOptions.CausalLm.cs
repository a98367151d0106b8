namespace Speculators.Training;

/// <summary>Options of the causal-LM pretraining algorithm (<c>--speculator-type causal_lm</c>; <c>Algorithms/CausalLm</c>).</summary>
public sealed record CausalLmTrainingOptions
{
    /// <summary>
    /// <c>--model-config</c>: an HF <c>config.json</c> (file or directory) describing the model to train from scratch.
    /// Ignored with <see cref="TrainOptions.FromPretrained"/> (the model directory's own config is used).
    /// </summary>
    public string? ModelConfig { get; init; }

    /// <summary>
    /// <c>--loss-on</c>: <c>loss_mask</c> (default: next-token loss where the dataset's <c>loss_mask</c> is 1, e.g. assistant
    /// turns) or <c>all</c> (every next token inside a document).
    /// </summary>
    public string LossOn { get; init; } = "loss_mask";

    /// <summary><c>--save-dtype</c>: dtype of the saved <c>model.safetensors</c> (float32 or bfloat16).</summary>
    public string SaveDtype { get; init; } = "float32";

    /// <summary>
    /// <c>--tokenizer</c>: a directory whose tokenizer files (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>,
    /// <c>special_tokens_map.json</c>, <c>generation_config.json</c>, …) are copied into every saved model, so each
    /// checkpoint is a complete HF model directory. Null: none copied (the caller adds them).
    /// </summary>
    public string? Tokenizer { get; init; }
}
