namespace Speculators.Quickstart;

/// <summary>
/// PNG line chart of training losses (ScottPlot) on a logarithmic loss axis — the draft's summed TTT loss starts an order
/// of magnitude above the target's and both end near zero, so a linear axis would flatten everything after the first
/// steps. Written atomically.
/// </summary>
public static class LossPlot
{
    /// <summary>One curve per series: (step, loss) points; a series with fewer than two points is drawn as markers.</summary>
    public static void Save(string path, string title, IReadOnlyList<(string Label, IReadOnlyList<(double Step, double Loss)> Points)> series,
        int width = 800, int height = 500)
    {
        if (series.All(s => s.Points.Count == 0)) throw new SpeculatorsException($"{path}: no losses to plot.");
        var plot = new ScottPlot.Plot();
        foreach (var (label, points) in series)
        {
            var finite = points.Where(pt => double.IsFinite(pt.Loss) && pt.Loss > 0).ToArray();
            if (finite.Length == 0) continue;
            var line = plot.Add.Scatter(finite.Select(pt => pt.Step).ToArray(), finite.Select(pt => Math.Log10(pt.Loss)).ToArray());
            line.LegendText = label;
            line.MarkerSize = finite.Length < 40 ? 4 : 0;
        }
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            MinorTickGenerator = new ScottPlot.TickGenerators.LogMinorTickGenerator(),
            IntegerTicksOnly = true,
            LabelFormatter = y => Math.Pow(10, y).ToString("G3", System.Globalization.CultureInfo.InvariantCulture),
        };
        plot.Grid.MinorLineWidth = 1;
        plot.ShowLegend();
        plot.Title(title);
        plot.XLabel("optimizer step");
        plot.YLabel("training loss (log scale)");
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        string tmp = full + ".tmp.png";
        try
        {
            plot.SavePng(tmp, width, height);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }
}
