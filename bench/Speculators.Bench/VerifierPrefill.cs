using System.Diagnostics;
using System.Globalization;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Verifier prefill throughput (tokens/s) and achieved GFLOP/s as a fraction of the libtorch matmul peak
/// measured in the same run, for fp32 and bf16; plus KV-cache decode tokens/s after the prefill.
/// Default model: Llama-shaped, H=1024, 8 layers, 16 heads / 8 KV heads, MLP 2816, vocab 32000, T=1024.
/// </summary>
public sealed class VerifierPrefill : IBenchmark
{
    public string Name => "verifier-prefill";
    public string Description => "verifier prefill tokens/s and GFLOP/s ÷ matmul peak (fp32, bf16), and KV-cache decode tokens/s";

    public int Run(string[] args)
    {
        int layers = Arg(args, "--layers", 8), hidden = Arg(args, "--hidden", 1024), tokens = Arg(args, "--tokens", 1024);
        int reps = Arg(args, "--reps", 3), decodeSteps = Arg(args, "--decode", 32), vocab = Arg(args, "--vocab", 32000);
        int peakN = Arg(args, "--peak-n", 1024);
        int di = Array.IndexOf(args, "--dtypes");
        var dtypes = (di >= 0 && di + 1 < args.Length ? args[di + 1] : "float32,bfloat16").Split(',')
            .Select(d => d.Trim() switch
            {
                "float32" or "fp32" => ScalarType.Float32,
                "bfloat16" or "bf16" => ScalarType.BFloat16,
                _ => throw new ArgumentException($"--dtypes: unknown dtype '{d}' (float32, bfloat16)"),
            }).ToList();
        int heads = Math.Max(1, hidden / 64);
        var o = new TinyModelOptions
        {
            NumLayers = layers, HiddenSize = hidden, NumHeads = heads, NumKvHeads = Math.Max(1, heads / 2),
            IntermediateSize = (int)Math.Round(hidden * 2.75 / 64) * 64, VocabSize = vocab, MaxPositionEmbeddings = tokens + decodeSteps + 8,
            WriteTokenizer = false,
        };
        var dc = TinyModelFactory.BuildConfig(o);
        Console.WriteLine($"model: Llama-shaped, {layers} layers, H={hidden}, heads {heads}/{o.NumKvHeads}, MLP {o.IntermediateSize}, vocab {vocab}, " +
                          $"{dc.ParameterCount() / 1e6:F1}M params; prefill T={tokens}, batch 1; {torch.get_num_threads()} threads");
        double flops = PrefillFlops(dc, tokens);
        Console.WriteLine($"prefill work: {flops / 1e9:F1} GFLOP (matmuls incl. lm_head + causal attention)");
        foreach (var dtype in dtypes)
        {
            double peak = MatmulPeak.Measure(dtype, peakN, reps: 2);
            double linearPeak = LinearPeak(dtype, peakN);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{dtype,-9} baselines (n={peakN}): mm {peak:F1} GFLOP/s, F.linear (x·Wᵀ, the op the model uses) {linearPeak:F1} GFLOP/s"));
            using var model = TinyModelFactory.CreateInMemory(o, dtype);
            var ids = torch.randint(0, vocab, [1, tokens], ScalarType.Int64);
            using (model.Forward(ids, logits: LogitsSelection.Last)) { } // warm-up
            double best = double.MaxValue;
            for (int i = 0; i < reps; i++)
            {
                var sw = Stopwatch.StartNew();
                using var outp = model.Forward(ids, logits: LogitsSelection.All);
                best = Math.Min(best, sw.Elapsed.TotalSeconds);
            }
            double gflops = flops / best / 1e9;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{dtype,-9} prefill: {tokens / best,8:F0} tokens/s  {best * 1000,7:F0} ms  {gflops,6:F1} GFLOP/s = {gflops / peak:P0} of mm peak, {gflops / linearPeak:P0} of F.linear peak"));

            using var cache = model.CreateCache(1, tokens + decodeSteps);
            using (model.Forward(ids, cache: cache, logits: LogitsSelection.Last)) { }
            var next = torch.tensor(new long[] { 1 }).view(1, 1);
            var dsw = Stopwatch.StartNew();
            for (int s = 0; s < decodeSteps; s++)
            {
                using var step = model.Forward(next, cache: cache);
            }
            double perStep = dsw.Elapsed.TotalSeconds / decodeSteps;
            double decodeFlops = 2.0 * (dc.ParameterCount() - (long)vocab * hidden) + 4.0 * (tokens + decodeSteps / 2) * dc.NumHeads * dc.HeadDim * layers;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{dtype,-9} decode (KV cache, context {tokens}): {1 / perStep,6:F1} tokens/s  {perStep * 1000,6:F1} ms/token  {decodeFlops / perStep / 1e9 / peak:P1} of mm peak"));
        }
        return 0;
    }

    /// <summary>Best-of-2 GFLOP/s of F.linear on n×n inputs (libtorch takes a different kernel for Wᵀ than for a plain mm).</summary>
    static double LinearPeak(ScalarType dtype, int n)
    {
        using var scope = NewDisposeScope();
        var x = torch.randn(n, n).to(dtype);
        var w = torch.randn(n, n).to(dtype);
        torch.nn.functional.linear(x, w).Dispose();
        double best = double.MaxValue;
        for (int i = 0; i < 2; i++)
        {
            var sw = Stopwatch.StartNew();
            torch.nn.functional.linear(x, w).Dispose();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }

    /// <summary>FLOPs of a batch-1 prefill: 2·T per matrix parameter (layers + lm_head), plus causal QKᵀ and AV.</summary>
    static double PrefillFlops(DecoderConfig c, int t)
    {
        double h = c.HiddenSize, q = c.NumHeads * c.HeadDim, kv = c.NumKvHeads * c.HeadDim;
        double perLayer = h * q + 2 * h * kv + q * h + 3 * h * c.IntermediateSize;
        double matmul = 2.0 * t * (c.NumLayers * perLayer + h * c.VocabSize);
        double attention = 2.0 * 2.0 * (t * (t + 1) / 2.0) * c.NumHeads * c.HeadDim * c.NumLayers;
        return matmul + attention;
    }

    static int Arg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
