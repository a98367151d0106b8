using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Util;

namespace Speculators.Training;

/// <summary>
/// The checkpoint root (<c>--save-path</c>) in the layout of speculators.md §7.5, written with the atomic
/// directory protocol of DESIGN.md §4:
/// <code>
/// write {E}.tmp/ (every file fsynced, then the directory) → rename {E} → {E}.old → rename {E}.tmp → {E} → delete {E}.old
/// </code>
/// A process killed at any point leaves either the previous <c>{E}</c>, or <c>{E}.old</c> (renamed back by
/// <see cref="Recover"/>), or the new <c>{E}</c>; <c>*.tmp</c> directories are never read and are removed.
/// Epoch directories are the integer-named real directories; symlinks (<c>checkpoint_best</c>,
/// <c>epoch{E}_end</c>, <c>epoch{E}_step{S}</c>) are relative and only for people and tools.
/// </summary>
public sealed class CheckpointStore
{
    public const string BestLinkName = "checkpoint_best";
    public const string MasterWeightsFile = "master_weights.safetensors";
    public const string OptimizerStateFile = "optimizer_state.safetensors";
    public const string SchedulerStateFile = "scheduler_state.json";
    public const string ValMetricsFile = "val_metrics.json";
    public const string TrainCommandFile = "train_command.txt";
    public const string RunYamlFile = "run.yaml";
    public const string DryRunDirectory = "dry_run";
    const string TmpSuffix = ".tmp";
    const string OldSuffix = ".old";

    public CheckpointStore(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    /// <summary>Test hook: called with <c>tmp-written</c>, <c>old-renamed</c>, <c>new-renamed</c> between the protocol's steps.</summary>
    internal Action<string>? FaultInjection { get; set; }

    public string PathOf(int epoch) => Path.Combine(Root, epoch.ToString(CultureInfo.InvariantCulture));

    static bool IsEpochName(string name, out int epoch) =>
        int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out epoch) && epoch.ToString(CultureInfo.InvariantCulture) == name;

    static bool IsSymlink(string path) => new DirectoryInfo(path).LinkTarget != null || new FileInfo(path).LinkTarget != null;

