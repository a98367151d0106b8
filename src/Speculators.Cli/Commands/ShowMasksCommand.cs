using System.CommandLine;
using Speculators.Data;
using Speculators.Data.Preparation;
using Speculators.Hub;
using Speculators.Text;
using Speculators.Util;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators show-masks --data-path DIR --model M [--index i] [--html FILE] [--color auto|always|never] [--tokens]</c>:
/// one prepared row with its supervised tokens highlighted.
/// </summary>
public sealed class ShowMasksCommand : ICliVerb
{
    public Command Build()
    {
        var dataPath = new Option<string>("--data-path") { Description = "Prepared dataset directory (prepare-data output, or Python speculators').", Required = true };
        var model = new Option<string>("--model") { Description = "Model whose tokenizer decodes the tokens (local directory or Hugging Face id).", Required = true };
        var index = new Option<long>("--index") { Description = "Row to show (0-based).", DefaultValueFactory = _ => 0 };
        var html = new Option<string?>("--html") { Description = "Write a standalone HTML page to this file instead of printing." };
        var color = new Option<string>("--color") { Description = "Terminal colours: auto (when stdout is a terminal), always, never (supervised runs in ⟦ ⟧).", DefaultValueFactory = _ => "auto" };
        color.AcceptOnlyFromAmong("auto", "always", "never");
        var tokens = new Option<bool>("--tokens") { Description = "Print one line per token (index, id, mask, text) instead of the text." };

        var cmd = new Command("show-masks", "Show a prepared row with its supervised (loss_mask = 1) tokens highlighted, with token boundaries and counts.")
        {
            dataPath, model, index, html, color, tokens,
        };
        cmd.SetAction(pr =>
        {
            string dir = pr.GetValue(dataPath)!;
            long i = pr.GetValue(index);
            using var ds = PreparedDataset.Open(dir);
            if (i < 0 || i >= ds.Count)
                throw new SpeculatorsException($"--index {i} is outside the dataset {dir}, which has {ds.Count} rows (valid: 0..{ds.Count - 1}).");
            var tokenizer = HfTokenizer.Load(ModelLocator.Resolve(pr.GetValue(model)!));
            var row = ds.GetRow(i);
            var pieces = MaskView.Pieces(tokenizer, row.InputIds, row.LossMask);
            var stats = MaskView.Stats(row.LossMask);
            string title = $"{Path.GetFileName(Path.GetFullPath(dir).TrimEnd(Path.DirectorySeparatorChar))} row {i} of {ds.Count}";
            if (pr.GetValue(html) is { } htmlPath)
            {
                AtomicFile.WriteAllText(htmlPath, MaskView.Html(pieces, row.LossMask, title, stats));
                Console.Out.WriteLine($"{title}: {stats}");
                Console.Out.WriteLine($"wrote {htmlPath}");
                return 0;
            }
            Console.Out.WriteLine($"{title}: {stats}");
            if (pr.GetValue(tokens))
            {
                Console.Out.Write(MaskView.TokenTable(pieces, row.LossMask));
                return 0;
            }
            string mode = pr.GetValue(color)!;
            bool useColor = mode == "always" || (mode == "auto" && !Console.IsOutputRedirected);
            Console.Out.WriteLine(useColor ? MaskView.Ansi(pieces) : MaskView.Plain(pieces));
            return 0;
        });
        return cmd;
    }
}
