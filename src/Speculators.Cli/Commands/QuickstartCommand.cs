using System.CommandLine;
using Speculators;
using Speculators.Quickstart;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators quickstart [--output DIR] [--device cpu|cuda:0] [--force]</c>: the whole pipeline offline on a built-in
/// task — synthetic corpus and tokenizer, a small target trained on it, its answers regenerated, prepare-data, datagen,
/// an Eagle-3 draft, validate, evaluate — then a report. A re-run resumes and skips completed stages.
/// </summary>
public sealed class QuickstartCommand : ICliVerb
{
    public Command Build()
    {
        var output = new Option<string>("--output") { Description = "Directory for everything the run writes (a re-run resumes here).", DefaultValueFactory = _ => "quickstart" };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var force = new Option<bool>("--force") { Description = "Redo every stage, ignoring what an earlier run completed." };
        var seed = new Option<long>("--seed") { Description = "Seed of the corpus, the initializations and the shuffles.", DefaultValueFactory = _ => 42L };
        var profile = new Option<string>("--profile") { Description = "Run size: default (the calibrated run), or tiny (the shortened end-to-end test's sizes: seconds, not a useful model).", DefaultValueFactory = _ => "default" };
        var threads = new Option<int?>("--threads") { Description = "torch intra-op threads (default: all cores)." };
        var set = new Option<string[]>("--set") { Description = "Override a size of the profile, name=value (repeatable): train_examples, target_layers, target_hidden, target_epochs, draft_epochs, …", AllowMultipleArgumentsPerToken = false };
        var stopAfter = new Option<string?>("--stop-after") { Description = "Stop after this stage: corpus, target_data, target_train, target_eval, regenerate, draft_data, datagen, draft_train, validate, evaluate." };
        var cmd = new Command("quickstart",
            "Run the whole product offline on a built-in task: a synthetic chat corpus and its BPE tokenizer, a small Llama target trained on it, " +
            "its answers regenerated, then prepare-data, datagen, Eagle-3 training, validate and evaluate. Prints stage times, the target's held-out " +
            "accuracy and repetition, the draft's acceptance, speedup, losslessness, the checkpoint and the vllm serve command; writes plots and quickstart_report.json.");
        foreach (var o in new Option[] { output, device, force, seed, profile, threads, set, stopAfter }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            if (pr.GetValue(threads) is int t && t < 1) throw new SpeculatorsException($"--threads must be ≥ 1; got {t}.");
            var report = QuickstartPipeline.Run(new QuickstartOptions
            {
                OutputDirectory = pr.GetValue(output)!,
                Device = pr.GetValue(device)!,
                Force = pr.GetValue(force),
                Seed = pr.GetValue(seed),
                Profile = QuickstartProfile.Find(pr.GetValue(profile)!).With(pr.GetValue(set) ?? []),
                Threads = pr.GetValue(threads),
                StopAfter = pr.GetValue(stopAfter),
                CommandLine = "speculators " + string.Join(" ", pr.Tokens.Select(x => x.Value)),
            });
            if (report == null)
            {
                Console.Out.WriteLine($"stopped after stage {pr.GetValue(stopAfter)}; run again without --stop-after to continue.");
                return 0;
            }
            Console.Out.Write(report.Table());
            return 0;
        });
        return cmd;
    }
}
