using System.Globalization;
using System.Text;
using Speculators.Formats;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Modeling;

/// <summary>
/// One prompt through the verifier with hidden-state capture, written as safetensors:
/// <c>hidden_states</c> [T, A, H] (model dtype, ids ascending), <c>token_ids</c> [T] int64 and
/// <c>logits</c> [T, V] float32. The layout of <c>hidden_states</c>/<c>token_ids</c> is the one data
/// generation writes (hs_{i}.safetensors), so the two can be compared directly.
/// </summary>
public static class HiddenStateDump
{
    /// <summary>Per-capture statistics for a quick look at what was captured.</summary>
    public sealed record LayerStats(int LayerId, double Rms, double AbsMax, double Mean);

    public sealed record Result(int[] LayerIds, long Tokens, long HiddenSize, long VocabSize, IReadOnlyList<LayerStats> Stats);

    /// <summary>Runs <paramref name="model"/> on <paramref name="tokenIds"/> and writes <paramref name="outputPath"/> atomically.</summary>
    public static Result Run(CausalLM model, IReadOnlyList<long> tokenIds, IReadOnlyList<int> layerIds, string outputPath)
    {
        if (tokenIds.Count == 0) throw new SpeculatorsException("no input tokens to run.");
        var ids = AuxLayerIds.NormalizeCapture(layerIds, model.Config.NumLayers, "--layer-ids");
        using var scope = NewDisposeScope();
        var input = torch.tensor(tokenIds.ToArray(), device: model.Device).unsqueeze(0);
        using var output = model.Forward(input, captureLayerIds: ids);
        var hidden = output.HiddenStates![0].cpu().contiguous();      // [T, A, H]
        var logits = output.Logits![0].to(ScalarType.Float32).cpu(); // [T, V]
        var tokens = input[0].cpu();
        var stats = new List<LayerStats>();
        for (int a = 0; a < ids.Length; a++)
        {
            var h = hidden.select(1, a).to(ScalarType.Float64);
            stats.Add(new LayerStats(ids[a], h.pow(2).mean().sqrt().item<double>(), h.abs().max().item<double>(), h.mean().item<double>()));
        }
        var meta = new Dictionary<string, string>
        {
            ["layer_ids"] = "[" + string.Join(", ", ids) + "]",
            ["model"] = model.SourceDirectory ?? "",
            ["architecture"] = model.Config.Family.Architecture(),
            ["dtype"] = TinyModelFactory.DTypeName(model.DType),
        };
        SafeTensorsWriter.Save(outputPath, [
            KeyValuePair.Create("hidden_states", hidden),
            KeyValuePair.Create("token_ids", tokens),
            KeyValuePair.Create("logits", logits),
        ], meta);
        return new Result(ids, hidden.shape[0], hidden.shape[2], logits.shape[1], stats);
    }

    /// <summary>A small table of the per-layer statistics.</summary>
    public static string Describe(Result r, string outputPath)
    {
        var s = new StringBuilder();
        s.AppendLine(CultureInfo.InvariantCulture,
            $"wrote {outputPath}: hidden_states [{r.Tokens}, {r.LayerIds.Length}, {r.HiddenSize}], token_ids [{r.Tokens}], logits [{r.Tokens}, {r.VocabSize}]");
        s.AppendLine("layer id        rms     absmax       mean");
        foreach (var st in r.Stats)
            s.AppendLine(CultureInfo.InvariantCulture, $"{st.LayerId,8} {st.Rms,10:G4} {st.AbsMax,10:G4} {st.Mean,10:G4}");
        return s.ToString();
    }
}
