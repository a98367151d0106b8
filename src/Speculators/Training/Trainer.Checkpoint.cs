using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

public sealed partial class Trainer
{
    /// <summary>
    /// Writes <c>{epoch}/</c>: the servable model (<see cref="ITrainingAlgorithm.SaveModel"/>), fp32 master weights,
    /// fp32 optimizer state keyed by parameter name, scheduler state, <c>training_state.json</c> and a copy of
    /// <c>train_command.txt</c>, through the atomic directory protocol. Rank 0 writes; all ranks meet at barriers.
    /// </summary>
    void SaveCheckpoint(int epoch, int localStep, string reason)
    {
        _group.Barrier();
        if (_main)
        {
            var state = new TrainingState
            {
                Epoch = epoch,
                LocalStep = localStep,
                GlobalStep = _globalStep,
                Reason = reason,
                Seed = _options.Seed,
                SamplerSeed = SamplerSeed,
                WorldSize = _group.WorldSize,
                TotalSeqLen = _options.TotalSeqLen,
                TrainRows = _trainRows,
                ValRows = _valRows,
                StepsPerEpoch = _trainSampler.Plan(epoch).StepCount,
                BestValLoss = _bestValLoss,
                TorchRngState = CaptureRngState(),
                Algorithm = _algorithm.Name,
                WrittenBy = ProductInfo.NameAndVersion,
            };
            string name = epoch.ToString(CultureInfo.InvariantCulture);
            string dir = _store.Save(name, tmp =>
            {
                _algorithm.SaveModel(tmp);
                WriteTrainerState(tmp);
                string cmd = Path.Combine(_store.Root, CheckpointStore.TrainCommandFile);
                if (File.Exists(cmd)) File.Copy(cmd, Path.Combine(tmp, CheckpointStore.TrainCommandFile), overwrite: true);
                // Last, so a directory with training_state.json always has everything else.
                AtomicFile.WriteAllText(Path.Combine(tmp, TrainingState.FileName), state.ToJson());
            });
            _store.UpdateEpochLink(epoch, localStep);
            Log.Info(localStep > 0
                ? $"checkpoint {dir} (epoch {epoch}, step {localStep}, global step {_globalStep}, {reason})"
                : $"checkpoint {dir} (end of epoch {epoch}, global step {_globalStep})");
            _lastCheckpoint = dir;
        }
        else
        {
            _lastCheckpoint = _store.PathOf(epoch);
        }
        _lastSavedGlobalStep = _globalStep;
        _lastSavedEpoch = epoch;
        _sink.Flush();
        _group.Barrier();
    }

