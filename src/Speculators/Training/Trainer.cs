using System.Diagnostics;
using System.Globalization;
using Speculators.Data;
using Speculators.Distributed;
using Speculators.Logging;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// The generic training loop (speculators.md §7.3) around one <see cref="ITrainingAlgorithm"/>: train/val split by
/// index, multipack batches prefetched on a background task, forward in the <see cref="Autocast"/> region,
/// backward, fp32 gradient averaging over the process group, global-norm clipping, the optimizers and their
/// schedules, flat <c>train/…</c>, <c>profile/…</c> and <c>val/…_epoch</c> metrics, validation every epoch,
/// checkpoints with the atomic directory protocol (<see cref="CheckpointStore"/>), automatic resume from the
/// latest usable checkpoint (mid-epoch too), best tracking, <c>--max-steps</c>, a stop request (SIGINT/SIGTERM)
/// turned into a normal resumable checkpoint, and a stop with the step number on a non-finite loss.
/// <para>Every collective goes through <see cref="IProcessGroup"/>: gradient all-reduce, the non-finite check,
/// metric reduction and barriers around saves; only rank 0 writes files and logs.</para>
/// </summary>
public sealed partial class Trainer
{
    /// <summary>Speculators' <c>MIN_STEP_PCT</c>: no sub-epoch save when fewer than this fraction of an interval remains.</summary>
    const double MinStepFraction = 0.25;

    /// <summary>The multipack sampler's seed (speculators passes 0 whatever <c>--seed</c> is, so the shuffle matches it).</summary>
    public const long SamplerSeed = 0;

    readonly ITrainingAlgorithm _algorithm;
    readonly TrainingContext _context;
    readonly TrainOptions _options;
    readonly IProcessGroup _group;
    readonly IMetricSink _sink;
    readonly TrainerRunInfo _info;
    readonly CheckpointStore _store;
    readonly bool _main;

    IReadOnlyList<Optimizer> _optimizers = [];
    List<LrSchedule> _schedules = [];
    MultipackSampler _trainSampler = null!;
    MultipackSampler? _valSampler;
    int _trainRows, _valRows, _stepsPerEpoch;
    long _globalStep;
    double? _bestValLoss;
    string? _lastCheckpoint;
    long _lastSavedGlobalStep = -1;
    int _lastSavedEpoch = -1;
    long _skippedRows;
    readonly List<(long, double)> _losses = new();
    readonly List<(int, IReadOnlyDictionary<string, double>)> _validation = new();

    /// <param name="algorithm">the algorithm (the trainer does not dispose it)</param>
    /// <param name="context">options, device, compute dtype and process group</param>
    /// <param name="sink">metric sink (rank 0; other ranks should pass <see cref="NullSink"/>); null: none</param>
    /// <param name="info">provenance and hyper-parameters to record</param>
    public Trainer(ITrainingAlgorithm algorithm, TrainingContext context, IMetricSink? sink = null, TrainerRunInfo? info = null)
    {
        _algorithm = algorithm;
        _context = context;
        _options = context.Options;
        _group = context.Group;
        _sink = sink ?? NullSink.Instance;
        _info = info ?? new TrainerRunInfo();
        _store = new CheckpointStore(_options.SavePath);
        _main = _group.Rank == 0;
    }

    /// <summary>Called after every optimizer step (after logging, before any checkpoint of that step).</summary>
    public Action<TrainerStepInfo>? AfterStep { get; set; }

    /// <summary>The checkpoint root.</summary>
    public CheckpointStore Store => _store;

    /// <summary>
    /// Runs training to the end (or <c>--max-steps</c>, or until <paramref name="stop"/> is cancelled, which writes a
    /// resumable checkpoint). A non-finite loss throws <see cref="TrainingDivergedException"/>; the sink is finished with
    /// the outcome either way.
    /// </summary>
    public TrainResult Run(CancellationToken stop = default)
    {
        try
        {
            var result = RunCore(stop);
            _sink.Finish(result.Reason == TrainStopReason.Interrupted ? RunOutcome.Interrupted : RunOutcome.Success);
            return result;
        }
        catch
        {
            try { _sink.Finish(RunOutcome.Failure); } catch (Exception) { }
            throw;
        }
    }

