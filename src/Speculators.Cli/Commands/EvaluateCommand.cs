using System.CommandLine;
using System.Globalization;
using System.Text.Json.Nodes;
using Speculators;
using Speculators.Inference;
using Speculators.Reporting;
using static TorchSharp.torch;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators evaluate --speculator CKPT [--verifier M] --prompts FILE.jsonl [--num-speculative-tokens K] [--max-new-tokens N]
/// [--temperature T] [--seed S] [--device cpu|cuda:0] [--output report.json] [--plot acceptance.png]</c>: speculative vs plain
/// decoding of the same prompts with vLLM's acceptance metrics, the speedup and the lossless check.
/// </summary>
public sealed class EvaluateCommand : ICliVerb
{
    public Command Build()
    {
        var speculator = new Option<string>("--speculator") { Description = "Speculator checkpoint (speculators format: ours, Python speculators', converted ones): directory or Hugging Face id.", Required = true };
        var verifier = new Option<string?>("--verifier") { Description = "Verifier model (directory or Hugging Face id). Default: the checkpoint's speculators_config.verifier.name_or_path (relative paths from the current directory, as vLLM)." };
        var prompts = new Option<string>("--prompts") { Description = "Prompt file (.jsonl/.json/.parquet): {\"turns\": [...]} (MT-bench), {\"messages\"|\"conversations\": [...]}, {\"prompt\": \"...\"} or {\"input_ids\": [...]} per row.", Required = true };
        var k = new Option<int?>("--num-speculative-tokens") { Description = "Drafts per verification step (default: the checkpoint's speculative_tokens)." };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate per prompt (turn) at most.", DefaultValueFactory = _ => 256 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy (with the lossless check); > 0 samples (vLLM's rejection sampler).", DefaultValueFactory = _ => 0.0 };
        var seed = new Option<long>("--seed") { Description = "Seed of the sampling generators.", DefaultValueFactory = _ => 0L };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string?>("--output") { Description = "Write the JSON report here." };
        var plot = new Option<string?>("--plot") { Description = "Write a PNG bar chart of per-position acceptance here." };
        var allTurns = new Option<bool>("--all-turns") { Description = "MT-bench rows: generate every turn, feeding the model's own answers back (default: first turn only)." };
        var batch = new Option<int>("--batch-size") { Description = "Prompts decoded together (1 = single-request latency, where speculation pays off).", DefaultValueFactory = _ => 1 };
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Generate max-new-tokens tokens regardless of EOS (as vLLM's ignore_eos)." };
        var dtype = new Option<string>("--dtype") { Description = "Verifier (and draft) dtype: float32 (the lossless check is defined for it) or bfloat16.", DefaultValueFactory = _ => "float32" };
        var limit = new Option<int?>("--limit") { Description = "Evaluate only the first N prompts." };
        var kwargs = new Option<string?>("--chat-template-kwargs") { Description = "JSON object of extra chat-template variables, e.g. '{\"enable_thinking\": false}'." };

        var cmd = new Command("evaluate", "Decode prompts with and without the speculator and report acceptance length, per-position acceptance, draft acceptance rate (vLLM's definitions), tokens/s both ways, speedup and its theoretical ceiling, and whether the output is lossless.");
        foreach (var o in new Option[] { speculator, verifier, prompts, k, maxNew, temperature, seed, device, output, plot, allTurns, batch, ignoreEos, dtype, limit, kwargs })
            cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            JsonObject? templateKwargs = null;
            if (pr.GetValue(kwargs) is string kw)
            {
                try
                {
                    templateKwargs = JsonNode.Parse(kw) as JsonObject ?? throw new SpeculatorsException("--chat-template-kwargs must be a JSON object.");
                }
                catch (System.Text.Json.JsonException e)
                {
                    throw new SpeculatorsException($"--chat-template-kwargs is not valid JSON: {e.Message}");
                }
            }
            var dt = pr.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "float32" or "fp32" => ScalarType.Float32,
                "bfloat16" or "bf16" => ScalarType.BFloat16,
                var other => throw new SpeculatorsException($"--dtype {other}: expected float32 or bfloat16 (never float16 on CPU)."),
            };
            string command = "speculators " + string.Join(" ", pr.Tokens.Select(t => t.Value.Any(char.IsWhiteSpace) ? "'" + t.Value + "'" : t.Value));
            var outcome = EvaluationRunner.Run(new EvaluationRequest
            {
                Speculator = pr.GetValue(speculator)!,
                Verifier = pr.GetValue(verifier),
                Prompts = pr.GetValue(prompts)!,
                NumSpeculativeTokens = pr.GetValue(k),
                MaxNewTokens = pr.GetValue(maxNew),
                Temperature = pr.GetValue(temperature),
                Seed = pr.GetValue(seed),
                Device = pr.GetValue(device)!,
                AllTurns = pr.GetValue(allTurns),
                BatchSize = pr.GetValue(batch),
                IgnoreEos = pr.GetValue(ignoreEos),
                VerifierDtype = dt,
                Limit = pr.GetValue(limit),
                ChatTemplateKwargs = templateKwargs,
                Command = command,
            });
            var r = outcome.Result;
            Console.Out.Write(EvaluationTable.Render(r));
            if (r.Lossless is { Lossless: false } l)
                foreach (var d in l.Divergences.Where(d => !d.NearTie).Take(5))
                    Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"divergence: prompt {d.Prompt} turn {d.Turn + 1} token {d.Position}: plain {d.BaselineToken} (top-2 gap {d.BaselineGap:G4}), speculative {d.SpeculativeToken} (gap {d.SpeculativeGap:G4})"));
            if (pr.GetValue(output) is string outPath)
            {
                EvaluationReport.Save(outPath, outcome.Report);
                Console.Out.WriteLine("wrote " + Path.GetFullPath(outPath));
            }
            if (pr.GetValue(plot) is string plotPath)
            {
                AcceptancePlot.Save(plotPath, r.Stats.PerPositionAcceptance,
                    $"per-position acceptance: {Path.GetFileName(outcome.SpeculatorDirectory.TrimEnd('/'))}",
                    string.Create(CultureInfo.InvariantCulture, $"acceptance length {r.Stats.MeanAcceptanceLength:F2}, k = {r.NumSpeculativeTokens}, temperature {r.Temperature:G}, {r.Pairs.Count} generations"));
                Console.Out.WriteLine("wrote " + Path.GetFullPath(plotPath));
            }
            return 0;
        });
        return cmd;
    }
}
