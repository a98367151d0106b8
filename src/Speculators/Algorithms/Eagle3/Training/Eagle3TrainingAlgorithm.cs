using Speculators.Data;
using Speculators.Distributed;
using Speculators.Formats;
using Speculators.HiddenStates;
using Speculators.Modeling;
using Speculators.Training;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// Eagle-3 draft distillation behind <see cref="ITrainingAlgorithm"/>: the draft (fp32 master weights of fc, norms and
/// decoder layers; frozen verifier embedding, lm_head and training targets) learns the verifier's next-token
/// distributions over the draft vocabulary through the TTT loop (<see cref="Eagle3TttForward"/>). Rows come from the
/// prepared dataset plus hidden states through an <see cref="IHiddenStateProvider"/> (file store, online generation,
/// or both, with <c>--on-missing</c>/<c>--on-generate</c>); rows without usable states are skipped and counted.
/// Checkpoints are the speculators format vLLM serves, validated on every save.
/// </summary>
public sealed class Eagle3TrainingAlgorithm : ITrainingAlgorithm
{
    readonly Eagle3DraftModel _draft;
    readonly PreparedDataset _data;
    readonly IHiddenStateProvider _provider;
    readonly bool _ownsProvider;
    readonly Eagle3Collator _collator;
    readonly Eagle3TttOptions _ttt;
    readonly List<NamedParameter> _trainable;
    readonly Dictionary<string, object?> _hyper;
    readonly string _verifierDirectory;
    readonly ScalarType _saveDtype;
    readonly ScalarType _hiddenDtype;
    readonly double _flopsPerToken;
    bool _disposed;

    /// <summary>
    /// Assembles the algorithm from parts (tests and tools; <see cref="Create"/> builds them from settings). Takes
    /// ownership of <paramref name="draft"/>, <paramref name="data"/> and, when <paramref name="ownsProvider"/>, the provider.
    /// </summary>
    public Eagle3TrainingAlgorithm(Eagle3DraftModel draft, PreparedDataset data, IHiddenStateProvider provider, bool ownsProvider,
        Eagle3TttOptions ttt, Eagle3Collator collator, string verifierDirectory, ScalarType saveDtype = ScalarType.BFloat16)
    {
        ttt.Validate();
        if (collator.TttSteps != ttt.Steps)
            throw new ArgumentException($"the collator prepares masks for {collator.TttSteps} TTT steps but the forward runs {ttt.Steps}.", nameof(collator));
        var problems = Eagle3TrainingChecks.ProviderProblems(draft, provider.Spec);
        if (problems.Count > 0)
            throw new SpeculatorsException("the hidden states do not fit the draft:\n  " + string.Join("\n  ", problems));
        _draft = draft;
        _data = data;
        _provider = provider;
        _ownsProvider = ownsProvider;
        _ttt = ttt;
        _collator = collator;
        _verifierDirectory = verifierDirectory;
        _saveDtype = saveDtype;
        _hiddenDtype = collator.HiddenDtype;
        _draft.ApplyFreezing();
        _trainable = _draft.TrainableParameters().Select(p => new NamedParameter(p.Name, p.Param)).ToList();
        var dc = _draft.Decoder;
        var windows = Enumerable.Range(0, dc.NumLayers).Select(dc.SlidingWindowFor).ToArray();
        double meanContext = MeanCausalContext(data.SeqLens.Select(t => Math.Max(t - 1, 0)), windows.Any(w => w == null) ? null : windows.Max());
        _flopsPerToken = FlopsPerToken(dc, _draft.NumAuxLayers, _draft.AuxHiddenSize, _draft.DraftVocabSize, ttt.Steps, meanContext);
        var (trainable, frozen, _) = _draft.ParameterCounts();
        var cfg = _draft.Config;
        _hyper = new Dictionary<string, object?>
        {
            ["algorithm"] = "eagle3",
            ["verifier"] = cfg.SpeculatorsConfig.Verifier.NameOrPath,
            ["draft_arch"] = cfg.LayerStyle == Eagle3LayerStyle.Qwen3 ? "qwen3" : "llama",
            ["num_layers"] = dc.NumLayers,
            ["hidden_size"] = dc.HiddenSize,
            ["draft_vocab_size"] = _draft.DraftVocabSize,
            ["vocab_size"] = _draft.TargetVocabSize,
            ["aux_layer_ids"] = cfg.AuxLayerIds is { } ids ? string.Join(",", ids) : null,
            ["norm_before_residual"] = cfg.NormBeforeResidual,
            ["norm_before_fc"] = cfg.NormBeforeFc,
            ["fc_norm"] = cfg.FcNorm,
            ["norm_output"] = cfg.NormOutput,
            ["embed_requires_grad"] = cfg.EmbedRequiresGrad,
            ["sliding_window"] = windows.FirstOrDefault(w => w != null),
            ["ttt_steps"] = ttt.Steps,
            ["ttt_step_loss_decay"] = ttt.StepLossDecay,
            ["teacher_forcing"] = ttt.TeacherForcing,
            ["loss_fn"] = ttt.Loss.ToString(),
            ["noise_std"] = collator.NoiseStd,
            ["total_seq_len"] = collator.TotalLength,
            ["hidden_states_dtype"] = Precision.Name(_hiddenDtype),
            ["trainable_parameters"] = trainable,
            ["frozen_parameters"] = frozen,
        };
    }

