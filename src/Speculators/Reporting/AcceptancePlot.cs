using System.Globalization;
using Speculators.Util;

namespace Speculators.Reporting;

/// <summary>PNG charts (ScottPlot): per-position acceptance as bars.</summary>
public static class AcceptancePlot
{
    /// <summary>
    /// Writes a bar chart of per-position acceptance (position 1…k on x, rate in [0, 1] on y, each bar labelled with its
    /// value) to <paramref name="path"/> atomically.
    /// </summary>
    /// <param name="path">output .png</param>
    /// <param name="perPosition">acceptance rate per draft position</param>
    /// <param name="title">chart title</param>
    /// <param name="subtitle">second title line (e.g. acceptance length and k), or null</param>
    public static void Save(string path, IReadOnlyList<double> perPosition, string title, string? subtitle = null, int width = 800, int height = 500)
    {
        if (perPosition.Count == 0) throw new SpeculatorsException("no per-position acceptance to plot (k = 0).");
        var plot = new ScottPlot.Plot();
        var values = perPosition.Select(v => double.IsFinite(v) ? v : 0).ToArray();
        var bars = plot.Add.Bars(values.Select((v, i) => (double)(i + 1)).ToArray(), values);
        foreach (var bar in bars.Bars)
            bar.Label = bar.Value.ToString("F3", CultureInfo.InvariantCulture);
        bars.ValueLabelStyle.FontSize = 14;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            values.Select((_, i) => new ScottPlot.Tick(i + 1, (i + 1).ToString(CultureInfo.InvariantCulture))).ToArray());
        plot.Axes.SetLimitsY(0, 1.08);
        plot.Axes.SetLimitsX(0.4, values.Length + 0.6);
        plot.Title(subtitle == null ? title : title + "\n" + subtitle);
        plot.XLabel("draft position");
        plot.YLabel("acceptance rate (accepted / drafts)");
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        // Render beside the target, then rename: a killed run never leaves a half PNG under the final name.
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
