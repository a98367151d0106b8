using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Speculators.Util;

namespace Speculators.Hub;

/// <summary>A repository's files at one commit.</summary>
public sealed record RepoListing(string RepoId, RepoType Type, string Commit, IReadOnlyList<RepoFileEntry> Files)
{
    /// <summary>True when the listing was rebuilt from what the cache holds (offline, no trees/{commit}.json).</summary>
    public bool FromSnapshotFolder { get; init; }

    /// <summary>Why the listing came from the cache instead of the hub (offline, unreachable...), or null.</summary>
    public string? FallbackReason { get; init; }
}

/// <summary>What a HEAD on a resolve URL says about a file (huggingface_hub <c>get_hf_file_metadata</c>).</summary>
public sealed record HubFileMetadata(string Commit, string Etag, long Size, string Location);

/// <summary>
/// A Hugging Face Hub client that downloads into the same cache as huggingface_hub (blobs/, relative
/// snapshot symlinks, refs/), resumes interrupted downloads with HTTP Range, and honours
/// HF_HUB_OFFLINE by never opening a connection. The protocol follows huggingface_hub's
/// file_download.py (<c>hf_hub_download</c>, <c>get_hf_file_metadata</c>, <c>http_get</c>) and hf_api.py
/// (repo info, paginated tree listing).
/// </summary>
public sealed class HubClient : IDisposable
{
    readonly HttpClient _http;
    readonly bool _ownsHandler;

