using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>The baseline every other benchmark divides by: libtorch square-matmul GFLOP/s.</summary>
public sealed class MatmulPeak : IBenchmark
{
    public string Name => "matmul-peak";
    public string Description => "libtorch n×n matmul GFLOP/s in fp32 and bf16 (the baseline for ratios)";

    public int Run(string[] args)
    {
        foreach (var dt in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            Console.WriteLine($"{dt,-9} n=2048: {Measure(dt, 2048):F1} GFLOP/s ({torch.get_num_threads()} threads)");
        return 0;
    }

    /// <summary>Best-of-several GFLOP/s of an n×n by n×n matmul.</summary>
    public static double Measure(ScalarType dtype, int n = 2048, int reps = 5)
    {
        using var scope = NewDisposeScope();
        var a = randn(n, n).to(dtype);
        var b = randn(n, n).to(dtype);
        a.mm(b); // warm-up
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            using var c = a.mm(b);
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return 2.0 * n * n * n / best / 1e9;
    }
}
