using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Data;
using Speculators.Distributed;
using Speculators.Formats;
using Speculators.HiddenStates;
using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>
/// A tiny verifier on disk (4 layers, H = 32, vocabulary 300, weights with std 0.2 so its distributions are peaked), a
/// prepared dataset of 8 rows, and a float32 hidden-state store made by <c>datagen</c>, built once per test run.
/// </summary>
internal static class E3DiskFixture
{
    public static readonly int[] Lengths = [14, 9, 17, 6, 12, 20, 8, 11];
    static readonly Lazy<(string Root, string Model, string Data)> Shared = new(Build);

    public static string ModelDir => Shared.Value.Model;
    public static string DataDir => Shared.Value.Data;
    public static string StoreDir => Path.Combine(DataDir, "hidden_states");

    static (string, string, string) Build()
    {
        string root = Path.Combine(Path.GetTempPath(), "spec-e3train-" + Guid.NewGuid().ToString("N")[..10]);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        };
        string model = Path.Combine(root, "model");
        TinyModelFactory.Create(model, E3TrainFixtures.VerifierOptions(seed: 13) with { InitStd = 0.2 });
        string data = Path.Combine(root, "data");
        WriteDataset(data, Lengths, seed: 17);
        HiddenStateDatagen.Run(new DatagenOptions
        {
            ModelDirectory = model, DataPath = data, AuxLayerIds = E3TrainFixtures.AuxIds, DType = ScalarType.Float32, IgnoreDiskSpace = true,
        });
        return (root, model, data);
    }

    /// <summary>Rows of random ids; the loss mask is 0 on the first third (a "prompt") and 1 after it.</summary>
    public static void WriteDataset(string dir, IReadOnlyList<int> lengths, int seed)
    {
        var rng = new Random(seed);
        using var w = new PreparedDatasetWriter(dir, new PreparedDatasetWriterOptions { Overwrite = true });
        foreach (int n in lengths)
        {
            var ids = Enumerable.Range(0, n).Select(_ => (long)rng.Next(E3TrainFixtures.Vocab)).ToArray();
            var mask = Enumerable.Range(0, n).Select(i => i >= n / 3 ? 1L : 0L).ToArray();
            w.Append(ids, mask);
        }
        w.Complete();
    }

    /// <summary>A copy of the data directory (dataset and store) that a test may modify.</summary>
    public static string CopyData(TempDir dir)
    {
        string target = dir.File("data");
        foreach (var f in Directory.EnumerateFiles(DataDir, "*", SearchOption.AllDirectories))
        {
            string dest = Path.Combine(target, Path.GetRelativePath(DataDir, f));
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(f, dest);
        }
        return target;
    }

    public static Eagle3TrainingSettings Settings(string? data = null) => new()
    {
        VerifierDirectory = ModelDir,
        VerifierNameOrPath = "tiny/verifier",
        DataPath = data ?? DataDir,
        OnMissing = OnMissing.Raise,
        Draft = Eagle3DraftOptions.HeadDefaults with { AuxLayerIds = E3TrainFixtures.AuxIds },
        VocabMapping = E3TrainFixtures.Mapping(),
        TotalSeqLen = 40,
        AttentionBlockSize = 16,
        Seed = 5,
    };

    public static Eagle3TrainingAlgorithm Create(Eagle3TrainingSettings settings) =>
        Eagle3TrainingAlgorithm.Create(settings, torch.CPU, ScalarType.Float32, new SingleProcessGroup());
}

public class AlgorithmTests
{
    public AlgorithmTests() => E3TrainFixtures.SingleThreaded();

    static float Step(Eagle3TrainingAlgorithm alg, ITrainingBatch batch, Optimizer? optimizer)
    {
        using var scope = NewDisposeScope();
        using var output = alg.Forward(batch, training: optimizer != null);
        float loss = output.Loss.item<float>();
        if (optimizer != null)
        {
            optimizer.ZeroGrad();
            output.Loss.backward();
            optimizer.Step();
        }
        return loss;
    }