    TrainResult RunCore(CancellationToken stop)
    {
        _options.Validate();
        var computeDtype = _context.ComputeDtype;
        if (_main) WriteProvenance();

        SplitAndBuildSamplers();
        BuildOptimizers();
        if (_group.WorldSize > 1) BroadcastInitialWeights();

        int startEpoch = 0, startSkip = 0;
        string? resumedFrom = null;
        if (_options.DryRun)
        {
            string? dir = null;
            if (_main)
            {
                dir = _store.Save(CheckpointStore.DryRunDirectory, d => _algorithm.SaveModel(d));
                Info($"dry run: model built, initialized and saved to {dir}");
            }
            _group.Barrier();
            return Result(TrainStopReason.DryRun, dir ?? _store.Root, null);
        }

        if (_options.Resume)
        {
            if (_main)
                foreach (var line in _store.Recover()) Warn($"{_store.Root}: {line}");
            _group.Barrier();
            var resumed = ResumeFromLatest();
            if (resumed is { } r)
            {
                resumedFrom = r.Directory;
                if (r.State.LocalStep > 0)
                {
                    startEpoch = r.State.Epoch;
                    startSkip = r.State.LocalStep;
                }
                else
                {
                    startEpoch = r.State.Epoch + 1;
                }
                Info($"resuming from {r.Directory}: epoch {startEpoch}, step {startSkip} of the epoch, global step {_globalStep}" +
                         (_bestValLoss is double b ? string.Create(CultureInfo.InvariantCulture, $", best val loss {b:G6}") : ""));
            }
        }
        else if (_main && _store.Epochs().Count > 0)
        {
            Warn($"--no-resume: starting from scratch; existing checkpoints in {_store.Root} ({string.Join(", ", _store.Epochs().Order())}) will be " +
                     "overwritten as this run reaches them, and a later resume picks the newest epoch directory: use a fresh --save-path to keep runs apart.");
        }

        if (_options.MaxSteps is long maxAtStart && _globalStep >= maxAtStart)
        {
            Info($"--max-steps {maxAtStart} already reached (global step {_globalStep}); nothing to do.");
            return Result(TrainStopReason.MaxSteps, _lastCheckpoint, resumedFrom);
        }
        if (startEpoch >= _options.Epochs)
        {
            Info($"all {_options.Epochs} epochs are already trained (global step {_globalStep}); nothing to do.");
            return Result(TrainStopReason.Completed, _lastCheckpoint, resumedFrom);
        }

        if (_main)
        {
            var hp = new Dictionary<string, object?>(StringComparer.Ordinal);
            if (_info.Hyperparameters != null) foreach (var (k, v) in _info.Hyperparameters) hp[k] = v;
            foreach (var (k, v) in _algorithm.Hyperparameters) hp[$"algorithm/{k}"] = v;
            hp["compute_dtype"] = Precision.Name(computeDtype);
            hp["world_size"] = _group.WorldSize;
            _sink.LogHyperparameters(hp);
        }

        long plannedTotal = (long)_options.Epochs * _stepsPerEpoch;
        if (_options.MaxSteps is long ms) plannedTotal = Math.Min(plannedTotal, ms);
        using var progress = _main ? new Progress("train", Math.Max(0, plannedTotal - _globalStep), "steps") : null;

        TrainStopReason? stopReason = null;
        for (int epoch = startEpoch; epoch < _options.Epochs && stopReason == null; epoch++)
        {
            int skip = epoch == startEpoch ? startSkip : 0;
            var (localStep, steps, reason) = TrainEpoch(epoch, skip, stop, progress);
            stopReason = reason;
            bool epochComplete = localStep >= steps;

            if (!epochComplete)
            {
                // Stopped inside the epoch (interrupt or --max-steps): a mid-epoch checkpoint resumes exactly here.
                SaveCheckpoint(epoch, localStep, reason == TrainStopReason.Interrupted ? "interrupted" : "max_steps");
                if (reason == TrainStopReason.Interrupted) break;
            }
            else
            {
                if (reason == TrainStopReason.Interrupted)
                {
                    // Stopped right after the epoch's last step: the next run starts the next epoch (validation of this one is skipped).
                    SaveCheckpoint(epoch, 0, "interrupted");
                    break;
                }
                bool last = epoch == _options.Epochs - 1 || reason == TrainStopReason.MaxSteps;
                if (!_options.SaveBest && (EpochSaveDue(epoch) || last))
                    SaveCheckpoint(epoch, 0, "epoch_end");
            }

            var val = Validate(epoch, stop);
            if (val == null && stop.IsCancellationRequested)
            {
                EnsureSavedAtCurrentStep(epoch, epochComplete ? 0 : localStep);
                stopReason = TrainStopReason.Interrupted;
                break;
            }
            if (val != null) UpdateBest(epoch, epochComplete ? 0 : localStep, val);
            _sink.Flush();
            if (stopReason == null && stop.IsCancellationRequested)
            {
                EnsureSavedAtCurrentStep(epoch, epochComplete ? 0 : localStep);
                stopReason = TrainStopReason.Interrupted;
            }
        }

        var final = stopReason ?? TrainStopReason.Completed;
        if (final == TrainStopReason.Interrupted)
            Warn($"stopped on request at global step {_globalStep}; resumable checkpoint: {_lastCheckpoint}. Run the same command again to continue.");
        return Result(final, _lastCheckpoint, resumedFrom);
    }