    /// <summary>
    /// Builds the draft, opens the data and the hidden-state source, and checks that they fit one another before any
    /// training step: verifier vs draft hidden size and vocabulary, aux layer ids within the verifier, vocabulary
    /// mapping sizes, hidden-state store layout; every mismatch is listed with both values.
    /// </summary>
    /// <param name="settings">resolved settings</param>
    /// <param name="device">training device</param>
    /// <param name="computeDtype">the trainer's autocast dtype (the packed hidden states use it too)</param>
    /// <param name="group">process group (rank 0 logs the summary)</param>
    public static Eagle3TrainingAlgorithm Create(Eagle3TrainingSettings settings, Device device, ScalarType computeDtype, IProcessGroup group)
    {
        settings.Validate();
        var ttt = settings.TttOptions();
        string verifierDir = settings.VerifierDirectory;
        var verifierConfig = HfConfig.Load(verifierDir).ToDecoderConfig();
        var identity = VerifierIdentity.FromDirectory(verifierDir, settings.VerifierNameOrPath ?? verifierDir);
        var disposables = new List<IDisposable>();
        try
        {
            var data = PreparedDataset.Open(settings.DataPath);
            disposables.Add(data);
            Eagle3DraftModel draft;
            using (var verifier = Eagle3VerifierWeights.FromDirectory(verifierDir))
            {
                draft = Eagle3DraftFactory.Build(settings, verifier, device);
                disposables.Add(draft);
            }
            var problems = Eagle3TrainingChecks.VerifierProblems(draft, verifierConfig, verifierDir);
            if (problems.Count > 0)
                throw new SpeculatorsException("the verifier and the draft do not fit:\n  " + string.Join("\n  ", problems));

            var auxIds = draft.Config.AuxLayerIds ?? AuxLayerIds.Default(verifierConfig.NumLayers).ToList();
            var genDtype = settings.VerifierDtype ?? computeDtype;
            var spec = HiddenStateStore.ResolveSpec(settings.StoreDirectory, identity, auxIds, new NewStoreOptions { DType = genDtype });
            var specProblems = Eagle3TrainingChecks.ProviderProblems(draft, spec);
            if (specProblems.Count > 0)
                throw new SpeculatorsException($"the hidden states at {settings.StoreDirectory} do not fit the draft:\n  " + string.Join("\n  ", specProblems));
            var onMissing = settings.OnMissing;
            long missing = CountMissingFiles(settings, data, group);
            if (onMissing == OnMissing.Generate && missing == 0)
            {
                // Every row has a file: the verifier would never run, so it is not loaded (files that turn out invalid
                // are skipped, never regenerated, as with any --on-missing policy).
                onMissing = OnMissing.Raise;
                if (group.Rank == 0) Log.Info($"eagle3: every row has a hidden-state file in {settings.StoreDirectory}; the verifier is not loaded for generation.");
            }

            HiddenStateGenerator? generator = null;
            if (onMissing == OnMissing.Generate)
            {
                var verifierModel = CausalLM.LoadFromDirectory(verifierDir, spec.DType, device);
                generator = new HiddenStateGenerator(verifierModel, spec, settings.GenerateBatchTokens, ownsModel: true);
            }
            var provider = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions
            {
                StoreDirectory = onMissing == OnMissing.Generate && !Directory.Exists(settings.StoreDirectory) && settings.OnGenerate == OnGenerate.Delete
                    ? null : settings.StoreDirectory,
                OnMissing = onMissing,
                OnGenerate = settings.OnGenerate,
                Verifier = identity,
                MaxConcurrentReads = settings.MaxConcurrentReads,
            }, generator, ownsGenerator: true);
            disposables.Add(provider);

            var dc = draft.Decoder;
            var windows = Enumerable.Range(0, dc.NumLayers).Select(dc.SlidingWindowFor).Distinct().ToArray();
            var collator = new Eagle3Collator(settings.TotalSeqLen, computeDtype, device, windows, ttt.Steps, settings.NoiseStd, settings.AttentionBlockSize);
            var algorithm = new Eagle3TrainingAlgorithm(draft, data, provider, ownsProvider: true, ttt, collator, verifierDir, settings.SaveDtype);
            if (group.Rank == 0)
                Log.Info($"eagle3: {algorithm.Describe()}; hidden states {spec} from {(settings.OnMissing == OnMissing.Generate ? "store + online generation" : settings.StoreDirectory)}");
            return algorithm;
        }
        catch
        {
            for (int i = disposables.Count - 1; i >= 0; i--) disposables[i].Dispose();
            throw;
        }
    }

    /// <summary>
    /// Rows without a hidden-state file. <c>--on-missing raise</c>: there must be none (the first few paths are named);
    /// <c>skip</c>/<c>warn</c>: their number is logged; <c>generate</c>: they are generated when first needed.
    /// </summary>
    static long CountMissingFiles(Eagle3TrainingSettings s, PreparedDataset data, IProcessGroup group)
    {
        string dir = s.StoreDirectory;
        string policy = s.OnMissing.ToString().ToLowerInvariant();
        if (!Directory.Exists(dir))
        {
            if (s.OnMissing == OnMissing.Generate) return data.Count;
            throw new SpeculatorsException(
                $"--hidden-states-path {dir} does not exist and --on-missing is {policy}; run `speculators datagen` first or use --on-missing generate.");
        }
        var examples = new List<string>();
        long count = 0;
        for (long i = 0; i < data.Count; i++)
        {
            string path = HiddenStateFile.PathFor(dir, i);
            if (File.Exists(path)) continue;
            count++;
            if (examples.Count < 5) examples.Add(path);
        }
        if (count == 0) return 0;
        if (s.OnMissing == OnMissing.Raise)
            throw new SpeculatorsException(
                $"{count} of {data.Count} rows have no hidden-state file (--on-missing raise), e.g. {string.Join(", ", examples)}.");
        if (group.Rank == 0)
            Log.Warn(s.OnMissing == OnMissing.Generate
                ? $"{count} of {data.Count} rows have no hidden-state file in {dir}; the verifier generates them when needed (--on-generate {s.OnGenerate.ToString().ToLowerInvariant()})."
                : $"{count} of {data.Count} rows have no hidden-state file in {dir}; they are skipped (--on-missing {policy}).");
        return count;
    }

    public string Name => "eagle3";

    /// <summary>The draft model.</summary>
    public Eagle3DraftModel Draft => _draft;
    nn.Module ITrainingAlgorithm.Model => _draft;
    public IReadOnlyList<NamedParameter> TrainableParameters => _trainable;
    public IReadOnlyList<int> RowLengths => _data.SeqLens;
    public double TrainingFlopsPerToken => _flopsPerToken;
    public IReadOnlyDictionary<string, object?> Hyperparameters => _hyper;
    public IHiddenStateProvider Provider => _provider;
    public Eagle3Collator Collator => _collator;
    public Eagle3TttOptions TttOptions => _ttt;

    /// <summary>One line for logs: draft shape, trainable parameters, TTT, loss.</summary>
    public string Describe()
    {
        var dc = _draft.Decoder;
        var (trainable, frozen, _) = _draft.ParameterCounts();
        return $"{dc.NumLayers} {(_draft.Config.LayerStyle == Eagle3LayerStyle.Qwen3 ? "qwen3" : "llama")} layer(s), hidden {dc.HiddenSize}, " +
               $"draft vocab {_draft.DraftVocabSize}/{_draft.TargetVocabSize}, aux ids [{string.Join(", ", _draft.Config.AuxLayerIds ?? [])}], " +
               $"{trainable:N0} trained / {frozen:N0} frozen parameters, {_ttt.Steps} TTT steps ({(_ttt.TeacherForcing ? "teacher-forced" : "draft tokens")}), loss {_ttt.Loss}";
    }

    public async ValueTask<ITrainingBatch> LoadBatchAsync(IReadOnlyList<int> rows, BatchContext context, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var samples = rows.Count == 0 ? [] : await _provider.GetAsync(rows, cancellationToken).ConfigureAwait(false);
        try
        {
            var loaded = new Eagle3RowData?[samples.Length];
            for (int i = 0; i < samples.Length; i++)
            {
                var s = samples[i];
                if (s is null) continue;
                var mask = new long[_data.SeqLens[s.Row]];
                _data.CopyLossMask(s.Row, mask);
                loaded[i] = new Eagle3RowData(s, mask);
            }
            if (loaded.All(r => r is null))
            {
                var spec = _provider.Spec;
                return _collator.CollateEmpty((long)(spec.LayerCount - 1) * spec.HiddenSize, spec.HiddenSize, rows.Count);
            }
            return _collator.Collate(loaded, context.Training, context.Epoch, context.Seed);
        }
        finally
        {
            foreach (var s in samples) s?.Dispose();
        }
    }

    public StepOutput Forward(ITrainingBatch batch, bool training)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (batch is not Eagle3Batch b) throw new ArgumentException($"expected an {nameof(Eagle3Batch)}, got {batch.GetType().Name}.", nameof(batch));
        using var scope = NewDisposeScope();
        var result = Eagle3TttForward.Run(_draft, b, _ttt);
        foreach (var t in result.DraftTokens) t.Dispose();
        var metrics = result.Metrics.ToDictionary(kv => kv.Key, kv => kv.Value.MoveToOuterDisposeScope());
        return new StepOutput(result.Loss.MoveToOuterDisposeScope(), metrics);
    }

    public void AddDerivedValidationMetrics(IDictionary<string, double> normalizedValidationMetrics)
    {
        var view = new Dictionary<string, double>(normalizedValidationMetrics);
        if (TttMetrics.EstimatedAcceptanceLength(view) is double eal)
            normalizedValidationMetrics[TttMetrics.EstimatedAcceptanceLengthKey] = eal;
    }

    /// <summary>
    /// Writes the speculators-format checkpoint vLLM serves (config.json + model.safetensors in the save dtype,
    /// d2t/t2d when Vd ≠ V) and validates it, also against the verifier.
    /// </summary>
    public void SaveModel(string directory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Eagle3Checkpoint.Save(_draft, directory, _saveDtype);
        SpeculatorsCheckpoint.Validate(directory, _verifierDirectory).ThrowIfInvalid();
    }

    /// <summary>
    /// Loads an Eagle-3 checkpoint (ours, Python speculators', <c>midlayer.</c> names) into this draft. Its tensors must
    /// have this draft's names and shapes and its config the same flags; a missing embedding or lm_head is taken from
    /// the verifier.
    /// </summary>
    public void LoadModel(string directory)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        using var verifier = Eagle3VerifierWeights.FromDirectory(_verifierDirectory);
        using var loaded = Eagle3Checkpoint.Load(directory, verifier, ScalarType.Float32, torch.CPU);
        var problems = Eagle3TrainingChecks.ConfigDifferences(loaded, _draft);
        if (problems.Count > 0)
            throw new SpeculatorsException($"{directory}: the checkpoint does not match the draft being trained:\n  " + string.Join("\n  ", problems));
        var source = loaded.StateDictForSaving().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        using var noGrad = torch.no_grad();
        foreach (var (name, target) in _draft.StateDictForSaving())
            target.copy_(source[name]);
    }

    /// <summary>
    /// Training FLOPs per packed token (forward + backward): <c>fc</c> once (6·A·T·H), per TTT step the decoder layers'
    /// matmuls (6 × their weights), attention (12·heads·head_dim·context per layer, context = mean causal context +
    /// the step's diagonal keys) and the frozen lm_head (4·Vd·H: forward and input gradient), plus the verifier targets
    /// (2·Vd·T, forward only).
    /// </summary>
    public static double FlopsPerToken(DecoderConfig dc, int numAux, int auxHidden, int draftVocab, int steps, double meanContext)
    {
        double h = dc.HiddenSize, hd = dc.HeadDim, nh = dc.NumHeads, nkv = dc.NumKvHeads;
        double layerWeights = 0;
        for (int i = 0; i < dc.NumLayers; i++)
        {
            double inF = i == 0 ? 2 * h : h;
            layerWeights += inF * (nh + 2 * nkv) * hd + nh * hd * h + 3 * h * dc.IntermediateSize;
        }
        double total = 6.0 * numAux * auxHidden * h + 2.0 * draftVocab * auxHidden;
        for (int k = 0; k < steps; k++)
            total += 6.0 * layerWeights + 12.0 * dc.NumLayers * nh * hd * (meanContext + k) + 4.0 * draftVocab * h;
        return total;
    }

    /// <summary>Mean number of keys a query sees in document-causal attention (optionally windowed), over all tokens of documents of the given lengths.</summary>
    public static double MeanCausalContext(IEnumerable<int> documentLengths, int? window)
    {
        double keys = 0, tokens = 0;
        foreach (var n in documentLengths)
        {
            if (n <= 0) continue;
            tokens += n;
            if (window is int w && n > w) keys += (double)w * (w + 1) / 2 + (double)(n - w) * w;
            else keys += (double)n * (n + 1) / 2;
        }
        return tokens == 0 ? 0 : keys / tokens;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsProvider) _provider.Dispose();
        _draft.Dispose();
        _data.Dispose();
    }
}