    void WriteTrainerState(string dir)
    {
        using var scope = torch.NewDisposeScope();
        var master = _algorithm.TrainableParameters
            .Select(p => KeyValuePair.Create(p.Name, p.Tensor.detach().to(ScalarType.Float32).cpu().contiguous()))
            .ToList();
        SafeTensorsWriter.Save(Path.Combine(dir, CheckpointStore.MasterWeightsFile), master,
            new Dictionary<string, string> { ["content"] = "fp32 master weights of the trainable parameters (speculators-dotnet trainer)" });

        var tensors = new List<KeyValuePair<string, Tensor>>();
        var scalars = new JsonArray();
        foreach (var o in _optimizers)
        {
            var st = o.StateDict();
            foreach (var (k, v) in st.Tensors)
            {
                var cpu = v.cpu().contiguous();
                if (!ReferenceEquals(cpu, v)) v.Dispose();
                tensors.Add(KeyValuePair.Create(k, cpu));
            }
            scalars.Add(st.Scalars);
        }
        try
        {
            SafeTensorsWriter.Save(Path.Combine(dir, CheckpointStore.OptimizerStateFile), tensors,
                new Dictionary<string, string> { ["optimizers"] = scalars.ToJsonString() });
        }
        finally
        {
            foreach (var (_, t) in tensors) t.Dispose();
        }
        var schedules = new JsonArray(_schedules.Select(s => (JsonNode)s.StateDict()).ToArray());
        AtomicFile.WriteAllText(Path.Combine(dir, CheckpointStore.SchedulerStateFile),
            schedules.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    sealed record Resumed(string Directory, TrainingState State);

    /// <summary>
    /// Restores the newest usable checkpoint: newest epoch first; a checkpoint that fails to load (missing or
    /// truncated file, bad JSON, shapes that do not match the model) is reported and the previous one is tried.
    /// Null when there is no checkpoint; throws when there are some and none is usable.
    /// </summary>
    Resumed? ResumeFromLatest()
    {
        var epochs = _store.Epochs();
        if (epochs.Count == 0)
        {
            Log.Info($"no checkpoint in {_store.Root}; starting a fresh run.");
            return null;
        }
        var failures = new List<string>();
        foreach (int e in epochs)
        {
            string dir = _store.PathOf(e);
            try
            {
                var state = LoadCheckpoint(dir);
                if (state.Epoch != e)
                    Log.Warn($"{Path.Combine(dir, TrainingState.FileName)} says epoch {state.Epoch}, but the directory is {e}; using {e}.");
                state = state with { Epoch = e };
                if (failures.Count > 0)
                    Log.Warn($"resuming from the previous usable checkpoint {dir}.");
                _lastCheckpoint = dir;
                _lastSavedGlobalStep = state.GlobalStep;
                _lastSavedEpoch = e;
                return new Resumed(dir, state);
            }
            catch (Exception ex) when (ex is SpeculatorsException or IOException or JsonException or InvalidOperationException or FormatException)
            {
                string msg = $"checkpoint {dir} is unusable: {ex.Message}";
                Log.Warn(msg + (e != epochs[^1] ? " Trying the previous one." : ""));
                failures.Add(msg);
            }
        }
        throw new SpeculatorsException(
            $"no usable checkpoint in {_store.Root} ({string.Join("; ", failures)}). Fix or remove them, or pass --no-resume to start over.");
    }

    /// <summary>Validates every file first, then restores master weights, optimizers, schedules, RNG and counters.</summary>
    TrainingState LoadCheckpoint(string dir)
    {
        string statePath = Path.Combine(dir, TrainingState.FileName);
        if (!File.Exists(statePath)) throw new SpeculatorsException($"{TrainingState.FileName} is missing");
        var state = TrainingState.Parse(File.ReadAllText(statePath), statePath);
        if (state.LocalStep < 0 || state.GlobalStep < 0) throw new SpeculatorsException($"{statePath}: negative step counts.");

        // Every safetensors file must be whole (the servable model too: checkpoint_best may point here).
        foreach (var f in Directory.EnumerateFiles(dir, "*.safetensors"))
            using (SafeTensorsFile.Open(f)) { }

        string masterPath = Path.Combine(dir, CheckpointStore.MasterWeightsFile);
        string optimPath = Path.Combine(dir, CheckpointStore.OptimizerStateFile);
        string schedPath = Path.Combine(dir, CheckpointStore.SchedulerStateFile);
        foreach (var p in new[] { masterPath, optimPath, schedPath })
            if (!File.Exists(p)) throw new SpeculatorsException($"{Path.GetFileName(p)} is missing");

        using var master = SafeTensorsFile.Open(masterPath);
        var trainable = _algorithm.TrainableParameters;
        foreach (var p in trainable)
        {
            if (!master.Contains(p.Name))
                throw new SpeculatorsException($"{CheckpointStore.MasterWeightsFile} has no tensor '{p.Name}' (was the model changed?)");
            var info = master.Info(p.Name);
            if (!info.Shape.SequenceEqual(p.Tensor.shape))
                throw new SpeculatorsException($"{CheckpointStore.MasterWeightsFile}: '{p.Name}' has shape {info.ShapeText}, the model has [{string.Join(", ", p.Tensor.shape)}]");
        }

        using var optim = SafeTensorsFile.Open(optimPath);
        if (!optim.Metadata.TryGetValue("optimizers", out var optimJson))
            throw new SpeculatorsException($"{CheckpointStore.OptimizerStateFile} has no 'optimizers' metadata");
        var optimScalars = JsonNode.Parse(optimJson) as JsonArray ?? throw new SpeculatorsException($"{CheckpointStore.OptimizerStateFile}: 'optimizers' metadata is not a JSON array");
        if (optimScalars.Count != _optimizers.Count)
            throw new SpeculatorsException($"{CheckpointStore.OptimizerStateFile} holds {optimScalars.Count} optimizer(s), this run has {_optimizers.Count} ({string.Join(" + ", _optimizers.Select(o => o.Name))}; was --optimizer changed?)");
        var schedules = JsonNode.Parse(File.ReadAllText(schedPath)) as JsonArray
            ?? throw new SpeculatorsException($"{CheckpointStore.SchedulerStateFile}: expected a JSON array");
        if (schedules.Count != _schedules.Count)
            throw new SpeculatorsException($"{CheckpointStore.SchedulerStateFile} holds {schedules.Count} schedule(s), this run has {_schedules.Count}");
        byte[]? rng = state.TorchRngState is string s ? Convert.FromBase64String(s) : null;

        // Apply.
        using (torch.no_grad())
            foreach (var p in trainable) master.ReadInto(p.Name, p.Tensor, $"parameter '{p.Name}'");
        var tensors = optim.LoadAll();
        try
        {
            for (int i = 0; i < _optimizers.Count; i++)
                _optimizers[i].LoadStateDict(new OptimizerState(tensors, optimScalars[i]!.AsObject()), Path.Combine(dir, CheckpointStore.OptimizerStateFile));
        }
        finally
        {
            foreach (var t in tensors.Values) t.Dispose();
        }
        for (int i = 0; i < _schedules.Count; i++)
            _schedules[i].LoadStateDict(schedules[i]!.AsObject(), Path.Combine(dir, CheckpointStore.SchedulerStateFile));
        if (rng != null) RestoreRngState(rng);

        if (state.WorldSize != _group.WorldSize || state.TotalSeqLen != _options.TotalSeqLen || state.TrainRows != _trainRows)
            Log.Warn($"{statePath}: written for {state.WorldSize} rank(s), --total-seq-len {state.TotalSeqLen}, {state.TrainRows} train rows; " +
                     $"this run has {_group.WorldSize}, {_options.TotalSeqLen}, {_trainRows}. The data order from here on differs from an uninterrupted run.");
        if (state.Seed != _options.Seed)
            Log.Warn($"{statePath}: written with --seed {state.Seed}, this run uses {_options.Seed}.");

        _globalStep = state.GlobalStep;
        _bestValLoss = _store.BestValLoss() ?? state.BestValLoss;
        return state;
    }

    static string CaptureRngState()
    {
        using var st = torch.random.get_rng_state();
        return Convert.ToBase64String(st.data<byte>().ToArray());
    }

    static void RestoreRngState(byte[] bytes)
    {
        using var t = torch.tensor(bytes, ScalarType.Byte);
        torch.random.set_rng_state(t);
    }
}
