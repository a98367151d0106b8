using System.Globalization;
using Speculators.Logging;

namespace Speculators.Training;

/// <summary>Builds the metric sinks of <c>--logger</c> (rank 0 only; other ranks get <see cref="NullSink"/>).</summary>
public static class TrainerSinks
{
    /// <summary>Backends this build supports.</summary>
    public static readonly IReadOnlyList<string> Supported = ["tensorboard", "console"];

    /// <summary>
    /// <c>--run-name</c> with its placeholders filled: <c>{time}</c> (local ISO time, seconds), <c>{utc_time}</c>,
    /// <c>{rank}</c>, <c>{local_rank}</c>; null means <c>{time}</c> (speculators' default).
    /// </summary>
    public static string RunName(string? template, int rank, int localRank, DateTime? now = null)
    {
        var t = now ?? DateTime.Now;
        return (template ?? "{time}")
            .Replace("{time}", t.ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture))
            .Replace("{utc_time}", t.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture))
            .Replace("{rank}", rank.ToString(CultureInfo.InvariantCulture))
            .Replace("{local_rank}", localRank.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Parses <c>--logger</c> (comma list, case-insensitive, empty = none); unknown names are errors.</summary>
    public static IReadOnlyList<string> Parse(string logger)
    {
        var names = logger.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(x => x.ToLowerInvariant()).Distinct().ToList();
        foreach (var n in names)
            if (!Supported.Contains(n))
                throw new SpeculatorsException($"--logger {n}: not available in this build (supported: {string.Join(", ", Supported)}).");
        return names;
    }

    /// <summary>The sink for rank <paramref name="rank"/>: a composite of the requested backends on rank 0, else <see cref="NullSink"/>.</summary>
    /// <param name="resumeStep">global step a resumed run continues from (TensorBoard drops stale events from there)</param>
    /// <param name="runName">the resolved run name (see <see cref="RunName"/>)</param>
    public static IMetricSink Create(TrainOptions options, int rank, string runName, long? resumeStep)
    {
        var names = Parse(options.Logger);
        if (rank != 0 || names.Count == 0) return NullSink.Instance;
        var sinks = new List<IMetricSink>();
        try
        {
            foreach (var n in names)
            {
                sinks.Add(n switch
                {
                    "tensorboard" => new TensorBoardSink(Path.Combine(options.LogDir, runName),
                        new TensorBoardOptions { ResumeStep = resumeStep is > 0 ? resumeStep : null }),
                    "console" => new ConsoleSink(),
                    _ => throw new InvalidOperationException(n),
                });
            }
        }
        catch
        {
            foreach (var s in sinks) s.Dispose();
            throw;
        }
        return sinks.Count == 1 ? sinks[0] : new CompositeSink(sinks);
    }

    /// <summary>The global step the newest checkpoint under <paramref name="savePath"/> records (0 if none or unreadable).</summary>
    public static long PeekResumeStep(string savePath)
    {
        var store = new CheckpointStore(savePath);
        foreach (int e in store.Epochs())
        {
            string p = Path.Combine(store.PathOf(e), TrainingState.FileName);
            try
            {
                if (File.Exists(p)) return TrainingState.Parse(File.ReadAllText(p), p).GlobalStep;
            }
            catch (SpeculatorsException)
            {
            }
        }
        return 0;
    }
}
