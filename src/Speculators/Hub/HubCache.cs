using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Speculators.Hub;

/// <summary>One file of a repository listing (the hub's /tree API, or the cached trees/{commit}.json).</summary>
public sealed record RepoFileEntry(string Path, long Size, string BlobId, string? LfsSha256 = null, long? LfsSize = null, string? XetHash = null)
{
    /// <summary>The blob name in the cache: the LFS sha256 for LFS files, else the git blob id.</summary>
    public string Etag => LfsSha256 ?? BlobId;
}

/// <summary>
/// The Hugging Face hub cache layout, exactly as huggingface_hub writes it (file_download.py,
/// _snapshot_download.py, _tree_cache.py), so Python tools and this library share one cache:
/// <code>
/// {cache}/CACHEDIR.TAG
/// {cache}/.locks/{models|datasets}--{org}--{name}/{etag}.lock
/// {cache}/{models|datasets}--{org}--{name}/blobs/{etag}            (content)
/// {cache}/{...}/refs/{revision}                                   (commit hash, no newline)
/// {cache}/{...}/snapshots/{commit}/{path}  -> ../../blobs/{etag}   (relative symlink)
/// {cache}/{...}/.no_exist/{commit}/{path}                         (empty: known absent)
/// {cache}/{...}/trees/{commit}.json                               (full listing of that commit)
/// </code>
/// </summary>
public sealed class HubCache
{
    static readonly Regex CommitHash = new("^[0-9a-f]{40}$", RegexOptions.CultureInvariant);

    /// <summary>The Cache Directory Tagging Standard content huggingface_hub writes (v1.9+).</summary>
    public const string CacheDirTagContent =
        "Signature: 8a477f597d28d172789f06886806bc55\n" +
        "# This file is a cache directory tag created by huggingface_hub.\n" +
        "# For information about cache directory tags, see:\n" +
        "#\thttps://bford.info/cachedir/\n";

    public HubCache(string root) { Root = Path.GetFullPath(root); }

    public string Root { get; }

    public static bool IsCommitHash(string revision) => CommitHash.IsMatch(revision);

    /// <summary>"models--org--name" (huggingface_hub <c>repo_folder_name</c>).</summary>
    public static string RepoFolderName(string repoId, RepoType type) =>
        string.Join("--", [type.Plural(), .. repoId.Split('/')]);

    public string StorageFolder(string repoId, RepoType type) => Path.Combine(Root, RepoFolderName(repoId, type));

    public string LockPath(string repoId, RepoType type, string etag) =>
        Path.Combine(Root, ".locks", RepoFolderName(repoId, type), etag + ".lock");

    public static string BlobPath(string storage, string etag) => Path.Combine(storage, "blobs", etag);

    /// <summary>snapshots/{commit}/{filename}; rejects names that would leave the snapshot folder.</summary>
    public static string PointerPath(string storage, string commit, string filename)
    {
        ValidateRelativeFilename(filename);
        if (commit.Length == 0 || commit.Contains('/') || commit.Contains('\\') || commit is "." or "..")
            throw new SpeculatorsException($"Invalid commit '{commit}' for the cache snapshot folder.");
        return Path.Combine([storage, "snapshots", commit, .. filename.Split('/')]);
    }

    public static void ValidateRelativeFilename(string filename)
    {
        if (filename.Length == 0 || filename.StartsWith('/') || filename.Contains('\\')
            || filename.Split('/').Any(p => p is ".." or "." or ""))
            throw new SpeculatorsException($"Invalid file name '{filename}' in a hub repository: expected a relative path like 'dir/file.json' without '..'.");
    }

    /// <summary>The commit a revision points to in the cache: the revision itself if it is a commit hash, else refs/{revision}.</summary>
    public string? ResolveCachedCommit(string repoId, RepoType type, string revision)
    {
        if (IsCommitHash(revision)) return revision;
        return ReadRef(StorageFolder(repoId, type), revision);
    }

    static bool IsSafeRefName(string revision) =>
        revision.Length > 0 && !revision.StartsWith('/') && !revision.Contains('\\') && !revision.Split('/').Any(p => p is "" or "." or "..");