    /// <summary>Completed epoch checkpoints (integer-named real directories), newest first.</summary>
    public IReadOnlyList<int> Epochs()
    {
        if (!Directory.Exists(Root)) return [];
        var list = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories(Root))
        {
            string name = Path.GetFileName(dir);
            if (IsEpochName(name, out int e) && !IsSymlink(dir)) list.Add(e);
        }
        list.Sort((a, b) => b.CompareTo(a));
        return list;
    }

    /// <summary>
    /// Finishes or undoes saves a killed process left behind: <c>{E}.old</c> whose <c>{E}</c> is missing is renamed
    /// back (the save had not committed); <c>{E}.old</c> beside a committed <c>{E}</c> is deleted; <c>*.tmp</c> are
    /// deleted. Returns one line per action for the log. Rank 0 only.
    /// </summary>
    public IReadOnlyList<string> Recover()
    {
        var actions = new List<string>();
        if (!Directory.Exists(Root)) return actions;
        foreach (var dir in Directory.EnumerateDirectories(Root).ToList())
        {
            string name = Path.GetFileName(dir);
            if (name.EndsWith(OldSuffix, StringComparison.Ordinal))
            {
                string baseName = name[..^OldSuffix.Length];
                if (!IsEpochName(baseName, out _) && baseName != DryRunDirectory) continue;
                string final = Path.Combine(Root, baseName);
                if (Directory.Exists(final))
                {
                    Directory.Delete(dir, true);
                    actions.Add($"removed {name} (the save of {baseName} had completed)");
                }
                else
                {
                    Directory.Move(dir, final);
                    FsyncDirectory(Root);
                    actions.Add($"restored {baseName} from {name} (a save was interrupted before it committed)");
                }
            }
        }
        foreach (var dir in Directory.EnumerateDirectories(Root).ToList())
        {
            string name = Path.GetFileName(dir);
            if (!name.EndsWith(TmpSuffix, StringComparison.Ordinal)) continue;
            string baseName = name[..^TmpSuffix.Length];
            if (!IsEpochName(baseName, out _) && baseName != DryRunDirectory) continue;
            Directory.Delete(dir, true);
            actions.Add($"removed {name} (an incomplete save)");
        }
        return actions;
    }

    /// <summary>
    /// Writes checkpoint <paramref name="name"/> atomically: <paramref name="writeContents"/> fills a fresh
    /// <c>{name}.tmp/</c>, which then replaces <c>{name}</c> by the protocol above. Returns the final path.
    /// </summary>
    public string Save(string name, Action<string> writeContents)
    {
        Directory.CreateDirectory(Root);
        string final = Path.Combine(Root, name);
        string tmp = final + TmpSuffix;
        string old = final + OldSuffix;
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        try
        {
            writeContents(tmp);
            foreach (var f in Directory.EnumerateFiles(tmp, "*", SearchOption.AllDirectories)) FsyncFile(f);
            foreach (var d in Directory.EnumerateDirectories(tmp, "*", SearchOption.AllDirectories)) FsyncDirectory(d);
            FsyncDirectory(tmp);
        }
        catch
        {
            try { Directory.Delete(tmp, true); } catch (IOException) { }
            throw;
        }
        FaultInjection?.Invoke("tmp-written");
        if (Directory.Exists(final))
        {
            if (Directory.Exists(old)) Directory.Delete(old, true);
            Directory.Move(final, old);
            FsyncDirectory(Root);
        }
        FaultInjection?.Invoke("old-renamed");
        Directory.Move(tmp, final);
        FsyncDirectory(Root);
        FaultInjection?.Invoke("new-renamed");
        if (Directory.Exists(old)) Directory.Delete(old, true);
        return final;
    }

    /// <summary>Points <c>epoch{E}_end</c> or <c>epoch{E}_step{S}</c> at <c>{E}</c>, replacing older links to it.</summary>
    public void UpdateEpochLink(int epoch, int localStep)
    {
        string e = epoch.ToString(CultureInfo.InvariantCulture);
        foreach (var link in Directory.EnumerateFileSystemEntries(Root, $"epoch{e}_*"))
            if (IsSymlink(link)) File.Delete(link);
        string linkName = localStep > 0 ? $"epoch{e}_step{localStep.ToString(CultureInfo.InvariantCulture)}" : $"epoch{e}_end";
        TryCreateRelativeLink(Path.Combine(Root, linkName), e);
    }

    /// <summary>Writes <c>{E}/val_metrics.json</c> (normalized keys with the <c>_epoch</c> suffix, as speculators).</summary>
    public void WriteValMetrics(int epoch, IReadOnlyDictionary<string, double> metrics)
    {
        var obj = new JsonObject();
        foreach (var (k, v) in metrics) obj[k] = double.IsFinite(v) ? JsonValue.Create(v) : JsonValue.Create(v.ToString(CultureInfo.InvariantCulture));
        AtomicFile.WriteAllText(Path.Combine(PathOf(epoch), ValMetricsFile), obj.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }

    /// <summary>Repoints the relative <c>checkpoint_best</c> symlink at <c>{E}</c> (atomically: new link, then rename).</summary>
    public void UpdateBest(int epoch)
    {
        string link = Path.Combine(Root, BestLinkName);
        string e = epoch.ToString(CultureInfo.InvariantCulture);
        if (Directory.Exists(link) && !IsSymlink(link))
            throw new SpeculatorsException($"{link} is a real directory; expected the checkpoint_best symlink (move it away).");
        string tmp = link + ".tmp-link";
        if (File.Exists(tmp) || IsSymlink(tmp)) File.Delete(tmp);
        if (!TryCreateRelativeLink(tmp, e)) return;
        if (OperatingSystem.IsWindows())
        {
            if (IsSymlink(link)) File.Delete(link);
            File.Move(tmp, link);
        }
        else if (rename(tmp, link) != 0)
        {
            throw new IOException($"could not rename {tmp} to {link} (errno {Marshal.GetLastPInvokeError()}).");
        }
        FsyncDirectory(Root);
    }

    /// <summary>The epoch <c>checkpoint_best</c> points to, if any.</summary>
    public int? BestEpoch()
    {
        string link = Path.Combine(Root, BestLinkName);
        var target = new FileInfo(link).LinkTarget;
        if (target == null) return null;
        return IsEpochName(Path.GetFileName(Path.TrimEndingDirectorySeparator(target)), out int e) ? e : null;
    }

    /// <summary><c>loss_epoch</c> from <c>checkpoint_best/val_metrics.json</c> (null when absent or unreadable, as speculators).</summary>
    public double? BestValLoss()
    {
        if (BestEpoch() is not int e) return null;
        string p = Path.Combine(PathOf(e), ValMetricsFile);
        if (!File.Exists(p)) return null;
        try
        {
            return JsonNode.Parse(File.ReadAllText(p))?["loss_epoch"]?.GetValue<double>();
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            return null;
        }
    }

    /// <summary><c>--save-best</c>: deletes every entry except <c>{best}</c>, <c>checkpoint_best</c>, <c>run.yaml</c> and <c>train_command.txt</c>.</summary>
    public void KeepOnlyBest(int bestEpoch)
    {
        string keep = PathOf(bestEpoch);
        if (!Directory.Exists(keep)) throw new SpeculatorsException($"{keep}: the best checkpoint directory is missing.");
        foreach (var entry in Directory.EnumerateFileSystemEntries(Root).ToList())
        {
            string name = Path.GetFileName(entry);
            if (entry == keep || name is BestLinkName or TrainCommandFile or RunYamlFile) continue;
            if (IsSymlink(entry) || File.Exists(entry)) File.Delete(entry);
            else if (Directory.Exists(entry) && (IsEpochName(name, out _) || name.EndsWith(OldSuffix, StringComparison.Ordinal) || name.EndsWith(TmpSuffix, StringComparison.Ordinal)))
                Directory.Delete(entry, true);
        }
    }

    static bool TryCreateRelativeLink(string linkPath, string target)
    {
        try
        {
            Directory.CreateSymbolicLink(linkPath, target);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            Log.WarnOnce("ckpt-symlink", $"could not create the symlink {linkPath} → {target} ({e.Message}); checkpoints are still complete.");
            return false;
        }
    }

    static void FsyncFile(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
        fs.Flush(flushToDisk: true);
    }

    /// <summary>fsync of a directory (makes renames and new entries durable); a no-op where POSIX is unavailable.</summary>
    internal static void FsyncDirectory(string path)
    {
        if (OperatingSystem.IsWindows()) return;
        const int ORdOnly = 0, ODirectory = 0x10000; // Linux x86-64/arm64 values
        int fd = open(path, ORdOnly | (OperatingSystem.IsLinux() ? ODirectory : 0));
        if (fd < 0) return;
        try { fsync(fd); } finally { close(fd); }
    }

    [DllImport("libc", SetLastError = true)] static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
    [DllImport("libc", SetLastError = true)] static extern int fsync(int fd);
    [DllImport("libc")] static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] static extern int rename([MarshalAs(UnmanagedType.LPUTF8Str)] string oldPath, [MarshalAs(UnmanagedType.LPUTF8Str)] string newPath);
}
