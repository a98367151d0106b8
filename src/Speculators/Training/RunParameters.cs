using System.Globalization;

namespace Speculators.Training;

/// <summary>Value types of run parameters.</summary>
public enum RunValueKind
{
    String,
    Int,
    Double,
    Bool,
    /// <summary>A list of integers (<c>--target-layer-ids 2 5 8</c>, <c>2,5,8</c> or a YAML sequence).</summary>
    IntList,
}

/// <summary>
/// One option of <c>speculators train</c>: YAML key (snake_case, as in speculators' schema), flag (<c>--kebab-case</c>),
/// type, default and help. Values are <c>string</c>, <c>long</c>, <c>double</c>, <c>bool</c>, <c>long[]</c> or null.
/// </summary>
public sealed record RunParameter(string Key, RunValueKind Kind, object? Default, string Help, string Group, string[]? Aliases = null)
{
    public string Flag => "--" + Key.Replace('_', '-');

    /// <summary>Whether null is a valid value (the default is null).</summary>
    public bool Nullable => Default is null;

    /// <summary>The default as help shows it.</summary>
    public string DefaultText => Default switch
    {
        null => "none",
        string s when s.Length == 0 => "\"\"",
        _ => Format(Default),
    };

    /// <summary>Parses one textual value (a flag argument or a YAML scalar); errors name <paramref name="source"/>.</summary>
    public object? Parse(string? text, string source)
    {
        if (text is null || (Nullable && text is "null" or "~" or "None" && Kind != RunValueKind.String))
        {
            if (!Nullable && Kind != RunValueKind.Bool) throw new SpeculatorsException($"{source}: a value is required.");
            if (Kind == RunValueKind.Bool && text is null) return true;
            return null;
        }
        string t = text.Trim();
        switch (Kind)
        {
            case RunValueKind.String:
                return text;
            case RunValueKind.Int:
                if (long.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out long l)) return l;
                throw new SpeculatorsException($"{source}: expected an integer, got '{text}'.");
            case RunValueKind.Double:
                if (double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) && double.IsFinite(d)) return d;
                throw new SpeculatorsException($"{source}: expected a number, got '{text}'.");
            case RunValueKind.Bool:
                return t.ToLowerInvariant() switch
                {
                    "true" or "1" or "yes" or "on" => true,
                    "false" or "0" or "no" or "off" => false,
                    _ => throw new SpeculatorsException($"{source}: expected true or false, got '{text}'."),
                };
            case RunValueKind.IntList:
                return ParseList(t.Trim('[', ']').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), source);
            default:
                throw new ArgumentOutOfRangeException();
        }
    }

    /// <summary>Parses list items (each may itself be comma-separated).</summary>
    public long[] ParseList(IEnumerable<string> items, string source)
    {
        var result = new List<long>();
        foreach (var item in items)
            foreach (var part in item.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                if (!long.TryParse(part.Trim('[', ']'), NumberStyles.Integer, CultureInfo.InvariantCulture, out long v))
                    throw new SpeculatorsException($"{source}: expected integers, got '{part}'.");
                result.Add(v);
            }
        return result.ToArray();
    }

    /// <summary>A value as YAML/help text (invariant culture; floats keep a decimal point).</summary>
    public static string Format(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        int i => i.ToString(CultureInfo.InvariantCulture),
        double d => FormatDouble(d),
        long[] list => "[" + string.Join(", ", list.Select(x => x.ToString(CultureInfo.InvariantCulture))) + "]",
        string s => s,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };

    static string FormatDouble(double d)
    {
        string s = d.ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains('E')) s = s.Replace("E", "e");
        if (!s.Contains('.') && !s.Contains('e') && !s.Contains("Infinity") && !s.Contains("NaN")) s += ".0";
        return s;
    }

    /// <summary>Value equality for the "non-default" test (lists element-wise, numbers by value).</summary>
    public static bool ValueEquals(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (null, _) or (_, null) => false,
        (long[] x, long[] y) => x.SequenceEqual(y),
        (long x, double y) => x == y,
        (double x, long y) => x == y,
        _ => a.Equals(b),
    };
}

/// <summary>
/// The options of <c>speculators train</c>: speculators.md §7.1 flags where they apply, plus ours. The order is the
/// help and YAML order.
/// </summary>
public static class RunParameters
{
    const string Run = "run", Data = "data", Optim = "optimization", Ckpt = "checkpoints", Logging = "logging", Eagle = "eagle3", Lm = "causal_lm";