    public HubClient(HubSettings settings)
    {
        Settings = settings with { Endpoint = settings.Endpoint.TrimEnd('/') };
        Cache = new HubCache(settings.CacheDir);
        HttpMessageHandler handler = settings.Handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = settings.EtagTimeout,
        };
        _ownsHandler = settings.Handler is null;
        _http = new HttpClient(handler, disposeHandler: _ownsHandler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>A client configured from the process environment (HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HUB_OFFLINE...).</summary>
    public static HubClient FromEnvironment() => new(HubSettings.FromEnvironment());

    public HubSettings Settings { get; }
    public HubCache Cache { get; }
    public string CacheDir => Cache.Root;

    public void Dispose() => _http.Dispose();

    /// <summary>True when requests for this repository type must not touch the network.</summary>
    public bool IsOffline(RepoType type) => Settings.Offline || (type == RepoType.Dataset && Settings.DatasetsOffline);

    static readonly Regex RepoIdPattern = new(@"^(\b[\w\-.]+\b/)?\b[\w\-.]+\b$", RegexOptions.CultureInvariant);

    /// <summary>huggingface_hub's <c>validate_repo_id</c>: "name" or "namespace/name", word characters, '-', '.'.</summary>
    public static bool IsValidRepoId(string repoId) =>
        repoId.Length is > 0 and <= 96 && RepoIdPattern.IsMatch(repoId)
        && !repoId.Contains("--", StringComparison.Ordinal) && !repoId.Contains("..", StringComparison.Ordinal)
        && !repoId.EndsWith(".git", StringComparison.Ordinal);

    static void ValidateRepoId(string repoId)
    {
        if (!IsValidRepoId(repoId))
            throw new SpeculatorsException(
                $"'{repoId}' is not a valid Hugging Face repository id: expected 'name' or 'namespace/name' " +
                "(letters, digits, '-', '_', '.'; no '--' or '..'; at most 96 characters).");
    }

    // ------------------------------------------------------------------------------------------
    // URLs

    /// <summary><c>{endpoint}/{prefix}{repo}/resolve/{quote(revision, safe="")}/{quote(filename)}</c>.</summary>
    public string FileUrl(string repoId, string filename, RepoType type = RepoType.Model, string revision = "main") =>
        $"{Settings.Endpoint}/{type.UrlPrefix()}{repoId}/resolve/{Uri.EscapeDataString(revision)}/{QuotePath(filename)}";

    static string QuotePath(string path) => string.Join('/', path.Split('/').Select(Uri.EscapeDataString));

    string ApiRepoUrl(string repoId, RepoType type) => $"{Settings.Endpoint}/api/{type.Plural()}/{repoId}";

    // ------------------------------------------------------------------------------------------
    // Cache only

    /// <summary>The cached file, resolved through refs/ (huggingface_hub <c>try_to_load_from_cache</c>); never touches the network.</summary>
    public string? TryLoadFromCache(string repoId, string filename, RepoType type = RepoType.Model, string revision = "main") =>
        Cache.TryLoad(repoId, filename, type, revision);

    // ------------------------------------------------------------------------------------------
    // hf_hub_download

    /// <summary>
    /// Downloads one file into the cache and returns its snapshot path
    /// (<c>{cache}/{type}s--{org}--{name}/snapshots/{commit}/{filename}</c>). Without a network call when
    /// <paramref name="revision"/> is a commit hash that is cached, or in offline mode; falls back to the
    /// cache when the hub cannot be reached. Interrupted downloads resume from <c>blobs/{etag}.incomplete</c>.
    /// </summary>
    /// <param name="progress">Advanced by the bytes received; null shows a progress line of its own for large files.</param>
    public string DownloadFile(string repoId, string filename, RepoType type = RepoType.Model, string revision = "main", Progress? progress = null) =>
        DownloadFileAsync(repoId, filename, type, revision, progress).GetAwaiter().GetResult();

    public async Task<string> DownloadFileAsync(string repoId, string filename, RepoType type = RepoType.Model, string revision = "main", Progress? progress = null)
    {
        ValidateRepoId(repoId);
        HubCache.ValidateRelativeFilename(filename);
        if (string.IsNullOrEmpty(revision)) revision = "main";
        var target = new Target(repoId, type, revision, filename);
        string storage = Cache.StorageFolder(repoId, type);

        if (HubCache.IsCommitHash(revision))
        {
            string pointer = HubCache.PointerPath(storage, revision, filename);
            if (File.Exists(pointer)) return pointer;
        }

        HubFileMetadata meta;
        try
        {
            if (IsOffline(type)) throw OfflineError(target, storage);
            meta = await GetFileMetadataAsync(target).ConfigureAwait(false);
        }
        catch (HubException e) when (e.AllowsCacheFallback)
        {
            string? cached = CachedPointer(storage, revision, filename);
            if (cached is not null) return cached;
            throw WithCacheNote(e, target, storage);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.EntryNotFound && e.Data["commit"] is string commitOfMissing)
        {
            // Cache the absence (as huggingface_hub does), so try_to_load_from_cache knows without asking.
            HubCache.MarkMissing(storage, commitOfMissing, filename);
            TryWriteRef(storage, revision, commitOfMissing);
            throw;
        }

        string blob = HubCache.BlobPath(storage, meta.Etag);
        string pointerPath = HubCache.PointerPath(storage, meta.Commit, filename);
        if (File.Exists(pointerPath))
        {
            TryWriteRef(storage, revision, meta.Commit);
            return pointerPath;
        }

        Directory.CreateDirectory(Path.GetDirectoryName(blob)!);
        Directory.CreateDirectory(Path.GetDirectoryName(pointerPath)!);
        Cache.EnsureCacheDirTag();
        HubCache.WriteRef(storage, revision, meta.Commit);

        using (CacheLock.Acquire(Cache.LockPath(repoId, type, meta.Etag)))
        {
            if (File.Exists(blob))
            {
                if (!File.Exists(pointerPath)) HubCache.LinkPointer(blob, pointerPath, newBlob: false, Settings.DisableSymlinks);
                return pointerPath;
            }
            await DownloadBlobAsync(target, meta, blob, progress).ConfigureAwait(false);
            if (!File.Exists(pointerPath)) HubCache.LinkPointer(blob, pointerPath, newBlob: true, Settings.DisableSymlinks);
        }
        return pointerPath;
    }

    static string? CachedPointer(string storage, string revision, string filename)
    {
        string? commit = HubCache.IsCommitHash(revision) ? revision : HubCache.ReadRef(storage, revision);
        if (commit is null) return null;
        string pointer = HubCache.PointerPath(storage, commit, filename);
        return File.Exists(pointer) ? pointer : null;
    }

    static void TryWriteRef(string storage, string revision, string commit)
    {
        try { HubCache.WriteRef(storage, revision, commit); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { } // a read-only cache still serves its files
    }

    /// <summary>HEAD on the resolve URL: commit, etag, size and download location of a file.</summary>
    public HubFileMetadata GetFileMetadata(string repoId, string filename, RepoType type = RepoType.Model, string revision = "main")
    {
        ValidateRepoId(repoId);
        var target = new Target(repoId, type, revision, filename);
        if (IsOffline(type)) throw OfflineError(target, Cache.StorageFolder(repoId, type));
        return GetFileMetadataAsync(target).GetAwaiter().GetResult();
    }

    async Task<HubFileMetadata> GetFileMetadataAsync(Target target)
    {
        string url = FileUrl(target.RepoId, target.Filename!, target.Type, target.Revision);
        using var cts = new CancellationTokenSource(Settings.EtagTimeout);
        HttpResponseMessage response;
        int hops = 0;
        while (true)
        {
            using var request = NewRequest(HttpMethod.Head, url, withAuth: true);
            request.Headers.AcceptEncoding.Add(new StringWithQualityHeaderValue("identity"));
            response = await SendAsync(request, target, cts.Token).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            string? location = Header(response, "Location");
            // Relative redirects (a renamed repository) are followed by replacing the path; an absolute
            // Location (CDN / LFS storage) ends the loop: it is where the content will be fetched from.
            if (status is >= 300 and < 400 && location is not null && !IsAbsoluteUrl(location) && hops++ < 10)
            {
                // As huggingface_hub: urlparse(url)._replace(path=location.path), so the query stays and the
                // path keeps its percent-encoding (a revision like refs%2Fpr%2F1 must stay one segment).
                var baseUri = new Uri(url);
                url = baseUri.GetLeftPart(UriPartial.Authority) + location.Split('?')[0] + baseUri.Query;
                response.Dispose();
                continue;
            }
            break;
        }
        using (response)
        {
            int status = (int)response.StatusCode;
            if (status >= 400) throw HttpError(response, target, url);
            string? commit = Header(response, "X-Repo-Commit");
            if (string.IsNullOrEmpty(commit))
                throw new HubException(HubErrorKind.BadResponse,
                    $"{url} answered without an X-Repo-Commit header, so {Settings.Endpoint} does not look like a Hugging Face hub " +
                    "(check HF_ENDPOINT and any proxy between you and the hub).", status);
            string? etag = NormalizeEtag(Header(response, "X-Linked-Etag") ?? Header(response, "ETag"));
            if (string.IsNullOrEmpty(etag))
                throw new HubException(HubErrorKind.BadResponse, $"{url} answered without an ETag, so the file cannot be cached reliably.", status);
            bool redirect = status is >= 300 and < 400;
            long? size = ParseLong(Header(response, "X-Linked-Size")) ?? (redirect ? null : response.Content.Headers.ContentLength);
            if (size is null)
                throw new HubException(HubErrorKind.BadResponse, $"{url} answered without the file size (X-Linked-Size / Content-Length).", status);
            string location = Header(response, "Location") ?? url;
            if (!IsAbsoluteUrl(location)) location = new Uri(new Uri(url), location).AbsoluteUri;
            if (etag.Contains('/') || etag.Contains('\\') || etag is "." or "..")
                throw new HubException(HubErrorKind.BadResponse, $"{url} answered with an ETag '{etag}' that cannot name a cache file.", status);
            return new HubFileMetadata(commit, etag, size.Value, location);
        }
    }

    /// <summary>huggingface_hub's <c>_normalize_etag</c>: <c>etag.lstrip("W/").strip('"')</c>.</summary>
    internal static string? NormalizeEtag(string? etag) => etag?.TrimStart('W', '/').Trim('"');

    static long? ParseLong(string? s) => long.TryParse(s, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out long v) ? v : null;

    static bool IsAbsoluteUrl(string s) => Uri.TryCreate(s, UriKind.Absolute, out var u) && (u.Scheme == "http" || u.Scheme == "https");

    static bool SameAuthority(string a, string b)
    {
        var ua = new Uri(a);
        var ub = new Uri(b);
        return string.Equals(ua.Host, ub.Host, StringComparison.OrdinalIgnoreCase) && ua.Port == ub.Port && ua.Scheme == ub.Scheme;
    }

    static readonly Regex Sha256Hex = new("^[0-9a-f]{64}$", RegexOptions.CultureInvariant);

    async Task DownloadBlobAsync(Target target, HubFileMetadata meta, string blob, Progress? progress)
    {
        string resolveUrl = FileUrl(target.RepoId, target.Filename!, target.Type, target.Revision);
        string incomplete = blob + ".incomplete";
        long expected = meta.Size;
        WarnIfLowDiskSpace(blob, expected);

        using Progress? own = progress is null && Settings.ShowProgress && expected >= (16L << 20)
            ? new Progress($"downloading {target.RepoId}/{target.Filename}", expected, "B") : null;
        Progress? bar = progress ?? own;

        // SHA-256 of LFS files is checked while the bytes are written (the etag of an LFS file is its sha256).
        bool verify = Sha256Hex.IsMatch(meta.Etag);
        using var fs = new FileStream(incomplete, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read, 1 << 16);
        long have = fs.Length;
        if (have > expected) { fs.SetLength(0); have = 0; }
        IncrementalHash? sha = verify ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        try
        {
            if (sha is not null && have > 0) HashPrefix(fs, have, sha);
            fs.Seek(have, SeekOrigin.Begin);
            if (have > 0)
            {
                Log.Info($"resuming {target.RepoId}/{target.Filename} at {have:N0} of {expected:N0} bytes");
                bar?.Advance(have);
            }

            string url = meta.Location;
            bool refreshed = false;
            int attemptsLeft = Settings.MaxResumeAttempts;
            var buffer = new byte[1 << 20];
            while (have < expected)
            {
                bool sendAuth = SameAuthority(url, resolveUrl);
                try
                {
                    using var headerCts = new CancellationTokenSource(Settings.DownloadTimeout);
                    using var response = await GetFollowingRedirectsAsync(url, sendAuth, have > 0 ? have : null, target, headerCts.Token).ConfigureAwait(false);
                    int status = (int)response.StatusCode;
                    if (status == 416)
                    {
                        // The server refuses our range: the partial file is not a prefix it knows. Start over.
                        fs.SetLength(0); have = 0; sha?.Dispose(); sha = verify ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
                        if (--attemptsLeft < 0) throw new HubException(HubErrorKind.BadResponse, $"{url} refused every byte range while downloading {Describe(target)}.", 416);
                        continue;
                    }
                    if (status >= 400)
                    {
                        // A signed CDN URL may have expired while we were resuming: ask the hub for a fresh one once.
                        if (!refreshed && url != resolveUrl && (status is 401 or 403 or 404 or 410))
                        {
                            refreshed = true;
                            url = (await GetFileMetadataAsync(target).ConfigureAwait(false)).Location;
                            continue;
                        }
                        throw HttpError(response, target, url);
                    }
                    if (have > 0 && status == 200)
                    {
                        // The server ignored Range and sends the whole file: discard the partial data.
                        bar?.Advance(-have);
                        fs.SetLength(0); have = 0; fs.Seek(0, SeekOrigin.Begin);
                        sha?.Dispose(); sha = verify ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
                    }
                    await using var body = await response.Content.ReadAsStreamAsync().ConfigureAwait(false);
                    while (true)
                    {
                        using var readCts = new CancellationTokenSource(Settings.DownloadTimeout);
                        int n = await body.ReadAsync(buffer, readCts.Token).ConfigureAwait(false);
                        if (n == 0) break;
                        if (have + n > expected)
                            throw new HubException(HubErrorKind.Integrity,
                                $"Consistency check failed: {url} sent more than the {expected:N0} bytes announced for {Describe(target)}.");
                        fs.Write(buffer, 0, n);
                        sha?.AppendData(buffer, 0, n);
                        have += n;
                        bar?.Advance(n);
                        attemptsLeft = Settings.MaxResumeAttempts; // data arrived: the connection works
                    }
                    if (have < expected) throw new IOException($"the connection closed after {have:N0} of {expected:N0} bytes");
                }
                catch (Exception e) when (IsTransient(e) && attemptsLeft > 0)
                {
                    attemptsLeft--;
                    Log.Warn($"download of {target.RepoId}/{target.Filename} interrupted at {have:N0}/{expected:N0} bytes ({Inner(e)}); resuming");
                    fs.Flush();
                    if (Settings.RetryDelay > TimeSpan.Zero) await Task.Delay(Settings.RetryDelay).ConfigureAwait(false);
                }
                catch (Exception e) when (IsTransient(e))
                {
                    fs.Flush();
                    throw new HubException(HubErrorKind.Network,
                        $"Downloading {Describe(target)} from {HostOf(url)} failed after {Settings.MaxResumeAttempts} resumes at " +
                        $"{have:N0} of {expected:N0} bytes: {Inner(e)}. Run again to resume from {incomplete}.", null, e);
                }
            }
            fs.Flush(flushToDisk: true);
            if (fs.Length != expected)
                throw new HubException(HubErrorKind.Integrity,
                    $"Consistency check failed: {incomplete} has {fs.Length:N0} bytes, expected {expected:N0} for {Describe(target)}.");
            if (sha is not null)
            {
                string got = Convert.ToHexStringLower(sha.GetHashAndReset());
                if (got != meta.Etag)
                {
                    fs.Dispose();
                    File.Delete(incomplete);
                    throw new HubException(HubErrorKind.Integrity,
                        $"Downloaded {Describe(target)} is corrupt: its SHA-256 is {got}, expected {meta.Etag}. The partial file was discarded; run again.");
                }
            }
        }
        finally
        {
            sha?.Dispose();
        }
        fs.Dispose();
        File.Move(incomplete, blob, overwrite: true);
    }

    static void HashPrefix(FileStream fs, long length, IncrementalHash sha)
    {
        fs.Seek(0, SeekOrigin.Begin);
        var buf = new byte[1 << 20];
        long left = length;
        while (left > 0)
        {
            int n = fs.Read(buf, 0, (int)Math.Min(buf.Length, left));
            if (n == 0) break;
            sha.AppendData(buf, 0, n);
            left -= n;
        }
    }

    static void WarnIfLowDiskSpace(string path, long expected)
    {
        try
        {
            var free = new DriveInfo(Path.GetDirectoryName(Path.GetFullPath(path))!).AvailableFreeSpace;
            if (free < expected)
                Log.Warn($"not enough free disk space for {path}: the file has {expected / 1e6:F1} MB and {free / 1e6:F1} MB are free");
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException) { }
    }

    static bool IsTransient(Exception e) =>
        e is HttpRequestException or IOException or OperationCanceledException
        && e is not HubException;

    // ------------------------------------------------------------------------------------------
    // Listing (hf_api repo_info + list_repo_tree) and snapshot_download

    /// <summary>Paths of all files of the repository at <paramref name="revision"/>, sorted.</summary>
    public IReadOnlyList<string> ListRepoFiles(string repoId, RepoType type = RepoType.Model, string revision = "main") =>
        ListRepoTree(repoId, type, revision).Files.Select(f => f.Path).ToList();

    /// <summary>
    /// The commit of <paramref name="revision"/> and all its files (GET /api/{type}s/{repo}/revision/{rev} for the
    /// commit, then the recursive, paginated /tree listing, cached in trees/{commit}.json like huggingface_hub).
    /// Offline or unreachable: from refs/ and the tree cache, or else from what the snapshot folder holds.
    /// Writes refs/{revision}.
    /// </summary>
    public RepoListing ListRepoTree(string repoId, RepoType type = RepoType.Model, string revision = "main") =>
        ListRepoTreeAsync(repoId, type, revision).GetAwaiter().GetResult();

    public async Task<RepoListing> ListRepoTreeAsync(string repoId, RepoType type = RepoType.Model, string revision = "main")
    {
        ValidateRepoId(repoId);
        if (string.IsNullOrEmpty(revision)) revision = "main";
        var target = new Target(repoId, type, revision, null);
        string storage = Cache.StorageFolder(repoId, type);
        string? commit = HubCache.IsCommitHash(revision) ? revision : null;
        try
        {
            if (IsOffline(type)) throw OfflineError(target, storage);
            commit ??= await GetCommitAsync(target).ConfigureAwait(false);
            var files = HubCache.ReadTree(storage, commit);
            if (files is null)
            {
                files = await FetchTreeAsync(target, commit).ConfigureAwait(false);
                HubCache.WriteTree(storage, commit, files);
            }
            TryWriteRef(storage, revision, commit);
            return new RepoListing(repoId, type, commit, files.OrderBy(f => f.Path, StringComparer.Ordinal).ToList());
        }
        catch (HubException e) when (e.AllowsCacheFallback)
        {
            commit ??= HubCache.ReadRef(storage, revision);
            if (commit is not null)
            {
                var cachedTree = HubCache.ReadTree(storage, commit);
                if (cachedTree is not null)
                    return new RepoListing(repoId, type, commit, cachedTree.OrderBy(f => f.Path, StringComparer.Ordinal).ToList()) { FallbackReason = e.Message };
                var present = HubCache.ListSnapshotFiles(storage, commit);
                if (present.Count > 0)
                {
                    var entries = present.Select(p => new RepoFileEntry(p, new FileInfo(HubCache.PointerPath(storage, commit, p)).Length, "")).ToList();
                    return new RepoListing(repoId, type, commit, entries) { FromSnapshotFolder = true, FallbackReason = e.Message };
                }
            }
            throw WithCacheNote(e, target, storage);
        }
    }

    /// <summary>
    /// huggingface_hub's <c>snapshot_download</c> into the cache: lists the commit, downloads every file
    /// <paramref name="allowFile"/> accepts (all when null), writes refs/{revision}, returns snapshots/{commit}.
    /// </summary>
    public string SnapshotDownload(string repoId, RepoType type = RepoType.Model, string revision = "main", Func<string, bool>? allowFile = null)
    {
        var listing = ListRepoTree(repoId, type, revision);
        var wanted = listing.Files.Where(f => allowFile?.Invoke(f.Path) ?? true).ToList();
        DownloadFiles(listing, wanted.Select(f => f.Path).ToList());
        string dir = Path.Combine(Cache.StorageFolder(repoId, type), "snapshots", listing.Commit);
        Directory.CreateDirectory(dir);
        return dir;
    }

    /// <summary>Downloads the named files of a listing (at its commit) with one progress line over their total size.</summary>
    public IReadOnlyList<string> DownloadFiles(RepoListing listing, IReadOnlyList<string> paths)
    {
        string storage = Cache.StorageFolder(listing.RepoId, listing.Type);
        var sizes = listing.Files.ToDictionary(f => f.Path, f => f.Size, StringComparer.Ordinal);
        var missing = paths.Where(p => !File.Exists(HubCache.PointerPath(storage, listing.Commit, p))).ToList();
        long total = missing.Sum(p => sizes.TryGetValue(p, out long s) ? s : 0);
        if (missing.Count > 0 && !IsOffline(listing.Type))
            Log.Info($"downloading {missing.Count} file(s), {FormatBytes(total)}, of {listing.RepoId} into {CacheDir}");
        using Progress? bar = missing.Count > 0 && Settings.ShowProgress && !IsOffline(listing.Type)
            ? new Progress($"downloading {listing.RepoId}", total, "B") : null;
        // Several files at once, as snapshot_download does (max_workers=8): one connection rarely fills the link.
        var result = new string[paths.Count];
        Parallel.ForEachAsync(Enumerable.Range(0, paths.Count),
            new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Settings.MaxParallelDownloads) },
            async (i, _) => result[i] = await DownloadFileAsync(listing.RepoId, paths[i], listing.Type, listing.Commit, bar).ConfigureAwait(false))
            .GetAwaiter().GetResult();
        return result;
    }

