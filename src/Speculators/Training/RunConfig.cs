using System.Globalization;
using System.Text;
using System.Text.Json;
using Speculators.Util;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Speculators.Training;

/// <summary>
/// The resolved configuration of a training run: every <see cref="RunParameters"/> value with the precedence of
/// speculators (§7.1): command-line flag &gt; <c>--config</c> YAML (keys under a top-level <c>train:</c>) &gt; default.
/// <see cref="ToYaml"/> gives <c>--dump-config</c> (all values) and <c>run.yaml</c> (non-default values only);
/// <see cref="ToOptions"/> the typed <see cref="TrainOptions"/>.
/// </summary>
public sealed class RunConfig
{
    readonly Dictionary<string, object?> _values = new(StringComparer.Ordinal);
    readonly Dictionary<string, string> _sources = new(StringComparer.Ordinal);

    RunConfig() { }

    /// <summary>Keys set by a flag or the YAML file (not defaults).</summary>
    public IReadOnlySet<string> ExplicitKeys => _sources.Keys.ToHashSet(StringComparer.Ordinal);

    /// <summary>Where a key's value came from: <c>cli</c>, the YAML path, or <c>default</c>.</summary>
    public string SourceOf(string key) => _sources.TryGetValue(key, out var s) ? s : "default";

    /// <summary>The resolved value of <paramref name="key"/>.</summary>
    public object? this[string key] => _values.TryGetValue(key, out var v) ? v : RunParameters.Get(key).Default;

    /// <summary>All resolved values in parameter order.</summary>
    public IEnumerable<KeyValuePair<string, object?>> Values => RunParameters.All.Select(p => KeyValuePair.Create(p.Key, this[p.Key]));

    /// <summary>
    /// Resolves <paramref name="cli"/> (values already parsed from flags) over the YAML file <paramref name="yamlPath"/>
    /// (optional) over the defaults.
    /// </summary>
    public static RunConfig Resolve(IReadOnlyDictionary<string, object?> cli, string? yamlPath)
    {
        var c = new RunConfig();
        if (yamlPath != null)
            foreach (var (k, v) in ReadYaml(yamlPath))
            {
                c._values[k] = v;
                c._sources[k] = yamlPath;
            }
        foreach (var (k, v) in cli)
        {
            RunParameters.Get(k);
            c._values[k] = v;
            c._sources[k] = "cli";
        }
        return c;
    }

