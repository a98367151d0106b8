using System.CommandLine;
using Speculators.HiddenStates;
using Speculators.Hub;
using Speculators.Modeling;
using Speculators.Util;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators datagen --model M --data-path DIR [--output DIR/hidden_states] [--layer-ids 2,16,29] …</c>: runs the
/// verifier over the prepared rows and writes <c>hidden_states/hs_{i}.safetensors</c> (offline hidden-state store).
/// </summary>
public sealed class DatagenCommand : ICliVerb
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "Verifier: local model directory or Hugging Face id.", Required = true };
        var dataPath = new Option<string>("--data-path", "--preprocessed-data") { Description = "Prepared dataset directory (from prepare-data).", Required = true };
        var output = new Option<string?>("--output") { Description = "Store directory (default: DATA_PATH/hidden_states)." };
        var layerIds = new Option<string?>("--layer-ids")
        {
            Description = "Aux layer ids, ascending, in [1, N-1] (default: Eagle-3's 2,N//2,N-3). The final layer N is always added; do not list it.",
        };
        var maxSamples = new Option<int?>("--max-samples") { Description = "Use only the first N rows of the dataset (before the rank split)." };
        var batchTokens = new Option<long>("--batch-tokens") { Description = "Tokens per verifier prefill, padding included.", DefaultValueFactory = _ => 16384 };
        var dtype = new Option<string>("--dtype") { Description = "Storage dtype of the hidden states: bfloat16 or float32.", DefaultValueFactory = _ => "bfloat16" };
        var computeDtype = new Option<string>("--compute-dtype")
        {
            Description = "Verifier compute dtype: auto (the storage dtype where the device has native bf16, else float32), bfloat16 or float32.",
            DefaultValueFactory = _ => "auto",
        };
        var device = new Option<string>("--device") { Description = "cpu or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var worldSize = new Option<int>("--world-size") { Description = "Number of processes sharing the rows.", DefaultValueFactory = _ => 1 };
        var rank = new Option<int>("--rank") { Description = "This process's share, in [0, world-size).", DefaultValueFactory = _ => 0 };
        var validate = new Option<bool>("--validate", "--validate-outputs")
        {
            Description = "Fully check existing files (NaN/Inf included) and re-read every written file.",
        };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Longest row to run (default: the verifier's max_position_embeddings)." };
        var tooLong = new Option<string>("--too-long")
        {
            Description = "Rows longer than --max-tokens: skip (no file) or truncate (file holds the first max-tokens tokens).",
            DefaultValueFactory = _ => "skip",
        };
        tooLong.AcceptOnlyFromAmong("skip", "truncate");
        var ignoreDisk = new Option<bool>("--ignore-disk-space") { Description = "Start even if the disk looks too small for the estimated output." };

        var cmd = new Command("datagen",
            "Run the verifier over a prepared dataset and write its hidden states (aux layers + final layer) to hs_{i}.safetensors, " +
            "the layout vLLM's extractor writes. Resumable; splits rows across --world-size processes.")
        {
            model, dataPath, output, layerIds, maxSamples, batchTokens, dtype, computeDtype, device, worldSize, rank, validate, maxTokens, tooLong, ignoreDisk,
        };
        cmd.SetAction(pr =>
        {
            string modelArg = pr.GetValue(model)!;
            var scalar = HiddenStateSpec.ParseDType(pr.GetValue(dtype)!, "--dtype");
            HiddenStateSpec.CheckDType(scalar, "--dtype");
            if (scalar == TorchSharp.torch.ScalarType.Float16)
                throw new SpeculatorsException("--dtype float16 is not offered (about 1000x slower than bfloat16 on CPUs); use bfloat16 or float32.");
            var dev = Devices.Parse(pr.GetValue(device));
            string computeText = pr.GetValue(computeDtype)!;
            TorchSharp.torch.ScalarType? compute = computeText.Trim().Equals("auto", StringComparison.OrdinalIgnoreCase)
                ? null : HiddenStateSpec.ParseDType(computeText, "--compute-dtype");
            string? layerText = pr.GetValue(layerIds);
            var options = new DatagenOptions
            {
                ModelDirectory = ModelLocator.Resolve(modelArg),
                VerifierName = modelArg,
                DataPath = pr.GetValue(dataPath)!,
                OutputDirectory = pr.GetValue(output),
                AuxLayerIds = layerText == null ? null : AuxLayerIds.Parse(layerText, "--layer-ids"),
                MaxSamples = pr.GetValue(maxSamples),
                BatchTokens = pr.GetValue(batchTokens),
                DType = scalar,
                ComputeDType = compute,
                Device = dev,
                WorldSize = pr.GetValue(worldSize),
                Rank = pr.GetValue(rank),
                Validate = pr.GetValue(validate),
                MaxTokens = pr.GetValue(maxTokens),
                TooLong = pr.GetValue(tooLong) == "truncate" ? TooLongPolicy.Truncate : TooLongPolicy.Skip,
                IgnoreDiskSpace = pr.GetValue(ignoreDisk),
            };
            var summary = HiddenStateDatagen.Run(options);
            Console.Out.WriteLine(summary.Describe());
            return 0;
        });
        return cmd;
    }
}
