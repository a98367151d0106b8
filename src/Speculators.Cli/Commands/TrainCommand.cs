using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text;
using Speculators.Training;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators train</c>: the flags of speculators' train.py where they apply (<see cref="RunParameters"/>), a
/// <c>--config run.yaml</c> (keys under <c>train:</c>; flags win) and <c>--dump-config</c>. Parsing only; the run is
/// <see cref="TrainerLauncher.Run"/>.
/// </summary>
public sealed class TrainCommand : ICliVerb
{
    public Command Build()
    {
        string algorithms = string.Join("; ", TrainingAlgorithms.Available.Select(f => $"{f.Name}: {f.Description}"));
        var cmd = new Command("train",
            "Train a speculator (Eagle-3 draft) or a small causal LM on a prepared dataset. Checkpoints go to --save-path/{epoch}/ " +
            "(the servable model plus optimizer, scheduler and training state); a rerun resumes from the latest complete checkpoint, " +
            "mid-epoch too; Ctrl-C or SIGTERM writes a resumable checkpoint. Precedence: flags > --config YAML (keys under 'train:') > defaults. " +
            $"Algorithms (--speculator-type): {algorithms}.");
        var config = new Option<string?>("--config") { Description = "YAML file with options under a top-level 'train:' key (snake_case keys; flags override it).", HelpName = "FILE" };
        var dump = new Option<bool>("--dump-config") { Description = "Print the resolved configuration as YAML and exit." };
        cmd.Options.Add(config);
        cmd.Options.Add(dump);

        var options = new List<(RunParameter Param, Option<string[]> Option)>();
        foreach (var p in RunParameters.All)
        {
            // string[] everywhere: a repeated flag is allowed and the last one wins (as with argparse).
            var opt = new Option<string[]>(p.Flag, p.Aliases ?? [])
            {
                Arity = p.Kind == RunValueKind.Bool ? ArgumentArity.ZeroOrMore : ArgumentArity.OneOrMore,
                AllowMultipleArgumentsPerToken = p.Kind == RunValueKind.IntList,
                HelpName = p.Kind switch
                {
                    RunValueKind.Bool => "true|false",
                    RunValueKind.IntList => "IDS",
                    RunValueKind.Int => "INT",
                    RunValueKind.Double => "FLOAT",
                    _ => HelpNameOf(p),
                },
            };
            opt.Description = $"{p.Help} [default: {p.DefaultText}]";
            cmd.Options.Add(opt);
            options.Add((p, opt));
        }

        cmd.SetAction(pr =>
        {
            var cli = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var (p, opt) in options)
            {
                if (pr.GetResult(opt) is not OptionResult r || r.Implicit) continue;
                var tokens = r.Tokens.Select(t => t.Value).ToList();
                string source = p.Flag;
                cli[p.Key] = p.Kind == RunValueKind.IntList
                    ? p.ParseList(tokens, source)
                    : p.Parse(tokens.Count == 0 ? null : tokens[^1], source);
            }
            var resolved = RunConfig.Resolve(cli, pr.GetValue(config));
            if (pr.GetValue(dump))
            {
                Console.Out.Write(resolved.ToYaml(nonDefaultOnly: false));
                return 0;
            }
            using var signals = TrainingSignals.Register();
            var result = TrainerLauncher.Run(resolved, CommandLine(pr), signals.Token);
            var o = Console.Out;
            o.WriteLine(result.Reason switch
            {
                TrainStopReason.DryRun => $"dry run: model saved to {result.LastCheckpoint}",
                TrainStopReason.Interrupted => $"interrupted at global step {result.GlobalStep}; resumable checkpoint: {result.LastCheckpoint}",
                TrainStopReason.MaxSteps => $"stopped at --max-steps: global step {result.GlobalStep}",
                _ => $"training complete: global step {result.GlobalStep}",
            });
            if (result.Reason != TrainStopReason.DryRun && result.LastCheckpoint != null) o.WriteLine($"last checkpoint: {result.LastCheckpoint}");
            if (result.BestCheckpoint != null)
                o.WriteLine(string.Create(CultureInfo.InvariantCulture, $"best checkpoint: {result.BestCheckpoint} (val loss {result.BestValLoss:G6})"));
            if (result.SkippedRows > 0) o.WriteLine($"skipped rows (missing or invalid data): {result.SkippedRows}");
            return result.Reason == TrainStopReason.Interrupted ? 130 : 0;
        });
        return cmd;
    }

    static string HelpNameOf(RunParameter p) => p.Key switch
    {
        _ when p.Key.EndsWith("_path", StringComparison.Ordinal) || p.Key is "log_dir" or "tokenizer" or "model_config" or "draft_config" or "from_pretrained" => "PATH",
        "verifier_name_or_path" => "MODEL",
        _ => "TEXT",
    };

    /// <summary>The invocation as a shell-quoted line (<c>train_command.txt</c>).</summary>
    static string CommandLine(ParseResult pr)
    {
        var sb = new StringBuilder("speculators");
        foreach (var t in pr.Tokens) sb.Append(' ').Append(Quote(t.Value));
        return sb.ToString();
    }

    static string Quote(string s) =>
        s.Length > 0 && s.All(c => char.IsLetterOrDigit(c) || "-_./:=,@+%".Contains(c)) ? s : "'" + s.Replace("'", "'\\''") + "'";
}
