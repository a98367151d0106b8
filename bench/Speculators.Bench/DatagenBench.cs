using System.Diagnostics;
using System.Globalization;
using Speculators.Data;
using Speculators.HiddenStates;
using Speculators.Modeling;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Offline hidden-state generation throughput: a random Llama-shaped verifier over a synthetic prepared dataset,
/// storing fp32 and bf16, computing in fp32 and bf16. Reports tokens/s and the achieved matmul GFLOP/s of the prefills (valid tokens only, padding
/// not counted) as a ratio of libtorch's square-matmul peak (and of <c>F.linear</c>, the op the model runs) for the
/// compute dtype, measured in the same run; both for
/// the prefills alone and for the whole datagen run (prefill + file writes + planning).
/// </summary>
public sealed class DatagenBench : IBenchmark
{
    public string Name => "datagen";
    public string Description => "datagen tokens/s and achieved GFLOP/s ÷ matmul peak (bf16, fp32)";

    public int Run(string[] args)
    {
        int hidden = Arg(args, "--hidden", 256), layers = Arg(args, "--layers", 4), rows = Arg(args, "--rows", 16);
        int minLen = Arg(args, "--min-len", 64), maxLen = Arg(args, "--max-len", 256);
        long batchTokens = Arg(args, "--batch-tokens", 2048);
        using var root = new BenchDir();
        string model = Path.Combine(root.Path, "model"), data = Path.Combine(root.Path, "data");
        var options = new TinyModelOptions
        {
            NumLayers = layers, HiddenSize = hidden, IntermediateSize = hidden * 11 / 4, NumHeads = hidden / 64, NumKvHeads = Math.Max(1, hidden / 256),
            VocabSize = 4096, MaxPositionEmbeddings = 4096, WriteTokenizer = false, Seed = 1,
        };
        TinyModelFactory.Create(model, options);
        var config = TinyModelFactory.BuildConfig(options);
        var rng = new Random(3);
        var lengths = Enumerable.Range(0, rows).Select(_ => rng.Next(minLen, maxLen + 1)).ToArray();
        using (var w = new PreparedDatasetWriter(data))
        {
            foreach (int n in lengths)
            {
                var ids = Enumerable.Range(0, n).Select(_ => (long)rng.Next(options.VocabSize)).ToArray();
                w.Append(ids, new long[n]);
            }
            w.Complete();
        }
        double flops = lengths.Sum(n => HiddenStateGenerator.PrefillFlops(config, n));
        long tokens = lengths.Sum(n => (long)n);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"verifier: Llama N={layers} H={hidden} I={options.IntermediateSize} heads {options.NumHeads}/{options.NumKvHeads}; " +
            $"{rows} rows, {tokens} tokens ({minLen}..{maxLen}), batch {batchTokens} tokens, {torch.get_num_threads()} threads, " +
            $"native bf16 on this CPU: {ComputeDType.HasNativeBFloat16(torch.CPU)}"));

        var peaks = new Dictionary<ScalarType, (double Mm, double Linear)>();
        foreach (var (dtype, compute) in new[] { (ScalarType.Float32, ScalarType.Float32), (ScalarType.BFloat16, ScalarType.Float32), (ScalarType.BFloat16, ScalarType.BFloat16) })
        {
            if (!peaks.TryGetValue(compute, out var baseline)) peaks[compute] = baseline = (MatmulPeak.Measure(compute, 1024, 3), LinearPeak(compute, 1024, 3));
            double peak = baseline.Mm;
            var spec = HiddenStateSpec.ForVerifier(AuxLayerIds.Default(layers), layers, hidden, dtype, 4096);

            // Prefills alone (no files), after one warm-up batch.
            double prefillSeconds;
            using (var m = CausalLM.LoadFromDirectory(model, compute, torch.CPU))
            using (var gen = new HiddenStateGenerator(m, spec, batchTokens))
            using (var ds = PreparedDataset.Open(data))
            {
                var requests = Enumerable.Range(0, rows).Select(i => new GenerationRequest(i, ds.GetRow(i).InputIds)).ToList();
                foreach (var s in gen.RunBatch(requests.Take(2).ToList())) s.Dispose();
                var sw = Stopwatch.StartNew();
                foreach (var batch in gen.GenerateBatches(requests))
                    foreach (var s in batch) s.Dispose();
                prefillSeconds = sw.Elapsed.TotalSeconds;
            }

            // The whole run as the CLI does it (plan, load, prefill, atomic writes).
            string output = Path.Combine(root.Path, $"hs-{HiddenStateSpec.DTypeName(dtype)}-{HiddenStateSpec.DTypeName(compute)}");
            var oldLog = Log.Writer;
            Log.Writer = TextWriter.Null;
            DatagenSummary summary;
            var total = Stopwatch.StartNew();
            try
            {
                summary = HiddenStateDatagen.Run(new DatagenOptions
                {
                    ModelDirectory = model, DataPath = data, OutputDirectory = output, DType = dtype, ComputeDType = compute, BatchTokens = batchTokens,
                });
            }
            finally
            {
                Log.Writer = oldLog;
            }
            double runSeconds = summary.Elapsed.TotalSeconds;

            double prefillGflops = flops / prefillSeconds / 1e9, runGflops = flops / runSeconds / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"store {HiddenStateSpec.DTypeName(dtype),-8} compute {HiddenStateSpec.DTypeName(compute),-8}: peak mm {peak:F1} / F.linear {baseline.Linear:F1} GFLOP/s | " +
                $"prefill only: {tokens / prefillSeconds:F0} tokens/s, {prefillGflops:F1} GFLOP/s = {prefillGflops / peak:P0} of mm, {prefillGflops / baseline.Linear:P0} of F.linear | datagen: {summary.TokensPerSecond:F0} tokens/s, " +
                $"{runGflops:F1} GFLOP/s = {runGflops / peak:P0} of mm, {summary.BytesPerToken:F0} bytes/token, " +
                $"padding {100.0 * (summary.PaddedTokens - summary.TokensWritten) / summary.PaddedTokens:F1}%, " +
                $"{summary.Prefills} prefills (total with load {total.Elapsed.TotalSeconds:F1} s)"));
        }
        return 0;
    }

    /// <summary>Best-of-<paramref name="reps"/> GFLOP/s of <c>F.linear(x [n,n], W [n,n])</c> (x·Wᵀ, the op the verifier runs).</summary>
    static double LinearPeak(ScalarType dtype, int n, int reps)
    {
        using var scope = NewDisposeScope();
        var x = torch.randn(n, n).to(dtype);
        var w = torch.randn(n, n).to(dtype);
        torch.nn.functional.linear(x, w).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            torch.nn.functional.linear(x, w).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }

    static int Arg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    sealed class BenchDir : IDisposable
    {
        public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "spec-bench-datagen-" + Guid.NewGuid().ToString("N")[..8]);
        public BenchDir() => Directory.CreateDirectory(Path);
        public void Dispose()
        {
            try { Directory.Delete(Path, true); } catch (IOException) { }
        }
    }
}
