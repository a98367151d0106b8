using System.Globalization;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Inference;
using Speculators.Modeling;
using Speculators.Quickstart;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Calibration of the quickstart's target model: causal-LM training throughput (the real trainer and algorithm, a few
/// steps on the real synthetic corpus) and batched plain-decoding throughput for several Llama shapes, in tokens per
/// CPU-second (this process's user + system time, so other people's load on a shared machine does not distort it) and
/// as a fraction of the fp32 matmul peak measured the same way. Run with one thread for a clean per-core figure.
/// </summary>
public sealed class QuickstartBench : IBenchmark
{
    public string Name => "quickstart";
    public string Description => "quickstart target shapes: causal-LM training and decoding tokens per CPU-second vs the fp32 matmul peak";

    public int Run(string[] args)
    {
        string shapes = "8:256:688:4:2,6:192:512:4:2,4:192:512:4:2,4:128:384:4:2";
        int steps = 6, seq = 2048, examples = 3000, threads = 1;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--shapes": shapes = args[++i]; break;
                case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--seq": seq = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--examples": examples = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                default:
                    Console.Error.WriteLine("usage: quickstart [--shapes L:H:I:heads:kv,...] [--steps N] [--seq T] [--examples N] [--threads N]");
                    return 1;
            }
        }
        torch.set_num_threads(threads);
        double peak = CpuPeak(ScalarType.Float32);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"fp32 matmul peak (1024×1024, CPU time): {peak:F1} GFLOP/s with {threads} thread(s)"));

        string root = Path.Combine(Path.GetTempPath(), "qs-bench-" + Environment.ProcessId);
        try
        {
            var profile = QuickstartProfile.Default with { TrainExamples = examples };
            QuickstartPipeline.Run(new QuickstartOptions { OutputDirectory = root, Profile = profile, StopAfter = "target_data", Threads = threads });
            var paths = new QuickstartPipeline.Layout(root);
            Console.WriteLine("shape (layers:hidden:inter:heads:kv)  params   train tok/CPU-s  train MFU   decode tok/CPU-s (batch 32)");
            foreach (var spec in shapes.Split(',', StringSplitOptions.RemoveEmptyEntries))
            {
                var f = spec.Split(':').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
                var (train, flopsPerToken, parameters, modelDir) = Train(paths, f, steps, seq, threads);
                double decode = Decode(paths, modelDir);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{spec,-36} {parameters / 1e6,5:F2}M  {train,14:F0}  {100 * train * flopsPerToken / 1e9 / peak,7:F1}%   {decode,10:F0}"));
            }
        }
        finally
        {
            if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        }
        return 0;
    }

    static (double TokensPerCpuSecond, double FlopsPerToken, long Parameters, string ModelDir) Train(QuickstartPipeline.Layout paths, int[] f, int steps, int seq, int threads)
    {
        string name = string.Join("_", f);
        string init = Path.Combine(paths.Root, "init_" + name);
        Directory.CreateDirectory(init);
        foreach (var file in Directory.GetFiles(paths.TargetInit)) File.Copy(file, Path.Combine(init, Path.GetFileName(file)), true);
        var cfg = HfConfig.Load(init);
        cfg.NumHiddenLayers = f[0];
        cfg.HiddenSize = f[1];
        cfg.IntermediateSize = f[2];
        cfg.NumAttentionHeads = f[3];
        cfg.NumKeyValueHeads = f[4];
        cfg.HeadDim = f[1] / f[3];
        cfg.Save(Path.Combine(init, "config.json"));
        var dc = cfg.ToDecoderConfig();
        long parameters = 2L * dc.VocabSize * dc.HiddenSize + dc.NumLayers * (2L * dc.HiddenSize * dc.NumHeads * dc.HeadDim
            + 2L * dc.HiddenSize * dc.NumKvHeads * dc.HeadDim + 3L * dc.HiddenSize * dc.IntermediateSize);
        string save = Path.Combine(paths.Root, "train_" + name);
        var cli = new Dictionary<string, object?>
        {
            ["speculator_type"] = "causal_lm",
            ["model_config"] = Path.Combine(init, "config.json"),
            ["tokenizer"] = init,
            ["loss_on"] = "all",
            ["data_path"] = paths.TargetData,
            ["save_path"] = save,
            ["total_seq_len"] = (long)seq,
            ["max_steps"] = 1L,
            ["num_threads"] = (long)threads,
            ["prefetch_factor"] = 0L,
        };
        // One step first (allocations, first-touch), then the measured steps resumed from it.
        TrainerLauncher.Run(RunConfig.Resolve(cli, null), "bench");
        cli["max_steps"] = 1L + steps;
        var start = CpuClock.Now();
        TrainerLauncher.Run(RunConfig.Resolve(cli, null), "bench");
        var took = CpuClock.Now().Since(start);
        long nonEmbedding = parameters - (long)dc.VocabSize * dc.HiddenSize;
        double flops = 6.0 * nonEmbedding;
        string model = Directory.GetDirectories(save).Where(d => int.TryParse(Path.GetFileName(d), out _)).OrderBy(d => d).Last();
        return (steps * (double)seq / took.CpuSeconds, flops, parameters, model);
    }

    static double Decode(QuickstartPipeline.Layout paths, string modelDir)
    {
        var heldOut = QuickstartPipeline.ReadHeldOut(paths.HeldOutJsonl).Take(32).ToList();
        var renderer = ChatPromptRenderer.FromModelDirectory(modelDir);
        using var verifier = CausalLmVerifier.Load(modelDir, ScalarType.Float32, torch.CPU);
        var prompts = heldOut.Select(h => (IReadOnlyList<long>)renderer.RenderChat(new JsonArray(new JsonObject { ["role"] = "user", ["content"] = h.Prompt }), null)).ToList();
        var options = new GenerationOptions { MaxNewTokens = 48, BatchSize = 32, IgnoreEos = true };
        SpeculativeDecoder.GeneratePlain(verifier, prompts.Take(4).ToList(), options with { MaxNewTokens = 4 });
        var start = CpuClock.Now();
        var run = SpeculativeDecoder.GeneratePlain(verifier, prompts, options);
        var took = CpuClock.Now().Since(start);
        return run.Timings.GeneratedTokens / took.CpuSeconds;
    }

    /// <summary>fp32 matmul GFLOP/s per CPU-second (best of several 1024×1024 products).</summary>
    static double CpuPeak(ScalarType dtype, int n = 1024, int reps = 6)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n).to(dtype);
        var b = randn(n, n).to(dtype);
        a.mm(b);
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var start = CpuClock.Now();
            for (int j = 0; j < 4; j++) a.mm(b).Dispose();
            best = Math.Min(best, CpuClock.Now().Since(start).CpuSeconds / 4);
        }
        return 2.0 * n * n * n / Math.Max(best, 1e-4) / 1e9;
    }
}
