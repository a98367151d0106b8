using System.CommandLine;
using System.Reflection;
using Speculators;
using Speculators.Util;

namespace Speculators.Cli;

public static class Program
{
    /// <summary>Global flag: print stack traces for errors.</summary>
    public static readonly Option<bool> Verbose = new("--verbose") { Description = "Print full stack traces on errors.", Recursive = true };

    public static int Main(string[] args) => Run(args);

    /// <summary>Entry used by Main and by in-process CLI tests.</summary>
    public static int Run(string[] args)
    {
        var root = BuildRoot();
        ParseResult parsed = root.Parse(args);
        bool verbose = parsed.GetValue(Verbose);
        try
        {
            return parsed.Invoke(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (Exception e) when (Unwrap(e) is SpeculatorsException se && !verbose)
        {
            Console.Error.WriteLine("error: " + se.Message);
            return 1;
        }
        catch (Exception e) when (!verbose)
        {
            var inner = Unwrap(e);
            Console.Error.WriteLine($"error: {inner.GetType().Name}: {inner.Message}");
            Console.Error.WriteLine("(run with --verbose for the stack trace)");
            return 2;
        }
        catch (Exception e)
        {
            Console.Error.WriteLine(e.ToString());
            return Unwrap(e) is SpeculatorsException ? 1 : 2;
        }
    }

    static Exception Unwrap(Exception e)
    {
        while ((e is TargetInvocationException || e is AggregateException) && e.InnerException != null) e = e.InnerException;
        return e;
    }

    public static RootCommand BuildRoot()
    {
        var root = new RootCommand(
            $"{ProductInfo.NameAndVersion}: train speculative-decoding draft models (Eagle-3) for LLMs and save them " +
            "in the speculators format that `vllm serve <checkpoint>` loads directly.");
        root.Options.Add(Verbose);
        // System.CommandLine's built-in --version reports the entry assembly (the test host when
        // run in-process); report the product version instead.
        foreach (var builtIn in root.Options.OfType<VersionOption>().ToList()) root.Options.Remove(builtIn);
        var version = new Option<bool>("--version") { Description = "Show version information" };
        root.Options.Add(version);
        root.SetAction(pr =>
        {
            if (pr.GetValue(version))
            {
                Console.Out.WriteLine(ProductInfo.Version);
                return 0;
            }
            return root.Parse("--help").Invoke();
        });
        var verbs = typeof(Program).Assembly.GetTypes()
            .Where(t => typeof(ICliVerb).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false })
            .Select(t => ((ICliVerb)Activator.CreateInstance(t)!).Build())
            .OrderBy(c => c.Name, StringComparer.Ordinal);
        foreach (var cmd in verbs) root.Subcommands.Add(cmd);
        return root;
    }
}