    [Fact]
    public async Task LossFallsAndTheCheckpointValidatesAndLoadsBack()
    {
        using var dir = new TempDir();
        using var alg = E3DiskFixture.Create(E3DiskFixture.Settings());
        Assert.Equal("eagle3", alg.Name);
        Assert.Equal(E3DiskFixture.Lengths, alg.RowLengths);
        Assert.DoesNotContain(alg.TrainableParameters, p => p.Name is "lm_head.weight" or "embed_tokens.weight" || p.Name.StartsWith("verifier_", StringComparison.Ordinal));
        Assert.All(alg.TrainableParameters, p => Assert.Equal(ScalarType.Float32, p.Tensor.dtype));
        Assert.Contains(alg.TrainableParameters, p => p.Name == "fc.weight");

        var context = new BatchContext(Epoch: 0, Step: 0, Training: true, Seed: 5, TotalSequenceLength: 40);
        var batches = new List<ITrainingBatch>();
        foreach (var rows in new[] { new[] { 0, 1, 3 }, new[] { 2, 4 }, new[] { 5, 6, 7 } })
            batches.Add(await alg.LoadBatchAsync(rows, context, CancellationToken.None));
        try
        {
            Assert.Equal(13 + 8 + 5, batches[0].Tokens);
            using var optimizer = new AdamW(alg.TrainableParameters, lr: 3e-3, weightDecay: 0.0);
            double Mean() => batches.Average(b => Step(alg, b, null));
            double before = Mean();
            for (int epoch = 0; epoch < 12; epoch++)
                foreach (var b in batches) Step(alg, b, optimizer);
            double after = Mean();
            Assert.True(after < 0.6 * before, $"loss {before:F4} → {after:F4} after 36 steps");
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }

        string ckpt = dir.File("ckpt");
        Directory.CreateDirectory(ckpt);
        alg.SaveModel(ckpt);
        var report = SpeculatorsCheckpoint.Validate(ckpt, E3DiskFixture.ModelDir);
        Assert.True(report.IsValid, report.ToText());
        var cfg = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(ckpt);
        Assert.Equal(3, cfg.SpeculativeTokens);
        Assert.Equal("tiny/verifier", cfg.SpeculatorsConfig.Verifier.NameOrPath);
        Assert.Equal(E3TrainFixtures.AuxIds, cfg.AuxLayerIds);
        Assert.Equal(E3TrainFixtures.DraftVocab, cfg.DraftVocabSize);

        // The same weights as a Python-style checkpoint: layer 0 under ModelOpt's 'midlayer.' names, no embedding
        // (speculators takes it from the verifier).
        string python = dir.File("python");
        Directory.CreateDirectory(python);
        File.Copy(Path.Combine(ckpt, "config.json"), Path.Combine(python, "config.json"));
        using (var st = SafeTensorsFile.Open(Path.Combine(ckpt, "model.safetensors")))
        {
            var all = st.LoadAll(k => k != "embed_tokens.weight");
            SafeTensorsWriter.Save(Path.Combine(python, "model.safetensors"),
                all.Select(kv => KeyValuePair.Create(kv.Key.Replace("layers.0.", "midlayer.", StringComparison.Ordinal), kv.Value)));
            foreach (var t in all.Values) t.Dispose();
        }

        // LoadModel puts the saved (bf16) weights into a fresh run; --from-pretrained starts from them too.
        using var fresh = E3DiskFixture.Create(E3DiskFixture.Settings() with { Seed = 99 });
        fresh.LoadModel(ckpt);
        using var pretrained = E3DiskFixture.Create(E3DiskFixture.Settings() with { FromPretrained = ckpt, Seed = 99 });
        using var fromPython = E3DiskFixture.Create(E3DiskFixture.Settings() with { Seed = 98 });
        fromPython.LoadModel(python);
        foreach (var (name, p) in alg.Draft.StateDictForSaving())
        {
            using var expected = p.is_floating_point() ? p.detach().to(ScalarType.BFloat16).to(p.dtype) : p.detach().clone();
            foreach (var (what, run) in new[] { ("LoadModel", fresh), ("--from-pretrained", pretrained), ("Python names", fromPython) })
            {
                var got = run.Draft.StateDictForSaving().Single(kv => kv.Key == name).Value;
                // The embedding is frozen: the Python-style file has none, so it comes from the verifier (fp32, not rounded).
                var want = what == "Python names" && name == "embed_tokens.weight" ? p.detach() : expected;
                Assert.True(got.eq(want).all().item<bool>(), $"{what}: {name}");
            }
        }
        // A checkpoint trained with other flags is refused, naming the flag.
        var other = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(ckpt);
        other.NormOutput = false;
        other.Save(python);
        var error = Assert.Throws<SpeculatorsException>(() => fresh.LoadModel(python));
        Assert.Contains("norm_output: checkpoint false, run true", error.Message);
    }

