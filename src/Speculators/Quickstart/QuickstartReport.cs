using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Reporting;
using Speculators.Util;

namespace Speculators.Quickstart;

/// <summary>
/// The quickstart's result: stage times, the target's quality, the draft's acceptance and speed, losslessness, where the
/// checkpoint is and how vLLM serves it. <see cref="Json"/> is <c>quickstart_report.json</c>; <see cref="Table"/> is what
/// the verb prints.
/// </summary>
public sealed class QuickstartReport
{
    static readonly CultureInfo Ci = CultureInfo.InvariantCulture;

    public required JsonObject Json { get; init; }
    public required IReadOnlyList<StageResult> Stages { get; init; }
    public required QuickstartPipeline.Layout Paths { get; init; }

    public double TargetAccuracy => Num(Json["target"]?["accuracy"]);
    public double TargetRepetitionRate => Num(Json["target"]?["repetition_rate"]);
    public double AcceptanceLength => Num(Json["draft"]?["acceptance_length"]);
    public IReadOnlyList<double> PerPositionAcceptance =>
        (Json["draft"]?["per_position_acceptance"] as JsonArray)?.Select(Num).ToList() ?? [];

    /// <summary>A JSON number as double (NaN when absent or not a number), whatever CLR type holds it.</summary>
    public static double Num(JsonNode? n) =>
        n is JsonValue v && v.GetValueKind() == System.Text.Json.JsonValueKind.Number ? double.Parse(v.ToJsonString(), CultureInfo.InvariantCulture) : double.NaN;
    public bool? Lossless => Json["draft"]?["lossless"] is JsonValue v && v.TryGetValue(out bool b) ? b : null;
    public string Checkpoint => Json["checkpoint"]!.GetValue<string>();

    public static QuickstartReport Build(QuickstartOptions o, QuickstartPipeline.Layout paths, IReadOnlyList<StageResult> stages, CpuClock thisRun)
    {
        JsonObject S(string name) => stages.First(s => s.Name == name).Summary;
        var target = S("target_eval");
        var corpus = S("corpus");
        var eval = S("evaluate");
        var targetTrain = S("target_train");
        var draftTrain = S("draft_train");
        string ckpt = paths.CheckpointBest;
        double kk = Num(eval["num_speculative_tokens"]);
        int k = double.IsFinite(kk) ? (int)kk : o.Profile.NumSpeculativeTokens;
        var json = new JsonObject
        {
            ["profile"] = o.Profile.Name,
            ["device"] = o.Device,
            ["seed"] = o.Seed,
            ["command"] = o.CommandLine,
            ["output_directory"] = paths.Root,
            ["stages"] = new JsonArray(stages.Select(s => (JsonNode)new JsonObject
            {
                ["name"] = s.Name,
                ["title"] = s.Title,
                ["wall_seconds"] = Math.Round(s.WallSeconds, 2),
                ["cpu_seconds"] = Math.Round(s.CpuSeconds, 2),
                ["cached"] = s.Cached,
            }).ToArray()),
            ["all_stages_wall_seconds"] = Math.Round(stages.Sum(s => s.WallSeconds), 2),
            ["all_stages_cpu_seconds"] = Math.Round(stages.Sum(s => s.CpuSeconds), 2),
            ["this_run_wall_seconds"] = Math.Round(thisRun.WallSeconds, 2),
            ["this_run_cpu_seconds"] = Math.Round(thisRun.CpuSeconds, 2),
            ["target"] = new JsonObject
            {
                ["path"] = paths.Target,
                ["parameters"] = corpus["target_parameters"]?.DeepClone(),
                ["vocab_size"] = corpus["vocab_size"]?.DeepClone(),
                ["training_steps"] = targetTrain["steps"]?.DeepClone(),
                ["val_loss"] = targetTrain["val_loss"]?.DeepClone(),
                ["accuracy"] = target["accuracy"]?.DeepClone(),
                ["correct"] = target["correct"]?.DeepClone(),
                ["prompts"] = target["prompts"]?.DeepClone(),
                ["repetition_rate"] = target["repetition_rate"]?.DeepClone(),
                ["per_task"] = target["per_task"]?.DeepClone(),
            },
            ["draft"] = new JsonObject
            {
                ["training_steps"] = draftTrain["steps"]?.DeepClone(),
                ["validation"] = draftTrain["validation"]?.DeepClone(),
                ["num_speculative_tokens"] = k,
                ["acceptance_length"] = eval["acceptance_length"]?.DeepClone(),
                ["per_position_acceptance"] = eval["per_position_acceptance"]?.DeepClone(),
                ["draft_acceptance_rate"] = eval["draft_acceptance_rate"]?.DeepClone(),
                ["speedup"] = eval["speedup"]?.DeepClone(),
                ["theoretical_speedup"] = eval["theoretical_speedup"]?.DeepClone(),
                ["tokens_per_second_baseline"] = eval["tokens_per_second_baseline"]?.DeepClone(),
                ["tokens_per_second_speculative"] = eval["tokens_per_second_speculative"]?.DeepClone(),
                ["lossless"] = eval["lossless"]?.DeepClone(),
                ["identical_outputs"] = eval["identical_outputs"]?.DeepClone(),
                ["near_tie_divergences"] = eval["near_tie_divergences"]?.DeepClone(),
                ["num_prompts"] = eval["num_prompts"]?.DeepClone(),
            },
            ["checkpoint"] = ckpt,
            ["verifier"] = paths.Target,
            ["vllm_serve"] = $"vllm serve {ckpt}",
            ["vllm_serve_long"] = $"vllm serve {paths.Target} --speculative-config '{{\"model\": \"{ckpt}\", \"num_speculative_tokens\": {k}, \"method\": \"eagle3\"}}'",
            // The speed figures above come from this process, right after training, where small multi-threaded
            // matmuls run slower for a while (docs/quickstart.md); this command measures them on their own.
            ["evaluate_command"] = $"speculators evaluate --speculator {ckpt} --verifier {paths.Target} --prompts {paths.EvalPrompts} " +
                                   $"--num-speculative-tokens {k} --max-new-tokens {o.Profile.MaxNewTokens}",
            ["plots"] = new JsonObject
            {
                ["training_losses"] = Path.Combine(paths.Plots, "training_losses.png"),
                ["acceptance"] = Path.Combine(paths.Plots, "acceptance.png"),
            },
            ["files"] = new JsonObject
            {
                ["target_eval"] = paths.TargetEval,
                ["evaluation"] = paths.EvaluationJson,
                ["regenerated"] = paths.Regenerated,
            },
            ["versions"] = new JsonObject { ["product"] = ProductInfo.Version },
        };
        return new QuickstartReport { Json = json, Stages = stages, Paths = paths };
    }