    public static string? ReadRef(string storage, string revision)
    {
        if (!IsSafeRefName(revision)) return null;
        string path = Path.Combine([storage, "refs", .. revision.Split('/')]);
        try { return File.Exists(path) ? File.ReadAllText(path).Trim() : null; }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Writes refs/{revision} = commit (no newline) when the revision is not the commit itself and the
    /// ref differs; atomically (temp file + rename) so readers never see half a hash.
    /// </summary>
    public static void WriteRef(string storage, string revision, string commit)
    {
        if (revision == commit) return;
        if (!IsSafeRefName(revision)) throw new SpeculatorsException($"Revision '{revision}' cannot name a file under refs/ (empty segment, '.' or '..').");
        string path = Path.Combine([storage, "refs", .. revision.Split('/')]);
        if (File.Exists(path))
        {
            try { if (File.ReadAllText(path) == commit) return; }
            catch (IOException) { }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        string tmp = $"{path}.{Guid.NewGuid().ToString("N")[..8]}.tmp";
        File.WriteAllText(tmp, commit, new UTF8Encoding(false));
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>
    /// huggingface_hub's <c>try_to_load_from_cache</c>: the cached file of <paramref name="filename"/> at
    /// <paramref name="revision"/> (resolved through refs/), or null when it is not cached or known absent.
    /// Never touches the network.
    /// </summary>
    public string? TryLoad(string repoId, string filename, RepoType type, string revision = "main")
    {
        string storage = StorageFolder(repoId, type);
        if (!Directory.Exists(storage)) return null;
        string commit = ReadRef(storage, revision) ?? revision;
        if (IsKnownMissing(storage, commit, filename)) return null;
        string pointer;
        try { pointer = PointerPath(storage, commit, filename); }
        catch (SpeculatorsException) { return null; }
        return File.Exists(pointer) ? pointer : null; // File.Exists follows the symlink: a dangling link is not a hit
    }

    /// <summary>True when .no_exist/{commit}/{filename} marks the file as absent at that commit.</summary>
    public static bool IsKnownMissing(string storage, string commit, string filename)
    {
        try { return File.Exists(Path.Combine([storage, ".no_exist", commit, .. filename.Split('/')])); }
        catch (ArgumentException) { return false; }
    }

    public static void MarkMissing(string storage, string commit, string filename)
    {
        try
        {
            string path = Path.Combine([storage, ".no_exist", commit, .. filename.Split('/')]);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            if (!File.Exists(path)) File.WriteAllBytes(path, []);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>Writes CACHEDIR.TAG in the cache root if missing (best effort, as huggingface_hub does).</summary>
    public void EnsureCacheDirTag()
    {
        string tag = Path.Combine(Root, "CACHEDIR.TAG");
        try
        {
            if (!File.Exists(tag)) { Directory.CreateDirectory(Root); File.WriteAllText(tag, CacheDirTagContent, new UTF8Encoding(false)); }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Points snapshots/.../{file} at blobs/{etag}: a relative symlink (relpath from the pointer's folder,
    /// as huggingface_hub's <c>_create_symlink</c>); where symlinks are disabled or fail, the blob is moved
    /// (a new blob) or copied (a blob other snapshots may share).
    /// </summary>
    public static void LinkPointer(string blob, string pointer, bool newBlob, bool disableSymlinks)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(pointer)!);
        try { if (File.Exists(pointer) || new FileInfo(pointer).LinkTarget is not null) File.Delete(pointer); }
        catch (IOException) { }
        if (!disableSymlinks)
        {
            string relative = Path.GetRelativePath(Path.GetDirectoryName(Path.GetFullPath(pointer))!, Path.GetFullPath(blob));
            try
            {
                File.CreateSymbolicLink(pointer, relative);
                return;
            }
            catch (IOException) when (File.Exists(pointer) && SameFile(pointer, blob)) { return; }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
        }
        if (newBlob) File.Move(blob, pointer, overwrite: true);
        else File.Copy(blob, pointer, overwrite: true);
    }

    static bool SameFile(string a, string b)
    {
        try
        {
            var ta = new FileInfo(a).ResolveLinkTarget(true);
            return ta is not null && Path.GetFullPath(ta.FullName) == Path.GetFullPath(b);
        }
        catch (IOException) { return false; }
    }

    // ---- trees/{commit}.json (huggingface_hub v1.22+ _tree_cache.py, format_version 1) ----

    public const int TreeFormatVersion = 1;

    public static string TreePath(string storage, string commit) => Path.Combine(storage, "trees", commit + ".json");

    /// <summary>The cached full listing of a commit, or null when absent, of another format version, or unreadable.</summary>
    public static IReadOnlyList<RepoFileEntry>? ReadTree(string storage, string commit)
    {
        string path = TreePath(storage, commit);
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(path));
            var root = doc.RootElement;
            if (!root.TryGetProperty("format_version", out var fv) || fv.ValueKind != JsonValueKind.Number || fv.GetInt32() != TreeFormatVersion)
                return null;
            var list = new List<RepoFileEntry>();
            foreach (var f in root.GetProperty("files").EnumerateObject())
            {
                var v = f.Value;
                list.Add(new RepoFileEntry(
                    f.Name,
                    v.GetProperty("size").GetInt64(),
                    v.GetProperty("blob_id").GetString() ?? "",
                    v.TryGetProperty("lfs_sha256", out var s) && s.ValueKind == JsonValueKind.String ? s.GetString() : null,
                    v.TryGetProperty("lfs_size", out var z) && z.ValueKind == JsonValueKind.Number ? z.GetInt64() : null,
                    v.TryGetProperty("xet_hash", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString() : null));
            }
            return list;
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or IOException)
        {
            Util.Log.Warn($"ignoring unreadable tree cache {path}: {e.Message}");
            return null;
        }
    }

    /// <summary>Writes trees/{commit}.json the way huggingface_hub does (paths sorted, json indent=1, ASCII-escaped).</summary>
    public static void WriteTree(string storage, string commit, IReadOnlyList<RepoFileEntry> files)
    {
        var sb = new StringBuilder();
        sb.Append("{\n \"format_version\": ").Append(TreeFormatVersion).Append(",\n \"files\": {");
        var sorted = files.OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
        for (int i = 0; i < sorted.Count; i++)
        {
            var f = sorted[i];
            sb.Append(i == 0 ? "\n  " : ",\n  ").Append(JsonString(f.Path)).Append(": {\n   \"size\": ")
              .Append(f.Size.ToString(CultureInfo.InvariantCulture)).Append(",\n   \"blob_id\": ").Append(JsonString(f.BlobId));
            if (f.LfsSha256 is not null)
            {
                sb.Append(",\n   \"lfs_sha256\": ").Append(JsonString(f.LfsSha256))
                  .Append(",\n   \"lfs_size\": ").Append(f.LfsSize is long ls ? ls.ToString(CultureInfo.InvariantCulture) : "null");
            }
            if (f.XetHash is not null) sb.Append(",\n   \"xet_hash\": ").Append(JsonString(f.XetHash));
            sb.Append("\n  }");
        }
        sb.Append(sorted.Count == 0 ? "}\n}" : "\n }\n}");
        try { Util.AtomicFile.WriteAllText(TreePath(storage, commit), sb.ToString()); }
        catch (IOException e) { Util.Log.Warn($"could not write the tree cache {TreePath(storage, commit)}: {e.Message}"); }
        catch (UnauthorizedAccessException e) { Util.Log.Warn($"could not write the tree cache {TreePath(storage, commit)}: {e.Message}"); }
    }

    /// <summary>A JSON string literal as Python's json.dumps writes it (ensure_ascii=True).</summary>
    internal static string JsonString(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7e) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append('"').ToString();
    }

    /// <summary>All files present in snapshots/{commit} (relative, '/'-separated, sorted): what is cached of that commit.</summary>
    public static IReadOnlyList<string> ListSnapshotFiles(string storage, string commit)
    {
        string dir = Path.Combine(storage, "snapshots", commit);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Where(File.Exists)
            .Select(p => Path.GetRelativePath(dir, p).Replace(Path.DirectorySeparatorChar, '/'))
            .OrderBy(p => p, StringComparer.Ordinal)
            .ToList();
    }
}