    [Fact]
    public async Task OnlineGenerationGivesTheStoreBatch()
    {
        using var dir = new TempDir();
        var context = new BatchContext(0, 0, Training: false, Seed: 5, TotalSequenceLength: 40);
        int[] rows = [4, 0, 2];
        using var offline = E3DiskFixture.Create(E3DiskFixture.Settings());
        using var online = E3DiskFixture.Create(E3DiskFixture.Settings() with { OnMissing = OnMissing.Generate, HiddenStatesPath = dir.File("none") });
        using var a = (Eagle3Batch)await offline.LoadBatchAsync(rows, context, CancellationToken.None);
        using var b = (Eagle3Batch)await online.LoadBatchAsync(rows, context, CancellationToken.None);
        Assert.Equal(1, online.Provider.Stats.Generated > 0 ? 1 : 0);
        Assert.False(Directory.Exists(dir.File("none")), "online generation with --on-generate delete writes nothing");
        Assert.True(a.InputIds.eq(b.InputIds).all().item<bool>());
        Assert.True(a.DocumentIds.eq(b.DocumentIds).all().item<bool>());
        Assert.True(a.HiddenStates.allclose(b.HiddenStates, rtol: 1e-4, atol: 1e-4));
        Assert.True(a.VerifierLastHiddenStates.allclose(b.VerifierLastHiddenStates, rtol: 1e-4, atol: 1e-4));
        // Row 4's shifted input ids are the prepared row's tokens 1..11.
        using var ds = PreparedDataset.Open(E3DiskFixture.DataDir);
        Assert.Equal(ds.GetRow(4).InputIds[1..], a.InputIds.reshape(-1).narrow(0, 0, 11).data<long>().ToArray());
        // est_acceptance_length from validation metrics.
        var metrics = new Dictionary<string, double> { ["cond_acc_0"] = 0.8, ["cond_acc_1"] = 0.5, ["cond_acc_2"] = 0.25, ["loss"] = 1 };
        online.AddDerivedValidationMetrics(metrics);
        Assert.Equal(1 + 0.8 + 0.4 + 0.1, metrics["est_acceptance_length"], 1e-12);
    }

    [Fact]
    public async Task BadRowsAreSkippedAndCounted()
    {
        using var dir = new TempDir();
        string data = E3DiskFixture.CopyData(dir);
        string store = Path.Combine(data, "hidden_states");
        // Row 2's file holds other token ids (a store made from other data): skipped and counted, not trained on.
        using (var ds = PreparedDataset.Open(data))
        {
            var spec = HiddenStateSpec.ForVerifier(E3TrainFixtures.AuxIds, E3TrainFixtures.Layers, E3TrainFixtures.Hidden, ScalarType.Float32);
            var ids = ds.GetRow(2).InputIds.Select(x => (x + 1) % E3TrainFixtures.Vocab).ToArray();
            using var h = torch.zeros([ids.Length, 4, E3TrainFixtures.Hidden]);
            HiddenStateFile.Write(HiddenStateFile.PathFor(store, 2), h, ids, spec);
        }
        File.Delete(HiddenStateFile.PathFor(store, 6));
        var context = new BatchContext(0, 0, Training: true, Seed: 1, TotalSequenceLength: 40);

        // --on-missing raise stops before training, naming the file.
        var error = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(E3DiskFixture.Settings(data)));
        Assert.Contains("hs_6.safetensors", error.Message);

