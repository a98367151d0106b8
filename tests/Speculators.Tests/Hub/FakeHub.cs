using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Speculators.Hub;

namespace Speculators.Tests.Hub;

/// <summary>A file of a fake repository, with the ids the hub derives from it.</summary>
public sealed class FakeFile
{
    public FakeFile(byte[] content, bool lfs)
    {
        Content = content;
        Lfs = lfs;
        Sha256 = Convert.ToHexStringLower(SHA256.HashData(content));
        GitSha1 = GitBlobSha1(content);
        // An LFS file is stored in git as a pointer text; the git blob id is the pointer's.
        Pointer = Encoding.ASCII.GetBytes($"version https://git-lfs.github.com/spec/v1\noid sha256:{Sha256}\nsize {content.Length}\n");
        PointerSha1 = GitBlobSha1(Pointer);
    }

    public byte[] Content { get; }
    public bool Lfs { get; }
    public string Sha256 { get; }
    public string GitSha1 { get; }
    public byte[] Pointer { get; }
    public string PointerSha1 { get; }
    /// <summary>The blob name huggingface_hub uses: sha256 for LFS files, the git blob sha1 otherwise.</summary>
    public string Etag => Lfs ? Sha256 : GitSha1;

    public static string GitBlobSha1(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));
}

public sealed class FakeRepo(string id, RepoType type)
{
    public string Id { get; } = id;
    public RepoType Type { get; } = type;
    public Dictionary<string, string> Refs { get; } = new(StringComparer.Ordinal);
    public Dictionary<string, Dictionary<string, FakeFile>> Commits { get; } = new(StringComparer.Ordinal);
    /// <summary>Gated: only requests with this token get files.</summary>
    public string? GatedToken { get; set; }

    /// <summary>Adds a commit holding <paramref name="files"/> and points <paramref name="branch"/> at it. Files over 1 KiB are LFS.</summary>
    public string Commit(Dictionary<string, byte[]> files, string branch = "main", int lfsThreshold = 1024)
    {
        var content = files.ToDictionary(kv => kv.Key, kv => new FakeFile(kv.Value, kv.Value.Length > lfsThreshold), StringComparer.Ordinal);
        string commit = Convert.ToHexStringLower(SHA1.HashData(Encoding.UTF8.GetBytes(
            Id + branch + Commits.Count + string.Join(";", content.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => k.Key + "=" + k.Value.GitSha1)))));
        Commits[commit] = content;
        Refs[branch] = commit;
        return commit;
    }

    public string? ResolveRevision(string rev) => Commits.ContainsKey(rev) ? rev : Refs.GetValueOrDefault(rev);
}

/// <summary>
/// Emulates the Hugging Face hub on 127.0.0.1: file URLs (<c>/{repo}/resolve/{rev}/{file}</c>,
/// <c>/datasets/{repo}/resolve/...</c>) with the hub's HEAD headers (X-Repo-Commit, ETag,
/// X-Linked-Etag, X-Linked-Size), 302 redirects of LFS files to a second "CDN" server (another port,
/// so another host for the client), Range requests, X-Error-Code errors, and the API endpoints
/// /api/{type}s/{repo}/revision/{rev} and the paginated /tree listing.
/// </summary>
public sealed class FakeHub : IDisposable
{
    readonly Dictionary<(RepoType, string), FakeRepo> _repos = new();
    readonly System.Collections.Concurrent.ConcurrentDictionary<string, FakeFile> _blobs = new(StringComparer.Ordinal);

    public FakeHub()
    {
        Hub = new LoopbackHttpServer(HandleHub);
        Cdn = new LoopbackHttpServer(HandleCdn);
    }

    public LoopbackHttpServer Hub { get; }
    public LoopbackHttpServer Cdn { get; }
    public string Endpoint => Hub.BaseUrl;
    public int RequestCount => Hub.Requests.Count + Cdn.Requests.Count;

    /// <summary>Entries per page of the tree listing (pagination through the Link header).</summary>
    public int TreePageSize { get; set; } = 1000;
    /// <summary>The CDN ignores Range headers and always answers 200 with the whole file.</summary>
    public bool IgnoreRange { get; set; }
    /// <summary>Drop the connection after this many body bytes for the next N CDN downloads.</summary>
    public int TruncateCdnDownloads { get; set; }
    public int TruncateAt { get; set; }
    /// <summary>The CDN serves wrong bytes (same size) for every download.</summary>
    public bool CorruptCdn { get; set; }
    /// <summary>Renamed repositories: old id → new id (the hub answers 307 with a relative Location).</summary>
    public Dictionary<string, string> Renamed { get; } = new(StringComparer.Ordinal);

