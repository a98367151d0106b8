using System.CommandLine;
using System.Text.Json;
using System.Text.Encodings.Web;
using Speculators.Formats;
using Speculators.Hub;
using Speculators.Modeling;

namespace Speculators.Cli.Commands;

/// <summary><c>speculators inspect MODEL [--json]</c>: what a model is, from config.json and weight headers.</summary>
public sealed class InspectCommand : ICliVerb
{
    public Command Build()
    {
        var model = new Argument<string>("MODEL") { Description = "Model directory (config.json + safetensors) or Hugging Face id." };
        var json = new Option<bool>("--json") { Description = "Print a JSON object instead of a table." };
        var cmd = new Command("inspect",
            "Show a model's architecture, layers, hidden size, heads, head_dim, vocab, dtype, parameter count, RoPE type and " +
            "the default Eagle-3 auxiliary layer ids [2, N//2, N-3]; for a speculator checkpoint its algorithm, verifier, k, draft " +
            "vocabulary, flags and parameter counts. Reads config.json and the safetensors headers only.")
        {
            model, json,
        };
        cmd.SetAction(pr =>
        {
            string dir = ModelLocator.Resolve(pr.GetValue(model)!);
            var jsonOptions = new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
            if (SpeculatorsCheckpoint.IsSpeculatorCheckpoint(dir))
            {
                // A speculator (draft) checkpoint: algorithm, verifier, k, draft vocabulary, flags, parameter counts.
                var spec = SpeculatorsCheckpoint.Summarize(dir);
                if (pr.GetValue(json)) Console.Out.WriteLine(spec.Json.ToJsonString(jsonOptions));
                else Console.Out.Write(spec.ToText());
                return 0;
            }
            var summary = ModelSummary.FromDirectory(dir);
            if (pr.GetValue(json))
                Console.Out.WriteLine(summary.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            else
                Console.Out.Write(summary.ToText());
            return 0;
        });
        return cmd;
    }
}
