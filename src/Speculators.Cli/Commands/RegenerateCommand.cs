using System.CommandLine;
using Speculators;
using Speculators.Data;
using static TorchSharp.torch;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators regenerate --model M --data D --output FILE.jsonl [--max-new-tokens N] [--temperature T] [--batch-size B]
/// [--max-samples N] [--seed S]</c>: rewrites each conversation's last assistant turn with the model itself (response
/// regeneration), so a draft trained on the result learns what the target actually says. Resumable.
/// </summary>
public sealed class RegenerateCommand : ICliVerb
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "The model that writes the answers (directory or Hugging Face id); its chat template renders the prompts.", Required = true };
        var data = new Option<string>("--data") { Description = "Conversations or prompts (.jsonl/.json/.parquet/.arrow file or directory): conversations/messages rows, {\"prompt\": ...}, {\"turns\": [...]}, or {\"input_ids\": [...]}.", Required = true };
        var output = new Option<string>("--output") { Description = "Output JSON Lines file; rows already there are kept and the run continues after them.", Required = true };
        var maxNew = new Option<int>("--max-new-tokens") { Description = "Tokens to generate per answer at most.", DefaultValueFactory = _ => 512 };
        var temperature = new Option<double>("--temperature") { Description = "0 = greedy; > 0 samples.", DefaultValueFactory = _ => 0.0 };
        var batch = new Option<int>("--batch-size") { Description = "Sequences decoded together.", DefaultValueFactory = _ => 16 };
        var maxSamples = new Option<int?>("--max-samples") { Description = "Regenerate only the first N usable rows." };
        var seed = new Option<long>("--seed") { Description = "Sampling seed.", DefaultValueFactory = _ => 0L };
        var device = new Option<string>("--device") { Description = "cpu, cuda or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var dtype = new Option<string>("--dtype") { Description = "Model dtype: float32 or bfloat16.", DefaultValueFactory = _ => "float32" };
        var tokenized = new Option<bool>("--tokenized") { Description = "Also write input_ids and loss_mask (prompt 0, generated tokens 1); prepare-data then passes the rows through unchanged." };
        var overwrite = new Option<bool>("--overwrite") { Description = "Start over instead of continuing after the rows already in --output." };
        var cmd = new Command("regenerate",
            "Regenerate the assistant answers of a dataset with the target model (as production drafts are trained): each row's prompt (the turns before " +
            "its last assistant turn) is rendered with the model's chat template and answered by the batched generator. Writes {id, conversations, metadata} rows.");
        foreach (var o in new Option[] { model, data, output, maxNew, temperature, batch, maxSamples, seed, device, dtype, tokenized, overwrite }) cmd.Options.Add(o);
        cmd.SetAction(pr =>
        {
            var dt = pr.GetValue(dtype)!.ToLowerInvariant() switch
            {
                "float32" or "fp32" => ScalarType.Float32,
                "bfloat16" or "bf16" => ScalarType.BFloat16,
                var other => throw new SpeculatorsException($"--dtype {other}: expected float32 or bfloat16 (never float16 on CPU)."),
            };
            var summary = Regeneration.Run(new RegenerationOptions
            {
                Model = pr.GetValue(model)!,
                Data = pr.GetValue(data)!,
                Output = pr.GetValue(output)!,
                MaxNewTokens = pr.GetValue(maxNew),
                Temperature = pr.GetValue(temperature),
                BatchSize = pr.GetValue(batch),
                MaxSamples = pr.GetValue(maxSamples),
                Seed = pr.GetValue(seed),
                Device = pr.GetValue(device)!,
                DType = dt,
                Tokenized = pr.GetValue(tokenized),
                Overwrite = pr.GetValue(overwrite),
            });
            Console.Out.WriteLine(summary.Format());
            return 0;
        });
        return cmd;
    }
}