    /// <summary>Training-loss curves (target and draft) and per-position acceptance.</summary>
    public void WritePlots(string directory)
    {
        Directory.CreateDirectory(directory);
        var series = new List<(string, IReadOnlyList<(double, double)>)>();
        foreach (var (stage, label) in new[] { ("target_train", "target (causal LM)"), ("draft_train", "Eagle-3 draft (TTT, summed over steps)") })
        {
            var s = Stages.First(x => x.Name == stage).Summary;
            if (s["train_losses"] is JsonArray arr)
                series.Add((label, arr.Select(x => (Num(x![0]), Num(x[1]))).ToList()));
        }
        if (series.Any(s => s.Item2.Count > 0))
            LossPlot.Save(Json["plots"]!["training_losses"]!.GetValue<string>(), "quickstart training losses", series);
        var perPos = PerPositionAcceptance;
        if (perPos.Count > 0)
            AcceptancePlot.Save(Json["plots"]!["acceptance"]!.GetValue<string>(), perPos, "per-position acceptance (held-out prompts, temperature 0)",
                string.Create(Ci, $"acceptance length {AcceptanceLength:F2} with k = {perPos.Count}"));
    }

    static string F(double? v, string fmt = "F2") => v is double d && double.IsFinite(d) ? d.ToString(fmt, Ci) : "n/a";

    static string F(JsonNode? n, string fmt = "F2") => F(Num(n), fmt);

    /// <summary>The compact table the verb prints.</summary>
    public string Table()
    {
        var rows = new List<(string, string)>();
        foreach (var s in Stages)
            rows.Add(($"stage: {s.Title}", string.Create(Ci, $"{Progress.FormatTime(TimeSpan.FromSeconds(s.WallSeconds))} wall, {Progress.FormatTime(TimeSpan.FromSeconds(s.CpuSeconds))} CPU") + (s.Cached ? " (earlier run)" : "")));
        rows.Add(("total (all stages)", string.Create(Ci, $"{Progress.FormatTime(TimeSpan.FromSeconds(Num(Json["all_stages_wall_seconds"])))} wall, {Progress.FormatTime(TimeSpan.FromSeconds(Num(Json["all_stages_cpu_seconds"])))} CPU")));
        var t = Json["target"]!;
        rows.Add(("target", $"Llama, {t["parameters"]} parameters, vocabulary {t["vocab_size"]}"));
        rows.Add(("target accuracy (held-out)", $"{F(Num(t["accuracy"]) * 100, "F1")}% ({t["correct"]}/{t["prompts"]})"));
        rows.Add(("target repetition rate", $"{F(Num(t["repetition_rate"]) * 100, "F1")}% (loops or unfinished answers)"));
        var d = Json["draft"]!;
        rows.Add(("acceptance length", $"{F(d["acceptance_length"])} with k = {d["num_speculative_tokens"]} (max {Num(d["num_speculative_tokens"]) + 1})"));
        rows.Add(("per-position acceptance", d["per_position_acceptance"] is JsonArray pp ? string.Join(", ", pp.Select(x => F(x, "F3"))) : "n/a"));
        rows.Add(("speedup vs plain decoding", $"{F(d["speedup"])}x (ceiling {F(d["theoretical_speedup"])}x)"));
        rows.Add(("plain / speculative tokens/s", $"{F(d["tokens_per_second_baseline"], "F1")} / {F(d["tokens_per_second_speculative"], "F1")}"));
        string lossless = d["lossless"] is JsonValue lv && lv.TryGetValue(out bool lb)
            ? (lb ? "yes" : "NO") + $" ({d["identical_outputs"]}/{d["num_prompts"]} identical, {d["near_tie_divergences"]} near-tie)"
            : "n/a";
        rows.Add(("lossless (greedy)", lossless));
        rows.Add(("checkpoint", Checkpoint));
        rows.Add(("plots", Json["plots"]!["training_losses"]!.GetValue<string>() + ", " + Json["plots"]!["acceptance"]!.GetValue<string>()));
        rows.Add(("report", Paths.ReportJson));
        var sb = new StringBuilder();
        sb.Append(TextTable.Render("speculators quickstart", rows));
        sb.AppendLine("serve it with vLLM (the verifier path is in the checkpoint's config.json):");
        sb.AppendLine("  " + Json["vllm_serve"]!.GetValue<string>());
        sb.AppendLine("  " + Json["vllm_serve_long"]!.GetValue<string>());
        sb.AppendLine("measure the speed on its own (a fresh process; this run's figures follow training in the same process):");
        sb.AppendLine("  " + Json["evaluate_command"]!.GetValue<string>());
        return sb.ToString();
    }
}