    public FakeRepo AddRepo(string id, RepoType type = RepoType.Model)
    {
        var repo = new FakeRepo(id, type);
        _repos[(type, id)] = repo;
        return repo;
    }

    /// <summary>Settings for a client of this hub (no retry pauses, no progress output).</summary>
    public HubSettings Settings(string cacheDir, string? token = null, bool offline = false) => new()
    {
        Endpoint = Endpoint,
        CacheDir = cacheDir,
        Token = token,
        TokenSource = token is null ? null : "HF_TOKEN",
        Offline = offline,
        RetryDelay = TimeSpan.Zero,
        ShowProgress = false,
        EtagTimeout = TimeSpan.FromSeconds(10),
        DownloadTimeout = TimeSpan.FromSeconds(10),
    };

    static HttpResponseSpec Json(object value, int status = 200) =>
        new HttpResponseSpec { Status = status, Body = JsonSerializer.SerializeToUtf8Bytes(value) }.With("Content-Type", "application/json");

    static HttpResponseSpec Error(int status, string code, string message) =>
        new HttpResponseSpec { Status = status, Body = Encoding.UTF8.GetBytes(message) }.With("X-Error-Code", code).With("X-Error-Message", message);

    HttpResponseSpec HandleHub(HttpRequestRecord req)
    {
        string[] segs = req.RawPath.TrimStart('/').Split('/');
        if (segs[0] == "api") return HandleApi(req, segs);

        var type = RepoType.Model;
        int start = 0;
        if (segs[0] is "datasets" or "spaces") { type = segs[0] == "datasets" ? RepoType.Dataset : RepoType.Space; start = 1; }
        int k = Array.IndexOf(segs, "resolve", start);
        if (k < 0) return new HttpResponseSpec { Status = 404 };
        string repoId = string.Join('/', segs[start..k].Select(Uri.UnescapeDataString));
        string rev = Uri.UnescapeDataString(segs[k + 1]);
        string file = string.Join('/', segs[(k + 2)..].Select(Uri.UnescapeDataString));

        if (Renamed.TryGetValue(repoId, out var newId))
            return new HttpResponseSpec { Status = 307 }.With("Location", "/" + type.UrlPrefix() + newId + "/resolve/" + string.Join('/', segs[(k + 1)..]));

        var denied = CheckAccess(req, type, repoId, out var repo);
        if (denied is not null) return denied;
        string? commit = repo!.ResolveRevision(rev);
        if (commit is null) return Error(404, "RevisionNotFound", $"Invalid rev id: {rev}");
        if (!repo.Commits[commit].TryGetValue(file, out var f))
            return Error(404, "EntryNotFound", $"{file} does not exist on \"{rev}\"").With("X-Repo-Commit", commit);

        if (f.Lfs)
        {
            _blobs[f.Sha256] = f;
            return new HttpResponseSpec { Status = 302 }
                .With("Location", $"{Cdn.BaseUrl}/repos/{f.Sha256}?X-Amz-Signature=fake")
                .With("X-Repo-Commit", commit)
                .With("ETag", $"\"{f.PointerSha1}\"")
                .With("X-Linked-Etag", $"\"{f.Sha256}\"")
                .With("X-Linked-Size", f.Content.Length.ToString())
                .With("Content-Length", "1234"); // the redirect body's length, not the file's: must not be used as the size
        }
        return Ranged(req, f.Content, ignoreRange: false, truncate: null)
            .With("X-Repo-Commit", commit)
            .With("ETag", $"\"{f.GitSha1}\"");
    }

    HttpResponseSpec? CheckAccess(HttpRequestRecord req, RepoType type, string repoId, out FakeRepo? repo)
    {
        string? auth = req.Header("Authorization");
        if (!_repos.TryGetValue((type, repoId), out repo))
            return auth is null ? Error(401, "RepoNotFound", "Repository not found") : Error(404, "RepoNotFound", "Repository not found");
        if (repo.GatedToken is not null && auth != "Bearer " + repo.GatedToken)
            return auth is null
                ? Error(401, "GatedRepo", $"Access to model {repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.")
                : Error(403, "GatedRepo", $"Access to model {repoId} is restricted and you are not in the authorized list.");
        return null;
    }

