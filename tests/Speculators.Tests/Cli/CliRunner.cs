namespace Speculators.Tests.Cli;

/// <summary>
/// Runs the real `speculators` CLI (same parser and verbs as the executable) in-process and
/// captures stdout/stderr. The torch test project runs tests serially, so swapping the
/// process-wide Console writers is safe here.
/// </summary>
public static class CliRunner
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        public override string ToString() => $"exit {ExitCode}\n--- stdout ---\n{Stdout}\n--- stderr ---\n{Stderr}";
    }

    static readonly object Gate = new();

    public static Result Run(params string[] args)
    {
        lock (Gate)
        {
            var oldOut = Console.Out;
            var oldErr = Console.Error;
            var oldLog = Speculators.Util.Log.Writer;
            var stdout = new StringWriter();
            var stderr = new StringWriter();
            Console.SetOut(stdout);
            Console.SetError(stderr);
            Speculators.Util.Log.Writer = stderr;
            try
            {
                int code = Speculators.Cli.Program.Run(args);
                return new Result(code, stdout.ToString(), stderr.ToString());
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldErr);
                Speculators.Util.Log.Writer = oldLog;
            }
        }
    }

    /// <summary>Runs and asserts exit code 0, returning the result.</summary>
    public static Result Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r;
    }
}
