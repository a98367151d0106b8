namespace Speculators.Bench;

/// <summary>
/// Benchmarks print figures as ratios against a baseline measured in the same run
/// (e.g. achieved GFLOP/s ÷ libtorch matmul peak), because these machines are noisy.
/// Usage: speculators-bench &lt;name&gt; [options]; results and commands go to bench/RESULTS.md.
/// </summary>
public static class Program
{
    public static int Main(string[] args)
    {
        var benches = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(IBenchmark).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => (IBenchmark)Activator.CreateInstance(t)!)
            .OrderBy(b => b.Name, StringComparer.Ordinal).ToList();
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine("usage: speculators-bench <name> [options]\n\nbenchmarks:");
            foreach (var b in benches) Console.WriteLine($"  {b.Name,-22} {b.Description}");
            return args.Length == 0 ? 1 : 0;
        }
        var bench = benches.FirstOrDefault(b => b.Name == args[0]);
        if (bench == null)
        {
            Console.Error.WriteLine($"unknown benchmark '{args[0]}'; run with --help for the list");
            return 1;
        }
        return bench.Run(args[1..]);
    }
}

/// <summary>One benchmark; discovered by reflection so adding one never touches Program.cs.</summary>
public interface IBenchmark
{
    string Name { get; }
    string Description { get; }
    int Run(string[] args);
}