    /// <summary>
    /// Reads a run YAML: the mapping under <c>train:</c> (or the top-level mapping when there is no <c>train</c> key),
    /// snake_case or kebab-case keys, scalars and integer sequences. Unknown keys and bad values are errors naming the
    /// file and key.
    /// </summary>
    public static Dictionary<string, object?> ReadYaml(string path)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"--config {path}: file not found.");
        var stream = new YamlStream();
        try
        {
            using var reader = new StreamReader(path, Encoding.UTF8);
            stream.Load(reader);
        }
        catch (YamlException e)
        {
            throw new SpeculatorsException($"{path}: not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.InnerException?.Message ?? e.Message}");
        }
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is YamlScalarNode { Value: null or "" }) return result;
        if (stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new SpeculatorsException($"{path}: expected a mapping with a top-level 'train:' key.");
        var section = root;
        string prefix = "";
        if (root.Children.TryGetValue(new YamlScalarNode("train"), out var trainNode))
        {
            if (trainNode is YamlScalarNode { Value: null or "" or "~" or "null" }) return result;
            section = trainNode as YamlMappingNode ?? throw new SpeculatorsException($"{path}: 'train' must be a mapping of options.");
            prefix = "train.";
            foreach (var (k, _) in root.Children)
                if (k is YamlScalarNode { Value: not "train" } other)
                    Log.Warn($"{path}: top-level key '{other.Value}' is ignored (training options go under 'train:').");
        }
        foreach (var (keyNode, valueNode) in section.Children)
        {
            string name = (keyNode as YamlScalarNode)?.Value ?? throw new SpeculatorsException($"{path}: keys must be plain names.");
            string where = $"{path}: {prefix}{name}";
            var p = RunParameters.Find(name)
                ?? throw new SpeculatorsException($"{where}: unknown option{Suggest(name)}.");
            result[p.Key] = valueNode switch
            {
                YamlScalarNode s when IsYamlNull(s) => p.Nullable ? null : throw new SpeculatorsException($"{where}: a value is required (default {p.DefaultText})."),
                YamlScalarNode s => p.Parse(s.Value, where),
                YamlSequenceNode seq when p.Kind == RunValueKind.IntList =>
                    p.ParseList(seq.Children.Select(x => (x as YamlScalarNode)?.Value ?? throw new SpeculatorsException($"{where}: expected a list of integers.")), where),
                _ => throw new SpeculatorsException($"{where}: expected a {(p.Kind == RunValueKind.IntList ? "list of integers" : "single value")}."),
            };
        }
        return result;
    }

    static bool IsYamlNull(YamlScalarNode s) =>
        s.Style == ScalarStyle.Plain && (s.Value is null or "" or "~" or "null" or "Null" or "NULL");

    static string Suggest(string name)
    {
        string key = name.Replace('-', '_');
        var near = RunParameters.All.Select(p => p.Key).OrderBy(k => Levenshtein(k, key)).First();
        return Levenshtein(near, key) <= 3 ? $" (did you mean '{near}'?)" : "";
    }

    static int Levenshtein(string a, string b)
    {
        var d = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++) d[j] = j;
        for (int i = 1; i <= a.Length; i++)
        {
            int prev = d[0];
            d[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int tmp = d[j];
                d[j] = Math.Min(Math.Min(d[j] + 1, d[j - 1] + 1), prev + (a[i - 1] == b[j - 1] ? 0 : 1));
                prev = tmp;
            }
        }
        return d[b.Length];
    }

    /// <summary>
    /// YAML under a top-level <c>train:</c> key (readable by <see cref="ReadYaml"/> and by speculators' <c>--config</c>):
    /// every value, or only those that differ from the defaults (<c>run.yaml</c>).
    /// </summary>
    public string ToYaml(bool nonDefaultOnly)
    {
        var sb = new StringBuilder();
        sb.Append("train:");
        bool any = false;
        foreach (var p in RunParameters.All)
        {
            var v = this[p.Key];
            if (nonDefaultOnly && RunParameter.ValueEquals(v, p.Default)) continue;
            sb.Append("\n  ").Append(p.Key).Append(": ").Append(YamlValue(v));
            any = true;
        }
        if (!any) sb.Append(" {}");
        sb.Append('\n');
        return sb.ToString();
    }

    static string YamlValue(object? v) => v switch
    {
        string s => JsonSerializer.Serialize(s), // a double-quoted YAML scalar
        _ => RunParameter.Format(v),
    };

    /// <summary>Every resolved value as hyper-parameters for the metric sinks (lists as text).</summary>
    public Dictionary<string, object?> Hyperparameters() =>
        Values.ToDictionary(kv => kv.Key, kv => kv.Value is long[] l ? RunParameter.Format(l) : kv.Value, StringComparer.Ordinal);

    string Str(string key) => (string?)this[key] ?? throw new SpeculatorsException($"{Flag(key)}: a value is required.");
    string? OptStr(string key) => this[key] is string s && s.Length > 0 ? s : null;
    bool Bool(string key) => (bool)this[key]!;
    double Dbl(string key) => Convert.ToDouble(this[key]!, CultureInfo.InvariantCulture);
    double? OptDbl(string key) => this[key] is null ? null : Dbl(key);
    long Lng(string key) => Convert.ToInt64(this[key]!, CultureInfo.InvariantCulture);
    long? OptLng(string key) => this[key] is null ? null : Lng(key);
    static string Flag(string key) => RunParameters.Get(key).Flag;

    int Int(string key, long min = int.MinValue)
    {
        long v = Lng(key);
        if (v < min || v > int.MaxValue) throw new SpeculatorsException($"{Flag(key)}: expected an integer in [{min}, {int.MaxValue}], got {v}.");
        return (int)v;
    }

    int? OptInt(string key, long min = int.MinValue) => this[key] is null ? null : Int(key, min);

    /// <summary>The typed options (checked by <see cref="TrainOptions.Validate"/> as well).</summary>
    public TrainOptions ToOptions()
    {
        string dtype = Str("hidden_states_dtype").Trim();
        var o = new TrainOptions
        {
            SpeculatorType = Str("speculator_type").Trim(),
            DryRun = Bool("dry_run"),
            Seed = Lng("seed"),
            Device = Str("device"),
            ComputeDtype = dtype.Equals("auto", StringComparison.OrdinalIgnoreCase) ? null : dtype,
            NumThreads = OptInt("num_threads"),
            FromPretrained = OptStr("from_pretrained"),
            DataPath = Str("data_path"),
            TotalSeqLen = Int("total_seq_len"),
            TrainDataRatio = Dbl("train_data_ratio"),
            PrefetchFactor = Int("prefetch_factor"),
            Optimizer = new OptimizerOptions
            {
                Kind = OptimizerOptions.ParseKind(Str("optimizer")),
                Lr = Dbl("lr"),
                WeightDecay = Dbl("weight_decay"),
                MuonLr = OptDbl("muon_lr"),
                MuonMomentum = Dbl("muon_momentum"),
                MuonWeightDecay = Dbl("muon_weight_decay"),
                MuonNsSteps = Int("muon_ns_steps", 1),
                MuonAdjustLr = OptimizerOptions.ParseAdjustment(Str("muon_adjust_lr_fn")),
            },
            MaxGradNorm = Dbl("max_grad_norm"),
            SchedulerType = LrSchedule.ParseKind(Str("scheduler_type")),
            SchedulerWarmupSteps = OptLng("scheduler_warmup_steps"),
            SchedulerWarmupRatio = OptDbl("scheduler_warmup_ratio"),
            SchedulerTotalSteps = OptLng("scheduler_total_steps"),
            SchedulerNumCosineCycles = Dbl("scheduler_num_cosine_cycles"),
            Epochs = Int("epochs"),
            MaxSteps = OptLng("max_steps"),
            SavePath = Str("save_path"),
            CheckpointFreq = Dbl("checkpoint_freq"),
            SaveBest = Bool("save_best"),
            Resume = !Bool("no_resume_from_checkpoint"),
            Logger = (string?)this["logger"] ?? "",
            LogDir = Str("log_dir"),
            RunName = OptStr("run_name"),
            LogFreq = Int("log_freq"),
            Eagle3 = new Eagle3TrainingOptions
            {
                VerifierNameOrPath = OptStr("verifier_name_or_path"),
                VerifierDtype = OptStr("verifier_dtype"),
                DraftConfig = OptStr("draft_config"),
                NumLayers = Int("num_layers"),
                DraftArch = Str("draft_arch").Trim(),
                DraftHiddenAct = Str("draft_hidden_act").Trim(),
                TargetLayerIds = this["target_layer_ids"] is long[] ids ? ids.Select(x => checked((int)x)).ToArray() : null,
                VllmCompat = Str("vllm_compat"),
                NormBeforeResidual = Bool("norm_before_residual"),
                NormBeforeFc = Bool("norm_before_fc"),
                FcNorm = Bool("fc_norm"),
                NormOutput = Bool("norm_output"),
                EmbedRequiresGrad = Bool("embed_requires_grad"),
                SlidingWindow = OptInt("sliding_window"),
                DraftVocabSize = OptInt("draft_vocab_size"),
                D2TPath = OptStr("d2t_path"),
                T2DPath = OptStr("t2d_path"),
                TokenFreqPath = OptStr("token_freq_path"),
                HiddenStatesPath = OptStr("hidden_states_path"),
                OnMissing = Str("on_missing").Trim(),
                OnGenerate = Str("on_generate").Trim(),
                VllmEndpoint = Str("vllm_endpoint"),
                RequestTimeout = Int("request_timeout", 1),
                MaxRetries = Int("max_retries", 0),
                NoiseStd = Dbl("noise_std"),
                LossFn = Str("loss_fn"),
                TttSteps = Int("ttt_steps"),
                TttStepLossDecay = Dbl("ttt_step_loss_decay"),
            },
            CausalLm = new CausalLmTrainingOptions
            {
                ModelConfig = OptStr("model_config"),
                LossOn = Str("loss_on").Trim(),
                SaveDtype = Str("save_dtype").Trim(),
                Tokenizer = OptStr("tokenizer"),
            },
        };
        o.Validate();
        return o;
    }
}