        using var alg = E3DiskFixture.Create(E3DiskFixture.Settings(data) with { OnMissing = OnMissing.Skip });
        using (var batch = await alg.LoadBatchAsync([1, 2, 3], context, CancellationToken.None))
        {
            Assert.Equal(1, batch.SkippedRows);
            Assert.Equal(2, batch.Samples);
            Assert.Equal(8 + 5, batch.Tokens);
        }
        Assert.Equal(1, alg.Provider.Stats.Skipped(HiddenStateSkipReason.TokenMismatch));
        // A batch whose rows are all unusable is all padding: zero loss.
        using (var empty = await alg.LoadBatchAsync([2, 6], context, CancellationToken.None))
        {
            Assert.Equal(2, empty.SkippedRows);
            Assert.Equal(0, empty.Tokens);
            using var output = alg.Forward(empty, training: true);
            Assert.Equal(0f, output.Loss.item<float>(), 6);
        }
    }

    [Fact]
    public void MismatchesAreRejectedBeforeTraining()
    {
        using var dir = new TempDir();
        var s = E3DiskFixture.Settings();
        // An aux layer id beyond the verifier (N = 4: ids in [1, 3]).
        var e1 = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(s with { Draft = s.Draft with { AuxLayerIds = [1, 2, 4] } }));
        Assert.Contains("[1, 3]", e1.Message);
        // A store made for other layers than the draft reads.
        var e2 = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(s with { Draft = s.Draft with { AuxLayerIds = [1, 3] } }));
        Assert.Contains("layer", e2.Message);
        Assert.Contains("store [1, 2, 3, 4], requested [1, 3, 4]", e2.Message);
        // A mapping built for another vocabulary size.
        var t2d = new bool[200];
        for (int i = 0; i < 10; i++) t2d[i] = true;
        var e3 = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(s with { VocabMapping = new VocabMapping(new long[10], t2d) }));
        Assert.Contains("200", e3.Message);
        Assert.Contains("300", e3.Message);
        // A checkpoint for a verifier of another hidden size.
        string other = dir.File("other");
        TinyModelFactory.Create(other, E3TrainFixtures.VerifierOptions() with { HiddenSize = 48, NumHeads = 4, NumKvHeads = 2 });
        string ckpt = dir.File("ckpt");
        using (var vw = Eagle3VerifierWeights.FromDirectory(other))
        using (var d = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { AuxLayerIds = E3TrainFixtures.AuxIds }, null, "other"))
            Eagle3Checkpoint.Save(d, ckpt);
        var e4 = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(s with { FromPretrained = ckpt, VocabMapping = null }));
        Assert.Contains("48", e4.Message);
        Assert.Contains("32", e4.Message);
        // A store missing entirely with --on-missing raise.
        var e5 = Assert.Throws<SpeculatorsException>(() => E3DiskFixture.Create(s with { HiddenStatesPath = dir.File("nowhere") }));
        Assert.Contains("nowhere", e5.Message);
    }

    [Fact]
    public void FlopsPerTokenIsTheClosedForm()
    {
        var dc = new DecoderConfig
        {
            VocabSize = 1000, HiddenSize = 8, IntermediateSize = 16, NumLayers = 2, NumHeads = 2, NumKvHeads = 1, HeadDim = 4,
            Rope = new RopeConfig { HeadDim = 4 },
        };
        // Layer 0 (input 16): q 16·8, k/v 16·4 each, o 8·8, mlp 3·8·16 = 128 + 128 + 64 + 384 = 704; layer 1 (input 8): 64 + 64 + 64 + 384 = 576.
        double perStepWeights = 704 + 576;
        double expected = 6.0 * 3 * 8 * 8 + 2.0 * 50 * 8;
        for (int k = 0; k < 3; k++) expected += 6 * perStepWeights + 12.0 * 2 * 2 * 4 * (5.0 + k) + 4.0 * 50 * 8;
        Assert.Equal(expected, Eagle3TrainingAlgorithm.FlopsPerToken(dc, 3, 8, 50, 3, 5.0), 1e-9);
        Assert.Equal((1 + 2 + 3 + 1 + 2) / 5.0, Eagle3TrainingAlgorithm.MeanCausalContext([3, 2, 0], null), 1e-12);
        Assert.Equal((1 + 2 + 2 + 2 + 1) / 5.0, Eagle3TrainingAlgorithm.MeanCausalContext([4, 1], 2), 1e-12);
    }
}
