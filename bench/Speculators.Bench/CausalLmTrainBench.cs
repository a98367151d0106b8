using System.Diagnostics;
using System.Globalization;
using Speculators.Algorithms.CausalLm;
using Speculators.Data;
using Speculators.Distributed;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Training throughput of the causal-LM algorithm through the real trainer (prefetch, forward, backward, clipping,
/// AdamW, schedule) on the quickstart's target shape: H=256, 8 layers, 4 query / 2 KV heads, intermediate 768,
/// vocabulary 2048 (≈ 6.3M non-embedding parameters), packed rows of chat-length documents. Prints tokens/s, the time
/// for 1M tokens, and model FLOP/s as a fraction of the libtorch matmul peak measured in the same run.
/// Options: --steps N (timed steps, default 12), --seq L (tokens per row, default 2048), --dtype float32|bfloat16,
/// --threads N.
/// </summary>
public sealed class CausalLmTrainBench : IBenchmark
{
    public string Name => "causal-lm-train";
    public string Description => "causal-LM training tokens/s on the quickstart target shape (ratio to matmul peak)";

    public int Run(string[] args)
    {
        int steps = 12, seq = 2048;
        string dtypeName = "float32";
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--steps": steps = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--seq": seq = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--dtype": dtypeName = args[++i]; break;
                case "--threads": torch.set_num_threads(int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
            }
        }
        var compute = Precision.ParseComputeDtype(dtypeName, DeviceType.CPU, "--dtype");
        string root = Path.Combine(Path.GetTempPath(), "causal-lm-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        try
        {
            const int vocab = 2048;
            var dc = new DecoderConfig
            {
                VocabSize = vocab, HiddenSize = 256, IntermediateSize = 768, NumLayers = 8, NumHeads = 4, NumKvHeads = 2, HeadDim = 64,
                MaxPositionEmbeddings = 4096, Rope = new RopeConfig { HeadDim = 64, MaxPositionEmbeddings = 4096 },
            };
            HfConfig.FromDecoder(dc).Save(Path.Combine(root, "config.json"));
            using (var w = new PreparedDatasetWriter(Path.Combine(root, "data")))
            {
                var rnd = new Random(1);
                int rows = (steps + 6) * seq / 200 + 20;
                for (int r = 0; r < rows; r++)
                {
                    int len = rnd.Next(64, 400);
                    var ids = Enumerable.Range(0, len).Select(_ => (long)rnd.Next(vocab)).ToArray();
                    w.Append(ids, ids.Select((_, k) => k < len / 3 ? 0L : 1L).ToArray());
                }
                w.Complete();
            }
            var options = new TrainOptions
            {
                SpeculatorType = "causal_lm", DataPath = Path.Combine(root, "data"), SavePath = Path.Combine(root, "ckpt"),
                TotalSeqLen = seq, Epochs = 1, MaxSteps = steps + 3, TrainDataRatio = 1.0, CheckpointFreq = 1000, SaveBest = true,
                CausalLm = new CausalLmTrainingOptions { ModelConfig = root, LossOn = "all" },
            };
            var context = new TrainingContext { Options = options, Device = torch.CPU, ComputeDtype = compute, Group = SingleProcessGroup.Instance };
            using var algo = CausalLmAlgorithm.Create(options.CausalLm, context);
            var trainer = new Trainer(algo, context);
            var clock = new Stopwatch();
            long tokens = 0;
            int done = 0;
            trainer.AfterStep = s =>
            {
                done++;
                if (done == 3) clock.Start(); // warm-up: allocator, optimizer state
            };
            long rowTokens = 0;
            var sampler = new MultipackSampler(algo.RowLengths, seq);
            sampler.SetEpoch(0);
            var plan = sampler.Plan(0);
            for (int sIdx = 3; sIdx < Math.Min(plan.StepCount, steps + 3); sIdx++) rowTokens += plan.Batch(sIdx, 0).Sum(r => Math.Min(algo.RowLengths[r], seq));
            Speculators.Util.Log.Quiet = true;
            trainer.Run();
            Speculators.Util.Log.Quiet = false;
            clock.Stop();
            tokens = rowTokens;
            double tps = tokens / clock.Elapsed.TotalSeconds;
            double modelFlops = tps * algo.TrainingFlopsPerToken;
            double peak = MatmulPeak.Measure(compute == ScalarType.BFloat16 ? ScalarType.BFloat16 : ScalarType.Float32) * 1e9;
            long nonEmb = algo.TrainableParameters.Where(p => !p.Name.Contains("embed_tokens")).Sum(p => p.Tensor.numel());
            Console.WriteLine($"causal-LM train, H=256 L=8 heads 4/2 I=768 V={vocab} ({nonEmb / 1e6:F2}M non-embedding params), rows of {seq} tokens, " +
                              $"{Precision.Name(compute)} compute, {torch.get_num_threads()} threads, {steps} timed steps");
            Console.WriteLine($"  tokens/s            {tps:F0}");
            Console.WriteLine($"  1M tokens           {1e6 / tps / 60:F1} min");
            Console.WriteLine($"  model GFLOP/s       {modelFlops / 1e9:F1} ({algo.TrainingFlopsPerToken / 1e6:F1} MFLOP/token)");
            Console.WriteLine($"  ratio to matmul peak {modelFlops / peak:F3} (peak {peak / 1e9:F1} GFLOP/s)");
            return 0;
        }
        finally
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        }
    }
}