    TrainResult Result(TrainStopReason reason, string? last, string? resumedFrom)
    {
        int? best = _store.BestEpoch();
        return new TrainResult
        {
            Reason = reason,
            GlobalStep = _globalStep,
            LastCheckpoint = last,
            BestCheckpoint = best is int b ? _store.PathOf(b) : null,
            BestValLoss = _bestValLoss,
            ResumedFrom = resumedFrom,
            TrainLosses = _losses.ToList(),
            Validation = _validation.ToList(),
            SkippedRows = _skippedRows,
        };
    }

    void WriteProvenance()
    {
        Directory.CreateDirectory(_store.Root);
        if (_info.RunYaml != null) AtomicFile.WriteAllText(Path.Combine(_store.Root, CheckpointStore.RunYamlFile), _info.RunYaml);
        if (_info.CommandLine != null) AtomicFile.WriteAllText(Path.Combine(_store.Root, CheckpointStore.TrainCommandFile), _info.CommandLine.TrimEnd('\n') + "\n");
    }

    void SplitAndBuildSamplers()
    {
        var lengths = _algorithm.RowLengths;
        int n = lengths.Count;
        if (n == 0) throw new SpeculatorsException($"--data-path {_options.DataPath}: the dataset has no rows.");
        _trainRows = (int)Math.Floor(n * _options.TrainDataRatio);
        if (_trainRows < _group.WorldSize)
            throw new SpeculatorsException(
                $"--train-data-ratio {_options.TrainDataRatio.ToString(CultureInfo.InvariantCulture)} leaves {_trainRows} training rows of {n}; at least {_group.WorldSize} are needed.");
        _valRows = n - _trainRows;
        int budget = _options.TotalSeqLen;
        _trainSampler = new MultipackSampler(lengths.Take(_trainRows).ToArray(), budget, _group.WorldSize, _group.Rank, SamplerSeed);
        _valSampler = _valRows >= _group.WorldSize
            ? new MultipackSampler(lengths.Skip(_trainRows).ToArray(), budget, _group.WorldSize, _group.Rank, SamplerSeed)
            : null;
        if (_valSampler == null && _valRows > 0)
            Warn($"{_valRows} validation row(s) are fewer than the {_group.WorldSize} ranks; validation is skipped.");
        if (_valRows == 0) Warn("--train-data-ratio 1: no validation rows; validation and checkpoint_best are skipped.");
        _trainSampler.SetEpoch(0);
        var plan = _trainSampler.Plan(0);
        _stepsPerEpoch = plan.StepCount;
        if (_stepsPerEpoch == 0)
            throw new SpeculatorsException($"{_trainRows} training rows give no packed step with --total-seq-len {budget} and {_group.WorldSize} rank(s).");
        if (_trainSampler.LongSampleCount > 0)
            Warn($"{_trainSampler.LongSampleCount} training row(s) are longer than --total-seq-len {budget} and are truncated.");
        Info(string.Create(CultureInfo.InvariantCulture,
            $"data: {n} rows ({_trainRows} train, {_valRows} val); {_stepsPerEpoch} steps per epoch of {budget} tokens × {_group.WorldSize} rank(s), packing efficiency {100 * plan.Efficiency:F1}%"));
    }

    void BuildOptimizers()
    {
        var trainable = _algorithm.TrainableParameters;
        _optimizers = OptimizerFactory.Build(trainable, _options.Optimizer);
        long total = _options.SchedulerTotalSteps ?? (long)_options.Epochs * _stepsPerEpoch;
        // Deviation from speculators (documented): with --max-steps the schedule ends there, so the lr decays.
        if (_options.SchedulerTotalSteps == null && _options.MaxSteps is long m) total = Math.Min(total, m);
        long warmup = LrSchedule.ResolveWarmupSteps(total, _options.SchedulerWarmupSteps, _options.SchedulerWarmupRatio);
        _schedules = _optimizers.Select(o => new LrSchedule(o, _options.SchedulerType, total, warmup, _options.SchedulerNumCosineCycles)).ToList();
        long count = trainable.Sum(p => p.Tensor.numel());
        Info($"optimizer: {string.Join(" + ", _optimizers.Select(o => o.Name))} over {trainable.Count} tensors ({count:N0} trainable parameters); " +
                 $"{_options.SchedulerType.ToString().ToLowerInvariant()} schedule, {total} steps, {warmup} warmup");
    }

