using System.CommandLine;
using System.Globalization;
using Speculators;
using Speculators.Data;
using Speculators.Hub;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators build-vocab-mapping --token-freq F --draft-vocab-size Vd (--target-vocab-size V | --model M) --output DIR</c>:
/// the draft vocabulary (speculators.md §5.2) as <c>d2t.npy</c>/<c>t2d.npy</c> plus the size-named
/// copies <c>d2t-{Vd}.npy</c>/<c>t2d-{V}.npy</c>.
/// </summary>
public sealed class BuildVocabMappingCommand : ICliVerb
{
    public Command Build()
    {
        var tokenFreq = new Option<string>("--token-freq", "--token-freq-path")
        {
            Description = "Token-frequency file from prepare-data: token_freq.pt (torch pickle, also Python's) or token_freq.json.",
            Required = true,
        };
        var draftVocab = new Option<int>("--draft-vocab-size") { Description = "Draft vocabulary size Vd (e.g. 32000).", Required = true };
        var targetVocab = new Option<int?>("--target-vocab-size") { Description = "Target (verifier) vocabulary size V: the model config's vocab_size." };
        var model = new Option<string?>("--model", "--target-model-path") { Description = "Verifier model (local directory or Hugging Face id); V is read from its config.json." };
        var output = new Option<string>("--output", "--output-path") { Description = "Directory for d2t.npy and t2d.npy (created if missing).", Required = true };

        var cmd = new Command("build-vocab-mapping", "Build the draft↔target vocabulary mapping (d2t.npy, t2d.npy) from token frequencies: the Vd most frequent supervised tokens, ties to the smaller id, padded with the smallest unused ids.");
        cmd.Options.Add(tokenFreq);
        cmd.Options.Add(draftVocab);
        cmd.Options.Add(targetVocab);
        cmd.Options.Add(model);
        cmd.Options.Add(output);
        cmd.Validators.Add(result =>
        {
            bool hasV = result.GetResult(targetVocab) != null;
            bool hasM = result.GetResult(model) != null;
            if (hasV == hasM)
                result.AddError(hasV
                    ? "Pass either --target-vocab-size or --model, not both."
                    : "Pass --target-vocab-size V or --model M (V is the model config's vocab_size).");
        });
        cmd.SetAction(pr =>
        {
            string freqPath = pr.GetValue(tokenFreq)!;
            int vd = pr.GetValue(draftVocab);
            string outDir = pr.GetValue(output)!;
            int v;
            string vFrom;
            if (pr.GetValue(targetVocab) is int given)
            {
                v = given;
                vFrom = "--target-vocab-size";
            }
            else
            {
                string dir = ModelLocator.Resolve(pr.GetValue(model)!);
                v = VocabMapping.ReadTargetVocabSize(dir);
                vFrom = Path.Combine(dir, "config.json");
            }
            if (v <= 0) throw new SpeculatorsException($"--target-vocab-size must be positive; got {v}.");
            if (vd <= 0 || vd > v) throw new SpeculatorsException($"--draft-vocab-size {vd} must be in [1, {v}] (V from {vFrom}).");

            var freq = TokenFrequencies.Load(freqPath);
            var counts = freq.Items();
            var mapping = VocabMapping.Build(counts, vd, v, freqPath);
            var written = mapping.Save(outDir);
            long total = counts.Sum(kv => kv.Value);
            int padded = Math.Max(0, vd - counts.Count);
            Console.Out.WriteLine($"draft vocabulary: {vd} of {v} target tokens (V from {vFrom})");
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"token frequencies: {counts.Count} distinct ids, {total} supervised tokens; the draft covers {100 * mapping.Coverage(counts):F2}%"));
            if (padded > 0) Console.Out.WriteLine($"padded with {padded} unused ids (fewer distinct tokens than --draft-vocab-size)");
            foreach (var p in written) Console.Out.WriteLine("wrote " + p);
            return 0;
        });
        return cmd;
    }
}