    internal static string FormatBytes(long b) =>
        b >= 1L << 30 ? $"{b / (double)(1L << 30):F1} GiB" : b >= 1L << 20 ? $"{b / (double)(1L << 20):F1} MiB" : b >= 1024 ? $"{b / 1024.0:F1} KiB" : $"{b} B";

    async Task<string> GetCommitAsync(Target target)
    {
        string url = $"{ApiRepoUrl(target.RepoId, target.Type)}/revision/{Uri.EscapeDataString(target.Revision)}";
        using var doc = await GetJsonAsync(url, target).ConfigureAwait(false);
        if (doc.Doc.RootElement.ValueKind == JsonValueKind.Object
            && doc.Doc.RootElement.TryGetProperty("sha", out var sha) && sha.ValueKind == JsonValueKind.String
            && HubCache.IsCommitHash(sha.GetString()!))
            return sha.GetString()!;
        throw new HubException(HubErrorKind.BadResponse, $"{url} answered without a commit 'sha'; {Settings.Endpoint} does not look like a Hugging Face hub.");
    }

    async Task<List<RepoFileEntry>> FetchTreeAsync(Target target, string commit)
    {
        string? url = $"{ApiRepoUrl(target.RepoId, target.Type)}/tree/{Uri.EscapeDataString(commit)}?recursive=true&expand=false";
        var files = new List<RepoFileEntry>();
        int pages = 0;
        while (url is not null)
        {
            using var page = await GetJsonAsync(url, target).ConfigureAwait(false);
            if (page.Doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new HubException(HubErrorKind.BadResponse, $"{url} did not answer with a JSON array of tree entries.");
            try { ParseTreePage(page.Doc.RootElement, files); }
            catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
            {
                throw new HubException(HubErrorKind.BadResponse, $"{url} answered with tree entries of an unexpected shape ({e.Message}).", null, e);
            }
            url = NextLink(page.Link);
            if (++pages > 100_000) throw new HubException(HubErrorKind.BadResponse, "The tree listing did not end (more than 100,000 pages).");
        }
        return files;
    }

    static void ParseTreePage(JsonElement page, List<RepoFileEntry> files)
    {
        foreach (var e in page.EnumerateArray())
        {
            if (!e.TryGetProperty("type", out var t) || t.GetString() != "file") continue;
            string path = e.GetProperty("path").GetString() ?? "";
            long size = e.TryGetProperty("size", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetInt64() : 0;
            string oid = e.TryGetProperty("oid", out var o) && o.ValueKind == JsonValueKind.String ? o.GetString()! : "";
            string? lfsOid = null; long? lfsSize = null;
            if (e.TryGetProperty("lfs", out var lfs) && lfs.ValueKind == JsonValueKind.Object)
            {
                lfsOid = lfs.TryGetProperty("oid", out var lo) ? lo.GetString() : lfs.TryGetProperty("sha256", out var ls) ? ls.GetString() : null;
                lfsSize = lfs.TryGetProperty("size", out var lz) && lz.ValueKind == JsonValueKind.Number ? lz.GetInt64() : null;
            }
            string? xet = e.TryGetProperty("xetHash", out var x) && x.ValueKind == JsonValueKind.String ? x.GetString() : null;
            files.Add(new RepoFileEntry(path, size, oid, lfsOid, lfsSize, xet));
        }
    }

    /// <summary>The <c>rel="next"</c> URL of an RFC 8288 Link header, or null.</summary>
    internal static string? NextLink(string? link)
    {
        if (string.IsNullOrEmpty(link)) return null;
        foreach (Match m in Regex.Matches(link, "<([^>]*)>\\s*((?:;\\s*[^;,]+)*)"))
            if (Regex.IsMatch(m.Groups[2].Value, "rel\\s*=\\s*\"?next\"?", RegexOptions.IgnoreCase)) return m.Groups[1].Value;
        return null;
    }

    sealed class JsonPage(JsonDocument doc, string? link) : IDisposable
    {
        public JsonDocument Doc { get; } = doc;
        public string? Link { get; } = link;
        public void Dispose() => Doc.Dispose();
    }

    async Task<JsonPage> GetJsonAsync(string url, Target target)
    {
        using var cts = new CancellationTokenSource(Settings.EtagTimeout > TimeSpan.FromSeconds(30) ? Settings.EtagTimeout : TimeSpan.FromSeconds(30));
        HttpResponseMessage response;
        try { response = await GetFollowingRedirectsAsync(url, sendAuth: true, null, target, cts.Token).ConfigureAwait(false); }
        catch (Exception e) when (IsTransient(e)) { throw NetworkError(e, target, url); }
        using var _ = response;
        if ((int)response.StatusCode >= 400) throw HttpError(response, target, url);
        try
        {
            byte[] bytes = await response.Content.ReadAsByteArrayAsync(cts.Token).ConfigureAwait(false);
            return new JsonPage(JsonDocument.Parse(bytes), Header(response, "Link"));
        }
        catch (JsonException e)
        {
            throw new HubException(HubErrorKind.BadResponse, $"{url} did not answer with JSON ({e.Message}); check HF_ENDPOINT.", (int)response.StatusCode, e);
        }
        catch (Exception e) when (IsTransient(e))
        {
            throw NetworkError(e, target, url);
        }
    }

    // ------------------------------------------------------------------------------------------
    // HTTP plumbing

    HttpRequestMessage NewRequest(HttpMethod method, string url, bool withAuth)
    {
        var request = new HttpRequestMessage(method, url);
        request.Headers.TryAddWithoutValidation("User-Agent", $"{ProductInfo.Name}/{ProductInfo.Version}; dotnet/{Environment.Version}");
        if (withAuth && Settings.Token is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", Settings.Token);
        return request;
    }

    async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, Target target, CancellationToken ct)
    {
        try
        {
            return await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (Exception e) when (IsTransient(e))
        {
            throw NetworkError(e, target, request.RequestUri!.AbsoluteUri);
        }
    }

    /// <summary>GET that follows redirects itself, dropping the Authorization header when the host changes (signed CDN URLs).</summary>
    async Task<HttpResponseMessage> GetFollowingRedirectsAsync(string url, bool sendAuth, long? rangeFrom, Target target, CancellationToken ct)
    {
        for (int hop = 0; ; hop++)
        {
            using var request = NewRequest(HttpMethod.Get, url, sendAuth);
            if (rangeFrom is long from) request.Headers.Range = new RangeHeaderValue(from, null);
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            string? location = Header(response, "Location");
            if (status is 301 or 302 or 303 or 307 or 308 && location is not null && hop < 10)
            {
                string next = new Uri(new Uri(url), location).AbsoluteUri;
                if (!SameAuthority(url, next)) sendAuth = false;
                url = next;
                response.Dispose();
                continue;
            }
            return response;
        }
    }

    static string? Header(HttpResponseMessage response, string name)
    {
        if (response.Headers.TryGetValues(name, out var values)) return values.FirstOrDefault();
        if (response.Content.Headers.TryGetValues(name, out var cvalues)) return cvalues.FirstOrDefault();
        return null;
    }

    // ------------------------------------------------------------------------------------------
    // Error messages

    readonly record struct Target(string RepoId, RepoType Type, string Revision, string? Filename);

    static string Describe(Target t) =>
        t.Filename is null ? $"{t.Type.Name()} '{t.RepoId}' (revision '{t.Revision}')"
                           : $"'{t.Filename}' of {t.Type.Name()} '{t.RepoId}' (revision '{t.Revision}')";

    static string HostOf(string url) => Uri.TryCreate(url, UriKind.Absolute, out var u) ? u.GetLeftPart(UriPartial.Authority) : url;

    static string Inner(Exception e)
    {
        var parts = new List<string>();
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            string m = x is OperationCanceledException ? "timed out" : x.Message;
            if (parts.Count == 0 || !parts[^1].Contains(m, StringComparison.Ordinal)) parts.Add(m);
        }
        return string.Join(": ", parts);
    }

    HubException OfflineError(Target t, string storage)
    {
        string var = Settings.Offline ? "HF_HUB_OFFLINE" : "HF_DATASETS_OFFLINE";
        string what = t.Filename is null
            ? $"the file list of {Describe(t)} is not cached"
            : $"{Describe(t)} is not in the cache";
        return new HubException(HubErrorKind.Offline,
            $"{var} is set, so the hub is not contacted, and {what} (looked in {storage}). " +
            $"Run once with network access (unset {var}) to download it, or point HF_HUB_CACHE/HF_HOME at a cache that has it.");
    }

    HubException NetworkError(Exception e, Target t, string url) =>
        new(HubErrorKind.Network,
            $"Could not reach the Hugging Face hub at {HostOf(url)} (HF_ENDPOINT={Settings.Endpoint}) for {Describe(t)}: {Inner(e)}.",
            null, e);

    /// <summary>Adds "and it is not in the cache" to errors raised after the cache fallback found nothing.</summary>
    HubException WithCacheNote(HubException e, Target t, string storage)
    {
        if (e.Kind == HubErrorKind.Offline) return e;
        string note = e.Kind switch
        {
            HubErrorKind.Network or HubErrorKind.Server or HubErrorKind.BadResponse =>
                $" Nothing for it is cached in {storage} either. Check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only cached files.",
            _ => $" Nothing for it is cached in {storage} either.",
        };
        var wrapped = new HubException(e.Kind, e.Message + note, e.StatusCode, e);
        foreach (System.Collections.DictionaryEntry kv in e.Data) wrapped.Data[kv.Key] = kv.Value;
        return wrapped;
    }

    HubException HttpError(HttpResponseMessage response, Target t, string url)
    {
        int status = (int)response.StatusCode;
        string? code = Header(response, "X-Error-Code");
        string? serverMessage = Header(response, "X-Error-Message");
        string detail = string.IsNullOrEmpty(serverMessage) ? "" : $" The hub said: \"{serverMessage}\".";
        string tokenNote = Settings.Token is null
            ? "No token was sent: set HF_TOKEN (or log in with `hf auth login`, which writes the token file)"
            : $"The token from {Settings.TokenSource ?? "the settings"} was sent; check that it is valid and has read access";
        HubException error;
        if (code == "RevisionNotFound")
            error = new HubException(HubErrorKind.RevisionNotFound,
                $"Revision '{t.Revision}' not found in {t.Type.Name()} '{t.RepoId}' on {Settings.Endpoint} (HTTP {status}): check the branch, tag or commit.{detail}", status);
        else if (code == "EntryNotFound")
            error = new HubException(HubErrorKind.EntryNotFound,
                $"File '{t.Filename}' not found in {t.Type.Name()} '{t.RepoId}' at revision '{t.Revision}' (HTTP {status}).{detail}", status);
        else if (code == "GatedRepo")
            error = new HubException(HubErrorKind.Gated,
                $"{t.Type.Name()} '{t.RepoId}' is a gated repository (HTTP {status}): accept its terms on {Settings.Endpoint}/{t.Type.UrlPrefix()}{t.RepoId} " +
                $"with your account, and set HF_TOKEN to a token of that account. {tokenNote}.{detail}", status);
        else if (status == 401)
            error = new HubException(HubErrorKind.Unauthorized,
                $"Access denied (HTTP 401) to {t.Type.Name()} '{t.RepoId}' on {Settings.Endpoint}: the repository does not exist, is private, " +
                $"or is gated. {tokenNote}; for gated repos also accept the terms on the repository page.{detail}", status);
        else if (status == 403)
            error = new HubException(HubErrorKind.Forbidden,
                $"Access forbidden (HTTP 403) to {t.Type.Name()} '{t.RepoId}' on {Settings.Endpoint}. {tokenNote}; " +
                $"gated repos need their terms accepted on the repository page.{detail}", status);
        else if (code == "RepoNotFound" || (status == 404 && t.Filename is null))
            error = new HubException(HubErrorKind.RepoNotFound,
                $"Repository '{t.RepoId}' ({t.Type.Name()}) not found on {Settings.Endpoint} (HTTP {status}): check the id" +
                (t.Type == RepoType.Model ? "" : $" and that it is a {t.Type.Name()} repository") + $".{detail}", status);
        else if (status == 404)
            error = new HubException(HubErrorKind.EntryNotFound,
                $"Not found (HTTP 404): {Describe(t)} at {url} — the repository, revision or file does not exist.{detail}", status);
        else if (status >= 500 || status == 429)
            error = new HubException(HubErrorKind.Server,
                $"The hub at {Settings.Endpoint} answered HTTP {status} for {Describe(t)} ({url}); try again later.{detail}", status);
        else
            error = new HubException(HubErrorKind.BadResponse, $"Unexpected HTTP {status} from {url} for {Describe(t)}.{detail}", status);
        string? commit = Header(response, "X-Repo-Commit");
        if (commit is not null && HubCache.IsCommitHash(commit)) error.Data["commit"] = commit;
        return error;
    }
}