    void BroadcastInitialWeights()
    {
        using var noGrad = torch.no_grad();
        foreach (var p in _algorithm.TrainableParameters) _group.Broadcast(p.Tensor, 0);
    }

    bool EpochSaveDue(int epoch) =>
        _options.CheckpointFreq < 1 || epoch == 0 || (epoch + 1) % (int)_options.CheckpointFreq == 0;

    /// <summary>One epoch of training from <paramref name="skip"/> completed steps. Returns the steps completed and why it stopped early.</summary>
    (int LocalStep, int Steps, TrainStopReason? Reason) TrainEpoch(int epoch, int skip, CancellationToken stop, Progress? progress)
    {
        _trainSampler.SetEpoch(epoch);
        var plan = _trainSampler.Plan(epoch);
        int steps = plan.StepCount;
        if (skip > steps)
            throw new SpeculatorsException($"the checkpoint is at step {skip} of epoch {epoch}, but the epoch has {steps} steps with this data and --total-seq-len (did the dataset change?).");
        int? interval = _options.CheckpointFreq < 1 ? Math.Max(1, (int)Math.Round(steps * _options.CheckpointFreq, MidpointRounding.ToEven)) : null;
        if (skip == 0) Info($"epoch {epoch + 1}/{_options.Epochs}: {steps} steps");
        else Info($"epoch {epoch + 1}/{_options.Epochs}: resuming at step {skip} of {steps} (skipped batches are not loaded)");

        _algorithm.Model.train();
        var work = _trainSampler.Iterate(skip).Select((rows, i) =>
            new BatchWork(rows, new BatchContext(epoch, skip + i, true, _options.Seed, _options.TotalSeqLen)));
        using var prefetch = new BatchPrefetcher(_algorithm, work, _options.PrefetchFactor);
        var profile = new StepProfile();
        int localStep = skip;
        while (true)
        {
            if (stop.IsCancellationRequested) return (localStep, steps, TrainStopReason.Interrupted);
            var waitedBefore = prefetch.Waited;
            if (!prefetch.TryTake(out var batch)) break;
            double fetchMs = (prefetch.Waited - waitedBefore).TotalMilliseconds;
            double loss;
            using (batch)
            {
                _skippedRows += batch!.SkippedRows;
                loss = TrainStep(batch, epoch, localStep, steps, fetchMs, profile);
            }
            localStep++;
            _globalStep++;
            _losses.Add((_globalStep - 1, loss));
            if (progress != null)
            {
                progress.SetStatus(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {epoch + 1}/{_options.Epochs} step {localStep}/{steps} loss {loss:F4} lr {_optimizers[0].ParamGroups[0].Lr:0.###e+0}"));
                progress.Advance();
            }
            AfterStep?.Invoke(new TrainerStepInfo(epoch, localStep, steps, _globalStep, loss));

            if (_options.MaxSteps is long max && _globalStep >= max) return (localStep, steps, TrainStopReason.MaxSteps);
            if (stop.IsCancellationRequested) return (localStep, steps, TrainStopReason.Interrupted);
            if (interval is int iv && !_options.SaveBest && localStep % iv == 0 && localStep < steps && steps - localStep >= iv * MinStepFraction)
                SaveCheckpoint(epoch, localStep, "mid_epoch");
        }
        if (localStep < steps)
            throw new SpeculatorsException($"epoch {epoch}: the sampler produced {localStep} of {steps} steps.");
        return (localStep, steps, null);
    }

    /// <summary>Timing totals since the last logged step (the profile metrics are averages over them).</summary>
    sealed class StepProfile
    {
        public int Steps;
        public double FetchMs, FwdMs, BwdMs, OptMs, StepMs;
        public long Tokens;
        public long Capacity;

        public void Clear()
        {
            Steps = 0;
            FetchMs = FwdMs = BwdMs = OptMs = StepMs = 0;
            Tokens = Capacity = 0;
        }
    }

    double TrainStep(ITrainingBatch batch, int epoch, int localStep, int steps, double fetchMs, StepProfile profile)
    {
        var clock = Stopwatch.StartNew();
        // The prefetcher collates the next batches on another thread meanwhile: no GC may land inside a native call here.
        using var fence = TorchGcFence.Enter();
        using var scope = torch.NewDisposeScope();
        foreach (var o in _optimizers) o.ZeroGrad();

        StepOutput output;
        using (Autocast.Enter(_context.ComputeDtype))
        {
            output = _algorithm.Forward(batch, training: true);
        }
        using var outputOwner = output;
        double loss = output.Loss.detach().to(ScalarType.Float64).cpu().item<double>();
        double fwdMs = clock.Elapsed.TotalMilliseconds;
        CheckFinite(loss, "loss", epoch, localStep, steps);

        output.Loss.backward();
        double bwdMs = clock.Elapsed.TotalMilliseconds - fwdMs;

        var trainable = _algorithm.TrainableParameters;
        foreach (var p in trainable)
        {
            var g = p.Tensor.grad;
            if (g is not null) _group.AllReduce(g, ReduceOp.Avg);
        }
        double gradNorm = GradientClipping.ClipGradNorm(trainable, _options.MaxGradNorm);
        CheckFinite(gradNorm, "gradient norm", epoch, localStep, steps);
        var lrs = OptimizerFactory.LearningRates(_optimizers);
        foreach (var o in _optimizers) o.Step();
        foreach (var s in _schedules) s.Step();
        double optMs = clock.Elapsed.TotalMilliseconds - fwdMs - bwdMs;

        profile.Steps++;
        profile.FetchMs += fetchMs;
        profile.FwdMs += fwdMs;
        profile.BwdMs += bwdMs;
        profile.OptMs += optMs;
        profile.StepMs += clock.Elapsed.TotalMilliseconds + fetchMs;
        profile.Tokens += batch.Tokens;
        profile.Capacity += _options.TotalSeqLen;

        if (_globalStep % _options.LogFreq == 0)
        {
            var acc = new MetricAccumulator();
            acc.Add(output.Metrics);
            if (!output.Metrics.ContainsKey("loss") && !output.Metrics.ContainsKey("loss_sum"))
                acc.Add(new Dictionary<string, double> { ["loss"] = loss });
            acc.AllReduce(_group);
            var record = MetricKeys.Train(acc.Normalize(_group.WorldSize));
            record["train/grad_norm"] = gradNorm;
            record.AddTo(lrs);
            record["epoch"] = epoch;
            record["global_step"] = _globalStep;
            double n = Math.Max(1, profile.Steps);
            double stepMs = profile.StepMs / n;
            double tokensPerS = profile.StepMs > 0 ? profile.Tokens * (double)_group.WorldSize / (profile.StepMs / 1000.0) : 0;
            record["profile/fetch_ms"] = profile.FetchMs / n;
            record["profile/fwd_ms"] = profile.FwdMs / n;
            record["profile/bwd_ms"] = profile.BwdMs / n;
            record["profile/opt_ms"] = profile.OptMs / n;
            record["profile/step_ms"] = stepMs;
            record["profile/fetch_frac"] = profile.StepMs > 0 ? profile.FetchMs / profile.StepMs : 0;
            record["profile/tokens_per_s"] = tokensPerS;
            record["profile/packing_efficiency"] = profile.Capacity > 0 ? (double)profile.Tokens / profile.Capacity : 0;
            record["profile/model_tflops"] = tokensPerS * _algorithm.TrainingFlopsPerToken / 1e12;
            if (_main) _sink.Log(record, _globalStep);
            profile.Clear();
        }
        return loss;
    }

    void CheckFinite(double value, string what, int epoch, int localStep, int steps)
    {
        // Every rank must agree to stop, or the others would wait in the next collective.
        using var flag = torch.tensor(double.IsFinite(value) ? 0.0 : 1.0, ScalarType.Float64);
        _group.AllReduce(flag, ReduceOp.Max);
        if (flag.item<double>() == 0) return;
        string last = _lastCheckpoint != null
            ? $"the last good checkpoint is {_lastCheckpoint} (a rerun resumes from it)"
            : "no checkpoint was written yet";
        string text = double.IsNaN(value) ? "NaN" : double.IsInfinity(value) ? value.ToString(CultureInfo.InvariantCulture) : $"non-finite on another rank ({value.ToString(CultureInfo.InvariantCulture)} here)";
        throw new TrainingDivergedException(
            $"the {what} is {text} at global step {_globalStep} (epoch {epoch}, step {localStep + 1} of {steps}); training stopped without saving. " +
            $"{char.ToUpperInvariant(last[0])}{last[1..]}. Lower --lr, check --max-grad-norm or the data.",
            _globalStep);
    }

    /// <summary>Validation over the val split. Null when skipped or interrupted.</summary>
    SortedDictionary<string, double>? Validate(int epoch, CancellationToken stop)
    {
        if (_valSampler == null) return null;
        _valSampler.SetEpoch(epoch);
        int steps = _valSampler.Count;
        if (steps == 0) return null;
        _algorithm.Model.eval();
        var acc = new MetricAccumulator();
        int batches = 0;
        var work = _valSampler.Iterate().Select((rows, i) =>
            new BatchWork(rows.Select(r => r + _trainRows).ToArray(), new BatchContext(epoch, i, false, _options.Seed, _options.TotalSeqLen)));
        using (var prefetch = new BatchPrefetcher(_algorithm, work, _options.PrefetchFactor))
        using (var progress = _main ? new Progress($"validate epoch {epoch + 1}", steps, "steps") : null)
        {
            while (true)
            {
                if (stop.IsCancellationRequested)
                {
                    _algorithm.Model.train();
                    return null;
                }
                if (!prefetch.TryTake(out var batch)) break;
                using (batch)
                using (var scope = torch.NewDisposeScope())
                using (torch.no_grad())
                {
                    StepOutput output;
                    using (Autocast.Enter(_context.ComputeDtype))
                    {
                        output = _algorithm.Forward(batch!, training: false);
                    }
                    using (output)
                    {
                        acc.Add(output.Metrics);
                        if (!output.Metrics.ContainsKey("loss") && !output.Metrics.ContainsKey("loss_sum"))
                            acc.Add(new Dictionary<string, Tensor> { ["loss"] = output.Loss });
                    }
                }
                batches++;
                progress?.Advance();
            }
        }
        _algorithm.Model.train();
        acc.AllReduce(_group);
        // speculators: per-batch values summed, divided by the batch count, then normalized.
        var raw = acc.Raw.ToDictionary(kv => kv.Key, kv => kv.Value / Math.Max(1, batches));
        var normalized = MetricAccumulator.Normalize(raw, _group.WorldSize);
        _algorithm.AddDerivedValidationMetrics(normalized);
        var record = MetricKeys.Validation(normalized);
        record["epoch"] = epoch;
        if (_main) _sink.Log(record, _globalStep);
        _validation.Add((epoch, new SortedDictionary<string, double>(normalized)));
        Info($"validation epoch {epoch + 1}: " + string.Join(", ", normalized.Where(kv => !kv.Key.Contains('_') || kv.Key.StartsWith("loss", StringComparison.Ordinal) || kv.Key.Contains("acc"))
            .Take(8).Select(kv => $"{kv.Key} {ConsoleSink.Format(kv.Value)}")));
        return normalized;
    }

    void UpdateBest(int epoch, int localStep, IReadOnlyDictionary<string, double> normalized)
    {
        if (!normalized.TryGetValue("loss", out double loss) || !double.IsFinite(loss)) return;
        if (_bestValLoss is double best && loss >= best) return;
        if (_options.SaveBest)
        {
            SaveCheckpoint(epoch, localStep, "best");
        }
        else if (_lastSavedEpoch != epoch || _lastSavedGlobalStep != _globalStep)
        {
            return; // this epoch's weights were not saved (--checkpoint-freq), so nothing to point at
        }
        _bestValLoss = loss;
        if (_main)
        {
            _store.WriteValMetrics(epoch, normalized.ToDictionary(kv => kv.Key + "_epoch", kv => kv.Value));
            _store.UpdateBest(epoch);
            if (_options.SaveBest) _store.KeepOnlyBest(epoch);
        }
        _group.Barrier();
        Info(string.Create(CultureInfo.InvariantCulture, $"checkpoint_best → {epoch} (val loss {loss:G6})"));
    }

    /// <summary>Progress and summary lines come from rank 0 only (every rank runs the same code).</summary>
    void Info(string message)
    {
        if (_main) Log.Info(message);
    }

    void Warn(string message)
    {
        if (_main) Log.Warn(message);
    }

    void EnsureSavedAtCurrentStep(int epoch, int localStep)
    {
        if (_lastSavedGlobalStep != _globalStep) SaveCheckpoint(epoch, localStep, "interrupted");
    }
}
