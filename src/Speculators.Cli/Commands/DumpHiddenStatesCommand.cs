using System.CommandLine;
using System.Globalization;
using Speculators.Formats;
using Speculators.Hub;
using Speculators.Modeling;
using Speculators.Text;
using Speculators.Util;
using TorchSharp;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators dump-hidden-states</c>: run the verifier on one prompt and write the captured hidden
/// states, token ids and logits to a safetensors file (the debugging tool for "my hidden states look wrong").
/// </summary>
public sealed class DumpHiddenStatesCommand : ICliVerb
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "Model directory or Hugging Face id.", Required = true };
        var prompt = new Option<string?>("--prompt") { Description = "Text to tokenize with the model's tokenizer (no special tokens added)." };
        var inputIds = new Option<string?>("--input-ids") { Description = "Comma-separated token ids, e.g. 1,2,3." };
        var layerIds = new Option<string?>("--layer-ids")
        {
            Description = "Comma-separated capture ids in [0, N]: 0 = embeddings, k = input of layer k, N = last layer output before the final norm. " +
                          "Default: the Eagle-3 ids [2, N//2, N-3] plus N.",
        };
        var dtype = new Option<string>("--dtype") { Description = "Compute dtype: float32 or bfloat16.", DefaultValueFactory = _ => "float32" };
        var device = new Option<string>("--device") { Description = "cpu or cuda:N.", DefaultValueFactory = _ => "cpu" };
        var output = new Option<string>("--output") { Description = "Output .safetensors file.", Required = true };
        var cmd = new Command("dump-hidden-states",
            "Run the model on one prompt and write hidden_states [T, A, H] (capture ids ascending), token_ids [T] int64 and logits [T, V] " +
            "float32 to a safetensors file.")
        {
            model, prompt, inputIds, layerIds, dtype, device, output,
        };
        cmd.SetAction(pr =>
        {
            string? text = pr.GetValue(prompt);
            string? idsText = pr.GetValue(inputIds);
            if ((text == null) == (idsText == null))
                throw new SpeculatorsException("give exactly one of --prompt TEXT or --input-ids 1,2,3.");
            var scalar = ParseDType(pr.GetValue(dtype)!);
            var dev = Devices.Parse(pr.GetValue(device));
            string outPath = pr.GetValue(output)!;
            if (!outPath.EndsWith(".safetensors", StringComparison.Ordinal))
                throw new SpeculatorsException($"--output {outPath}: expected a .safetensors file name.");
            string dir = ModelLocator.Resolve(pr.GetValue(model)!);

            // Everything that can be checked from config.json is checked before any weight is read.
            var config = HfConfig.Load(dir).ToDecoderConfig();
            string? layerText = pr.GetValue(layerIds);
            int[] ids = layerText != null
                ? AuxLayerIds.NormalizeCapture(AuxLayerIds.Parse(layerText, "--layer-ids"), config.NumLayers, "--layer-ids")
                : AuxLayerIds.DefaultDump(config.NumLayers);
            long[] tokens = idsText != null ? ParseTokenIds(idsText, config.VocabSize) : Tokenize(dir, text!);

            Log.Info($"loading {config.Family.Architecture()} from {dir} ({pr.GetValue(dtype)}, {dev})");
            using var m = CausalLM.LoadFromDirectory(dir, scalar, dev);
            var result = HiddenStateDump.Run(m, tokens, ids, outPath);
            Console.Out.Write(HiddenStateDump.Describe(result, outPath));
            return 0;
        });
        return cmd;
    }

    internal static torch.ScalarType ParseDType(string s) => s.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => torch.ScalarType.Float32,
        "bfloat16" or "bf16" => torch.ScalarType.BFloat16,
        _ => throw new SpeculatorsException($"--dtype {s}: expected float32 or bfloat16."),
    };

    internal static long[] ParseTokenIds(string text, int vocabSize)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new SpeculatorsException($"--input-ids: expected comma-separated token ids, found '{text}'.");
        var ids = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            if (!long.TryParse(parts[i], NumberStyles.Integer, CultureInfo.InvariantCulture, out ids[i]))
                throw new SpeculatorsException($"--input-ids: '{parts[i]}' is not an integer.");
            if (ids[i] < 0 || ids[i] >= vocabSize)
                throw new SpeculatorsException($"--input-ids: token id {ids[i]} is outside the vocabulary [0, {vocabSize}).");
        }
        return ids;
    }

    /// <summary>Tokenizes the prompt as given (special tokens in the text are recognized; the tokenizer's own BOS is added).</summary>
    static long[] Tokenize(string dir, string text)
    {
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            throw new SpeculatorsException($"--prompt needs {Path.Combine(dir, "tokenizer.json")}; pass --input-ids instead for a model without a tokenizer.");
        var ids = HfTokenizer.Load(dir).EncodeToIds(text, addSpecialTokens: true);
        if (ids.Length == 0) throw new SpeculatorsException("--prompt tokenized to no tokens; give a non-empty prompt.");
        return Array.ConvertAll(ids, i => (long)i);
    }
}