    HttpResponseSpec HandleApi(HttpRequestRecord req, string[] segs)
    {
        // /api/{models|datasets}/{repo...}/revision/{rev}   or   /api/{type}s/{repo...}/tree/{rev}
        var type = segs[1] switch { "models" => RepoType.Model, "datasets" => RepoType.Dataset, _ => RepoType.Space };
        int k = Array.FindIndex(segs, 2, s => s is "revision" or "tree");
        if (k < 0) return new HttpResponseSpec { Status = 404 };
        string repoId = string.Join('/', segs[2..k].Select(Uri.UnescapeDataString));
        string rev = Uri.UnescapeDataString(segs[k + 1]);
        var denied = CheckAccess(req, type, repoId, out var repo);
        if (denied is not null) return denied;
        string? commit = repo!.ResolveRevision(rev);
        if (commit is null) return Error(404, "RevisionNotFound", $"Invalid rev id: {rev}");
        var files = repo.Commits[commit];
        if (segs[k] == "revision")
            return Json(new { id = repoId, sha = commit, siblings = files.Keys.Order(StringComparer.Ordinal).Select(p => new { rfilename = p }).ToList() });

        // Recursive tree: directories and files, paginated.
        var entries = new List<object>();
        var dirs = files.Keys.SelectMany(p => { var parts = p.Split('/'); return Enumerable.Range(1, parts.Length - 1).Select(i => string.Join('/', parts[..i])); })
            .Distinct().ToList();
        var all = dirs.Select(d => (Path: d, File: (FakeFile?)null)).Concat(files.Select(kv => (Path: kv.Key, File: (FakeFile?)kv.Value)))
            .OrderBy(e => e.Path, StringComparer.Ordinal).ToList();
        foreach (var (path, f) in all)
        {
            if (f is null) entries.Add(new { type = "directory", oid = "0000000000000000000000000000000000000000", size = 0, path });
            else if (f.Lfs) entries.Add(new { type = "file", oid = f.PointerSha1, size = f.Content.Length, path, lfs = new { oid = f.Sha256, size = f.Content.Length, pointerSize = f.Pointer.Length } });
            else entries.Add(new { type = "file", oid = f.GitSha1, size = f.Content.Length, path });
        }
        int cursor = 0;
        foreach (var kv in req.Query.Split('&'))
            if (kv.StartsWith("cursor=", StringComparison.Ordinal)) cursor = int.Parse(kv[7..]);
        var page = entries.Skip(cursor).Take(TreePageSize).ToList();
        var resp = Json(page);
        if (cursor + TreePageSize < entries.Count)
            resp.With("Link", $"<{Endpoint}{req.RawPath}?recursive=true&expand=false&cursor={cursor + TreePageSize}>; rel=\"next\"");
        return resp;
    }

    HttpResponseSpec HandleCdn(HttpRequestRecord req)
    {
        string[] segs = req.RawPath.TrimStart('/').Split('/');
        if (segs.Length != 2 || segs[0] != "repos" || !_blobs.TryGetValue(segs[1], out var f)) return new HttpResponseSpec { Status = 404 };
        int? truncate = null;
        lock (_blobs) { if (TruncateCdnDownloads > 0 && req.Method == "GET") { TruncateCdnDownloads--; truncate = TruncateAt; } }
        byte[] content = f.Content;
        if (CorruptCdn) { content = (byte[])content.Clone(); content[content.Length / 2] ^= 0xFF; }
        return Ranged(req, content, IgnoreRange, truncate);
    }

    static HttpResponseSpec Ranged(HttpRequestRecord req, byte[] content, bool ignoreRange, int? truncate)
    {
        string? range = req.Header("Range");
        if (range is not null && !ignoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            long from = long.Parse(range[6..^1]);
            if (from >= content.Length)
                return new HttpResponseSpec { Status = 416 }.With("Content-Range", $"bytes */{content.Length}");
            var part = content[(int)from..];
            return new HttpResponseSpec { Status = 206, Body = part, TruncateAfter = truncate }
                .With("Content-Range", $"bytes {from}-{content.Length - 1}/{content.Length}");
        }
        return new HttpResponseSpec { Status = 200, Body = content, TruncateAfter = truncate };
    }

    public void Dispose()
    {
        Hub.Dispose();
        Cdn.Dispose();
    }
}