    public static readonly IReadOnlyList<RunParameter> All =
    [
        new("speculator_type", RunValueKind.String, "eagle3", "Training algorithm: eagle3 (draft distillation) or causal_lm (pretrain a small target model).", Run),
        new("dry_run", RunValueKind.Bool, false, "Build and initialize the model, save it to <save-path>/dry_run, exit.", Run),
        new("seed", RunValueKind.Int, 42L, "Seed for weight initialization, torch's RNG and the per-row noise (same seed, same losses).", Run),
        new("device", RunValueKind.String, "cpu", "cpu, cuda or cuda:N.", Run),
        new("hidden_states_dtype", RunValueKind.String, "auto", "Compute dtype (autocast; masters stay fp32): bfloat16 or float32; auto = bfloat16 where bf16 matmul is native (CUDA, AVX512-BF16/AMX CPUs), else float32.", Run),
        new("num_threads", RunValueKind.Int, null, "torch intra-op threads (resume is bitwise equal with the same count).", Run),
        new("from_pretrained", RunValueKind.String, null, "Fine-tune an existing model: a speculator checkpoint (eagle3; ours or Python speculators') or an HF model directory (causal_lm).", Run),

        new("data_path", RunValueKind.String, "./output", "Prepared dataset directory (prepare-data output, HF save_to_disk layout).", Data),
        new("total_seq_len", RunValueKind.Int, 8192L, "Tokens per packed row per rank per step.", Data),
        new("train_data_ratio", RunValueKind.Double, 0.9, "Train = the first ⌊N·ratio⌋ rows, validation = the rest.", Data),
        new("prefetch_factor", RunValueKind.Int, 4L, "Batches loaded ahead on a background task (0 = load on the training thread).", Data),

        new("optimizer", RunValueKind.String, "adamw", "adamw, or muon (Muon for hidden matrices + AdamW for the rest).", Optim),
        new("lr", RunValueKind.Double, 1e-4, "Learning rate (AdamW / base group).", Optim),
        new("weight_decay", RunValueKind.Double, 0.01, "AdamW weight decay.", Optim),
        new("max_grad_norm", RunValueKind.Double, 1.0, "Global gradient-norm clipping threshold.", Optim),
        new("muon_lr", RunValueKind.Double, null, "Muon learning rate (default 10 × lr).", Optim),
        new("muon_momentum", RunValueKind.Double, 0.95, "Muon momentum.", Optim),
        new("muon_weight_decay", RunValueKind.Double, 0.1, "Muon weight decay.", Optim),
        new("muon_ns_steps", RunValueKind.Int, 5L, "Muon Newton–Schulz iterations.", Optim),
        new("muon_adjust_lr_fn", RunValueKind.String, "match_rms_adamw", "match_rms_adamw or original.", Optim),
        new("scheduler_type", RunValueKind.String, "linear", "linear, cosine, constant (warmup then constant) or none.", Optim),
        new("scheduler_warmup_steps", RunValueKind.Int, null, "Warmup steps (default 1% of the total).", Optim),
        new("scheduler_warmup_ratio", RunValueKind.Double, null, "Warmup as a fraction of the total steps, in [0, 1].", Optim),
        new("scheduler_total_steps", RunValueKind.Int, null, "Schedule length (default epochs × steps per epoch, capped by --max-steps).", Optim),
        new("scheduler_num_cosine_cycles", RunValueKind.Double, 0.5, "Cosine cycles.", Optim),
        new("epochs", RunValueKind.Int, 20L, "Epochs.", Optim),
        new("max_steps", RunValueKind.Int, null, "Stop after this many optimizer steps in total (a checkpoint is written there).", Optim),

        new("save_path", RunValueKind.String, "./output/checkpoints", "Checkpoint root: {epoch}/, checkpoint_best, run.yaml, train_command.txt.", Ckpt),
        new("checkpoint_freq", RunValueKind.Double, 1.0, "Save every N epochs (whole N ≥ 1), or also every ⌈steps·f⌉ steps within an epoch for f < 1.", Ckpt),
        new("save_best", RunValueKind.Bool, false, "Keep only the checkpoint with the lowest validation loss.", Ckpt),
        new("no_resume_from_checkpoint", RunValueKind.Bool, false, "Start from scratch even if --save-path holds checkpoints (default: resume from the latest complete one).", Ckpt, ["--no-resume"]),

        new("logger", RunValueKind.String, "", "Metric backends, comma list: tensorboard, console.", Logging),
        new("log_dir", RunValueKind.String, "./logs", "Directory for TensorBoard runs (<log-dir>/<run-name>).", Logging),
        new("run_name", RunValueKind.String, null, "Run name; placeholders {time}, {utc_time}, {rank}, {local_rank} (default {time}).", Logging),
        new("log_freq", RunValueKind.Int, 1L, "Log training metrics every N steps.", Logging),

        new("verifier_name_or_path", RunValueKind.String, null, "Verifier (target) model: local directory or Hugging Face id (required for eagle3).", Eagle, ["--model"]),
        new("verifier_dtype", RunValueKind.String, null, "dtype of the frozen verifier tensors and online hidden states (default: the compute dtype).", Eagle),
        new("draft_config", RunValueKind.String, null, "Decoder config (file or directory) for the draft layers; hidden_size must match the verifier.", Eagle),
        new("num_layers", RunValueKind.Int, 1L, "Draft decoder layers.", Eagle),
        new("draft_arch", RunValueKind.String, "llama", "Draft layer architecture: llama or qwen3.", Eagle),
        new("draft_hidden_act", RunValueKind.String, "silu", "Draft MLP activation.", Eagle),
        new("target_layer_ids", RunValueKind.IntList, null, "Verifier aux layer ids, excluding the final layer (default [2, N//2, N-3]).", Eagle),
        new("vllm_compat", RunValueKind.String, "current", "current, or classic for older vLLM (all norm flags false, llama layers, 3 aux ids).", Eagle),
        new("norm_before_residual", RunValueKind.Bool, true, "Draft layer: residual taken after the input norm.", Eagle),
        new("norm_before_fc", RunValueKind.Bool, true, "RMSNorm on the aux hidden states before fc.", Eagle),
        new("fc_norm", RunValueKind.Bool, false, "Per-layer norms on the aux hidden states (needs a newer vLLM).", Eagle),
        new("norm_output", RunValueKind.Bool, true, "Final norm on the draft output.", Eagle),
        new("embed_requires_grad", RunValueKind.Bool, false, "Train the embeddings too.", Eagle),
        new("sliding_window", RunValueKind.Int, null, "Sliding-window attention in the draft layers (default: full attention).", Eagle),
        new("draft_vocab_size", RunValueKind.Int, null, "Draft vocabulary size Vd (builds d2t/t2d from token frequencies when no mapping is cached).", Eagle),
        new("d2t_path", RunValueKind.String, null, "Draft→target mapping (.npy, int64 [Vd]); with --t2d-path.", Eagle),
        new("t2d_path", RunValueKind.String, null, "Target→draft mask (.npy, bool [V]); with --d2t-path.", Eagle),
        new("token_freq_path", RunValueKind.String, null, "Token frequencies (default <data-path>/token_freq.pt, then .json).", Eagle),
        new("hidden_states_path", RunValueKind.String, null, "Offline hidden states (default <data-path>/hidden_states).", Eagle),
        new("on_missing", RunValueKind.String, "generate", "Missing hidden states: generate, skip, warn or raise.", Eagle),
        new("on_generate", RunValueKind.String, "delete", "Generated hidden states: delete or cache.", Eagle),
        new("vllm_endpoint", RunValueKind.String, "http://localhost:8000/v1", "vLLM server for online hidden states.", Eagle),
        new("request_timeout", RunValueKind.Int, 120L, "Seconds per vLLM request.", Eagle),
        new("max_retries", RunValueKind.Int, 3L, "Retries per vLLM request.", Eagle),
        new("noise_std", RunValueKind.Double, 0.05, "Uniform noise amplitude on training hidden states.", Eagle),
        new("loss_fn", RunValueKind.String, "kl_div", "kl_div, rkl, jsd, ce, tv, nla, lk_hybrid, or a JSON dict of weights.", Eagle),
        new("ttt_steps", RunValueKind.Int, 3L, "Test-time-training steps (speculative positions trained).", Eagle),
        new("ttt_step_loss_decay", RunValueKind.Double, 1.0, "Loss weight decay per TTT step.", Eagle),

        new("model_config", RunValueKind.String, null, "causal_lm: HF config.json (file or directory) of the model to train from scratch.", Lm),
        new("loss_on", RunValueKind.String, "loss_mask", "causal_lm: next-token loss on loss_mask==1 tokens (loss_mask) or on every token (all).", Lm),
        new("save_dtype", RunValueKind.String, "float32", "causal_lm: dtype of the saved weights (float32 or bfloat16).", Lm),
        new("tokenizer", RunValueKind.String, null, "causal_lm: directory whose tokenizer files are copied into every saved model.", Lm),
    ];

    static readonly Dictionary<string, RunParameter> ByKey = All.ToDictionary(p => p.Key, StringComparer.Ordinal);

    /// <summary>The parameter for a YAML key or flag name (snake or kebab case, with or without dashes); null if unknown.</summary>
    public static RunParameter? Find(string name)
    {
        string key = name.TrimStart('-').Replace('-', '_');
        if (ByKey.TryGetValue(key, out var p)) return p;
        return All.FirstOrDefault(x => x.Aliases?.Any(a => a.TrimStart('-').Replace('-', '_') == key) == true);
    }

    public static RunParameter Get(string key) => ByKey.TryGetValue(key, out var p) ? p : throw new ArgumentException($"unknown run parameter '{key}'");
}
