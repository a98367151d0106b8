using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Util;

namespace Speculators.Quickstart;

/// <summary>What one stage did: its timing and a JSON summary (also what a later run reads back when it skips the stage).</summary>
public sealed record StageResult(string Name, string Title, double WallSeconds, double CpuSeconds, bool Cached, JsonObject Summary);

/// <summary>
/// Runs the quickstart's stages in order with resumability: a completed stage leaves a marker
/// <c>.stages/{name}.json</c> (written atomically after its artifacts), and a later run skips it and reads its summary
/// back — unless <c>--force</c>, or an earlier stage ran again (everything after a re-run stage is redone, since its
/// inputs changed).
/// </summary>
public sealed class StageRunner
{
    readonly string _markerDir;
    readonly bool _force;
    readonly List<StageResult> _results = [];
    bool _invalidated;
    int _index;
    readonly int _count;

    public StageRunner(string outputDirectory, bool force, int stageCount)
    {
        _markerDir = Path.Combine(outputDirectory, ".stages");
        _force = force;
        _count = stageCount;
        Directory.CreateDirectory(_markerDir);
    }

    public IReadOnlyList<StageResult> Results => _results;

    /// <summary>The marker file of <paramref name="name"/>.</summary>
    public string MarkerPath(string name) => Path.Combine(_markerDir, name + ".json");

    /// <summary>
    /// Runs <paramref name="body"/> unless a valid marker says it already completed; <paramref name="isComplete"/> is
    /// an extra check of its artifacts (a marker whose artifacts vanished does not count). The body's argument says
    /// whether it may continue its own interrupted attempt (it started in an earlier run, and nothing before it has
    /// been redone since); otherwise it must start from scratch.
    /// </summary>
    public StageResult Run(string name, string title, Func<bool, JsonObject> body, Func<bool>? isComplete = null)
    {
        _index++;
        string marker = MarkerPath(name);
        if (!_force && !_invalidated && File.Exists(marker) && (isComplete?.Invoke() ?? true))
        {
            var cached = Read(marker, name, title);
            if (cached != null)
            {
                Log.Info($"[{_index}/{_count}] {title}: done in an earlier run ({Format(cached.WallSeconds)}), skipped (--force redoes it)");
                _results.Add(cached);
                return cached;
            }
        }
        string started = Path.Combine(_markerDir, name + ".started");
        bool resume = !_force && !_invalidated && File.Exists(started);
        _invalidated = true;
        if (File.Exists(marker)) File.Delete(marker);
        Log.Info($"[{_index}/{_count}] {title}" + (resume ? " (continuing an interrupted run) ..." : " ..."));
        AtomicFile.WriteAllText(started, DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture) + "\n");
        var start = CpuClock.Now();
        var summary = body(resume);
        var took = CpuClock.Now().Since(start);
        var result = new StageResult(name, title, took.WallSeconds, took.CpuSeconds, false, summary);
        Write(marker, result);
        File.Delete(started);
        Log.Info($"[{_index}/{_count}] {title}: {Format(took.WallSeconds)} wall, {Format(took.CpuSeconds)} CPU");
        _results.Add(result);
        return result;
    }

    static string Format(double seconds) => Progress.FormatTime(TimeSpan.FromSeconds(seconds));

    static void Write(string path, StageResult r)
    {
        var o = new JsonObject
        {
            ["name"] = r.Name,
            ["wall_seconds"] = Math.Round(r.WallSeconds, 3),
            ["cpu_seconds"] = Math.Round(r.CpuSeconds, 3),
            ["completed_utc"] = DateTime.UtcNow.ToString("o", CultureInfo.InvariantCulture),
            ["summary"] = r.Summary.DeepClone(),
        };
        AtomicFile.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    static StageResult? Read(string path, string name, string title)
    {
        try
        {
            if (JsonNode.Parse(File.ReadAllText(path)) is not JsonObject o || o["summary"] is not JsonObject s) return null;
            return new StageResult(name, title, o["wall_seconds"]?.GetValue<double>() ?? 0, o["cpu_seconds"]?.GetValue<double>() ?? 0, true,
                (JsonObject)s.DeepClone());
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            Log.Warn($"{path}: unreadable stage marker ({e.Message}); the stage runs again.");
            return null;
        }
    }
}
