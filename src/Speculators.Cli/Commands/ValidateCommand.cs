using System.CommandLine;
using System.Text.Encodings.Web;
using System.Text.Json;
using Speculators.Formats;
using Speculators.Hub;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators validate CKPT [--verifier M] [--json]</c>: checks a speculator checkpoint against vLLM's loader
/// rules and, given the verifier, the fit; prints every problem and the settings that need a newer vLLM;
/// exits 1 on any problem.
/// </summary>
public sealed class ValidateCommand : ICliVerb
{
    public Command Build()
    {
        var checkpoint = new Argument<string>("CKPT") { Description = "Speculator checkpoint directory (config.json + model.safetensors) or Hugging Face id." };
        var verifier = new Option<string?>("--verifier") { Description = "Verifier model (directory or Hugging Face id): also check hidden size, vocabulary and aux layer ids against it." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var cmd = new Command("validate",
            "Check a speculator checkpoint against vLLM's loader rules: required config fields, no top-level model_type, explicit " +
            "norm_before_residual, tensor names, shapes and dtypes, no extra tensors, consistent d2t/t2d; with --verifier also the fit. " +
            "Lists the settings that need a vLLM newer than the reference version. Exits 1 on any problem.")
        {
            checkpoint, verifier, json,
        };
        cmd.SetAction(pr =>
        {
            string dir = ModelLocator.Resolve(pr.GetValue(checkpoint)!);
            string? verifierDir = pr.GetValue(verifier) is string v ? ModelLocator.Resolve(v) : null;
            var report = SpeculatorsCheckpoint.Validate(dir, verifierDir);
            if (pr.GetValue(json))
                Console.Out.WriteLine(report.ToJson().ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            else
                Console.Out.Write(report.ToText());
            return report.IsValid ? 0 : 1;
        });
        return cmd;
    }
}
