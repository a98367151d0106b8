using System.Text;
using System.Text.Json;
using Speculators.Hub;

namespace Speculators.Tests.Hub;

public class HubClientTests
{
    internal static byte[] Bytes(int n, int seed)
    {
        var b = new byte[n];
        new Random(seed).NextBytes(b);
        return b;
    }

    internal static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    static string Storage(string cache, string repo, string type = "models") => Path.Combine(cache, $"{type}--{repo.Replace("/", "--")}");

    [Fact]
    public void DownloadWritesTheHuggingFaceCacheLayout()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var config = Utf8("{\"model_type\": \"llama\"}");
        var weights = Bytes(4000, 1);
        var notes = Utf8("nested file");
        var repo = hub.AddRepo("org/tiny");
        string commit = repo.Commit(new() { ["config.json"] = config, ["model.safetensors"] = weights, ["sub/dir/notes.txt"] = notes });
        using var client = new HubClient(hub.Settings(dir.Path, token: "hf_abc"));

        string storage = Storage(dir.Path, "org/tiny");
        string cfg = client.DownloadFile("org/tiny", "config.json");
        Assert.Equal(Path.Combine(storage, "snapshots", commit, "config.json"), cfg);
        Assert.Equal(config, File.ReadAllBytes(cfg));
        string sha1 = FakeFile.GitBlobSha1(config);
        Assert.Equal($"../../blobs/{sha1}", new FileInfo(cfg).LinkTarget);
        Assert.Equal(config, File.ReadAllBytes(Path.Combine(storage, "blobs", sha1)));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(storage, "refs", "main"))); // no newline
        Assert.Equal(HubCache.CacheDirTagContent, File.ReadAllText(Path.Combine(dir.Path, "CACHEDIR.TAG")));

        string w = client.DownloadFile("org/tiny", "model.safetensors");
        var f = repo.Commits[commit]["model.safetensors"];
        Assert.True(f.Lfs);
        Assert.Equal($"../../blobs/{f.Sha256}", new FileInfo(w).LinkTarget);
        Assert.Equal(weights, File.ReadAllBytes(w));
        Assert.True(File.Exists(Path.Combine(dir.Path, ".locks", "models--org--tiny", f.Sha256 + ".lock")));
        Assert.Empty(Directory.GetFiles(Path.Combine(storage, "blobs"), "*.incomplete"));

        string nested = client.DownloadFile("org/tiny", "sub/dir/notes.txt");
        Assert.Equal($"../../../../blobs/{FakeFile.GitBlobSha1(notes)}", new FileInfo(nested).LinkTarget);
        Assert.Equal(notes, File.ReadAllBytes(nested));

        // The token goes to the hub as a bearer token, never to the CDN holding the LFS content.
        var heads = hub.Hub.Requests.Where(r => r.Method == "HEAD").ToList();
        Assert.Equal(3, heads.Count);
        Assert.All(heads, r => Assert.Equal("Bearer hf_abc", r.Header("Authorization")));
        Assert.All(heads, r => Assert.Equal("identity", r.Header("Accept-Encoding")));
        var cdnGet = Assert.Single(hub.Cdn.Requests);
        Assert.Equal("GET", cdnGet.Method);
        Assert.Null(cdnGet.Header("Authorization"));
        Assert.Null(cdnGet.Header("Range"));
    }

    [Fact]
    public void CachedFilesNeedNoNetwork()
    {
        var hub = new FakeHub();
        using var dir = new TempDir();
        var repo = hub.AddRepo("org/tiny");
        string commit = repo.Commit(new() { ["config.json"] = Utf8("{}"), ["model.safetensors"] = Bytes(3000, 2) });
        using var client = new HubClient(hub.Settings(dir.Path));
        string cfg = client.DownloadFile("org/tiny", "config.json");
        int before = hub.RequestCount;

        // A commit revision that is cached: no request at all.
        Assert.Equal(cfg, client.DownloadFile("org/tiny", "config.json", revision: commit));
        Assert.Equal(before, hub.RequestCount);
        Assert.Equal(cfg, client.TryLoadFromCache("org/tiny", "config.json"));
        Assert.Null(client.TryLoadFromCache("org/tiny", "model.safetensors"));

        // Server down: "main" resolves through refs/main to the cached snapshot.
        hub.Dispose();
        Assert.Equal(cfg, client.DownloadFile("org/tiny", "config.json"));
        var e = Assert.Throws<HubException>(() => client.DownloadFile("org/tiny", "model.safetensors"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains(hub.Endpoint, e.Message);
        Assert.Contains("refused", e.Message, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(Storage(dir.Path, "org/tiny"), e.Message);
        Assert.DoesNotContain("   at ", e.Message);
    }

    [Fact]
    public void ListingFallsBackToTheCacheWhenTheHubIsDown()
    {
        var hub = new FakeHub();
        using var dir = new TempDir();
        string commit = hub.AddRepo("org/tiny").Commit(new() { ["config.json"] = Utf8("{}"), ["b.txt"] = Utf8("b") });
        using var client = new HubClient(hub.Settings(dir.Path));
        var online = client.ListRepoTree("org/tiny");
        Assert.Null(online.FallbackReason);
        hub.Dispose();

        var cached = client.ListRepoTree("org/tiny");
        Assert.Equal(commit, cached.Commit);
        Assert.Equal(["b.txt", "config.json"], cached.Files.Select(f => f.Path));
        Assert.Contains("Could not reach", cached.FallbackReason);

        var e = Assert.Throws<HubException>(() => client.ListRepoFiles("org/other"));
        Assert.Equal(HubErrorKind.Network, e.Kind);
        Assert.Contains(hub.Endpoint, e.Message);
        Assert.Contains("HF_HUB_OFFLINE=1", e.Message);
        var m = Assert.Throws<HubException>(() => ModelLocator.Resolve("org/other", client));
        Assert.Equal(HubErrorKind.Network, m.Kind);
    }

    [Fact]
    public void ResumesFromAnIncompleteBlob()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var content = Bytes(300_000, 3);
        var repo = hub.AddRepo("org/big");
        repo.Commit(new() { ["model.safetensors"] = content });
        string sha = repo.Commits.Values.Single()["model.safetensors"].Sha256;
        string blobs = Path.Combine(Storage(dir.Path, "org/big"), "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, sha + ".incomplete"), content[..100_000]);

        using var client = new HubClient(hub.Settings(dir.Path));
        string path = client.DownloadFile("org/big", "model.safetensors");
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal("bytes=100000-", Assert.Single(hub.Cdn.Requests).Header("Range"));
        Assert.False(File.Exists(Path.Combine(blobs, sha + ".incomplete")));
    }

    [Fact]
    public void ResumesWhenTheConnectionDrops()
    {
        using var hub = new FakeHub { TruncateCdnDownloads = 2, TruncateAt = 50_000 };
        using var dir = new TempDir();
        var content = Bytes(200_000, 4);
        hub.AddRepo("org/big").Commit(new() { ["model.safetensors"] = content });
        using var client = new HubClient(hub.Settings(dir.Path));
        string path = client.DownloadFile("org/big", "model.safetensors");
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal("(none)|bytes=50000-|bytes=100000-", string.Join("|", hub.Cdn.Requests.Select(r => r.Header("Range") ?? "(none)")));
    }

    [Fact]
    public void RestartsWhenTheServerIgnoresRange()
    {
        using var hub = new FakeHub { IgnoreRange = true };
        using var dir = new TempDir();
        var content = Bytes(120_000, 5);
        var repo = hub.AddRepo("org/big");
        repo.Commit(new() { ["model.safetensors"] = content });
        string sha = repo.Commits.Values.Single()["model.safetensors"].Sha256;
        string blobs = Path.Combine(Storage(dir.Path, "org/big"), "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, sha + ".incomplete"), Bytes(40_000, 99)); // a wrong prefix: must be discarded

        using var client = new HubClient(hub.Settings(dir.Path));
        Assert.Equal(content, File.ReadAllBytes(client.DownloadFile("org/big", "model.safetensors")));
        Assert.Equal("bytes=40000-", Assert.Single(hub.Cdn.Requests).Header("Range"));
    }

    [Fact]
    public void CorruptContentIsRejected()
    {
        using var hub = new FakeHub { CorruptCdn = true };
        using var dir = new TempDir();
        string commit = hub.AddRepo("org/big").Commit(new() { ["model.safetensors"] = Bytes(5000, 6) });
        using var client = new HubClient(hub.Settings(dir.Path));
        var e = Assert.Throws<HubException>(() => client.DownloadFile("org/big", "model.safetensors"));
        Assert.Equal(HubErrorKind.Integrity, e.Kind);
        Assert.Contains("SHA-256", e.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(Storage(dir.Path, "org/big"), "blobs")));
        Assert.Empty(HubCache.ListSnapshotFiles(Storage(dir.Path, "org/big"), commit));
    }

    [Fact]
    public void OfflineModeNeverConnects()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        hub.AddRepo("org/tiny").Commit(new() { ["config.json"] = Utf8("{\"a\": 1}"), ["tokenizer.json"] = Utf8("{}") });
        using (var online = new HubClient(hub.Settings(dir.Path))) online.DownloadFile("org/tiny", "config.json");
        int before = hub.RequestCount;

        using var offline = new HubClient(hub.Settings(dir.Path, offline: true));
        Assert.Equal(Utf8("{\"a\": 1}"), File.ReadAllBytes(offline.DownloadFile("org/tiny", "config.json")));
        var e = Assert.Throws<HubException>(() => offline.DownloadFile("org/tiny", "tokenizer.json"));
        Assert.Equal(HubErrorKind.Offline, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Contains("'tokenizer.json'", e.Message);
        Assert.Contains(Storage(dir.Path, "org/tiny"), e.Message);
        var e2 = Assert.Throws<HubException>(() => offline.DownloadFile("org/other", "config.json"));
        Assert.Contains(Storage(dir.Path, "org/other"), e2.Message);
        Assert.Equal(before, hub.RequestCount);
    }

    [Fact]
    public void TokenAndGatedRepositories()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var repo = hub.AddRepo("meta/gated");
        repo.GatedToken = "hf_ok";
        repo.Commit(new() { ["config.json"] = Utf8("{}") });

        using (var anonymous = new HubClient(hub.Settings(dir.Path)))
        {
            var e = Assert.Throws<HubException>(() => anonymous.DownloadFile("meta/gated", "config.json"));
            Assert.Equal(HubErrorKind.Gated, e.Kind);
            Assert.Contains("HF_TOKEN", e.Message);
            Assert.Contains("gated", e.Message);
            Assert.Contains("No token was sent", e.Message);
        }
        using (var wrong = new HubClient(hub.Settings(dir.Path, token: "hf_bad")))
        {
            var e = Assert.Throws<HubException>(() => wrong.DownloadFile("meta/gated", "config.json"));
            Assert.Equal(403, e.StatusCode);
            Assert.Contains("HF_TOKEN was sent", e.Message);
        }
        using var right = new HubClient(hub.Settings(dir.Path, token: "hf_ok"));
        Assert.Equal("{}", File.ReadAllText(right.DownloadFile("meta/gated", "config.json")));
        Assert.Equal("Bearer hf_ok", hub.Hub.Requests.Last().Header("Authorization"));
    }

    [Fact]
    public void NotFoundErrorsSayWhatIsMissing()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        string commit = hub.AddRepo("org/tiny").Commit(new() { ["config.json"] = Utf8("{}") });

        using var anonymous = new HubClient(hub.Settings(dir.Path));
        var unauthorized = Assert.Throws<HubException>(() => anonymous.DownloadFile("org/nope", "config.json"));
        Assert.Equal(HubErrorKind.Unauthorized, unauthorized.Kind);
        Assert.Contains("HTTP 401", unauthorized.Message);
        Assert.Contains("HF_TOKEN", unauthorized.Message);
        Assert.Contains("gated", unauthorized.Message);

        using var client = new HubClient(hub.Settings(dir.Path, token: "hf_x"));
        var repo = Assert.Throws<HubException>(() => client.DownloadFile("org/nope", "config.json"));
        Assert.Equal(HubErrorKind.RepoNotFound, repo.Kind);
        Assert.Contains("Repository 'org/nope' (model) not found", repo.Message);

        var rev = Assert.Throws<HubException>(() => client.DownloadFile("org/tiny", "config.json", revision: "v9"));
        Assert.Equal(HubErrorKind.RevisionNotFound, rev.Kind);
        Assert.Contains("Revision 'v9' not found", rev.Message);

        var file = Assert.Throws<HubException>(() => client.DownloadFile("org/tiny", "nope.json"));
        Assert.Equal(HubErrorKind.EntryNotFound, file.Kind);
        Assert.Contains("File 'nope.json' not found in model 'org/tiny'", file.Message);
        // As huggingface_hub: the absence is cached for that commit, and the ref is recorded.
        Assert.True(File.Exists(Path.Combine(Storage(dir.Path, "org/tiny"), ".no_exist", commit, "nope.json")));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(Storage(dir.Path, "org/tiny"), "refs", "main")));
        Assert.Null(client.TryLoadFromCache("org/tiny", "nope.json"));

        Assert.All(new[] { unauthorized, repo, rev, file }, e => Assert.IsAssignableFrom<SpeculatorsException>(e));
    }

    [Fact]
    public void ListingFollowsPaginationAndIsCachedLikePython()
    {
        using var hub = new FakeHub { TreePageSize = 2 };
        using var dir = new TempDir();
        var repo = hub.AddRepo("org/data", RepoType.Dataset);
        string commit = repo.Commit(new()
        {
            ["README.md"] = Utf8("# hi"), ["data/train-00000-of-00001.parquet"] = Bytes(2000, 7),
            ["data/test-00000-of-00001.parquet"] = Bytes(100, 8), ["x/y/z.json"] = Utf8("[]"), ["a.txt"] = Utf8("a"),
        });
        using var client = new HubClient(hub.Settings(dir.Path));
        var files = client.ListRepoFiles("org/data", RepoType.Dataset);
        Assert.Equal(["README.md", "a.txt", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet", "x/y/z.json"], files);
        // 5 files + 3 directories, 2 per page.
        Assert.Equal(4, hub.Hub.Requests.Count(r => r.RawPath.Contains("/tree/")));
        Assert.Single(hub.Hub.Requests, r => r.RawPath == $"/api/datasets/org/data/revision/main");

        string storage = Storage(dir.Path, "org/data", "datasets");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(storage, "trees", commit + ".json")));
        Assert.Equal(1, doc.RootElement.GetProperty("format_version").GetInt32());
        var entries = doc.RootElement.GetProperty("files").EnumerateObject().ToList();
        Assert.Equal(files, entries.Select(e => e.Name).ToList());
        var lfs = repo.Commits[commit]["data/train-00000-of-00001.parquet"];
        var train = entries.Single(e => e.Name == "data/train-00000-of-00001.parquet").Value;
        Assert.Equal(lfs.Sha256, train.GetProperty("lfs_sha256").GetString());
        Assert.Equal(lfs.PointerSha1, train.GetProperty("blob_id").GetString());
        Assert.Equal(2000, train.GetProperty("lfs_size").GetInt64());

        // Offline, the listing comes from refs/main + trees/{commit}.json.
        int before = hub.RequestCount;
        using var offline = new HubClient(hub.Settings(dir.Path, offline: true));
        var cached = offline.ListRepoTree("org/data", RepoType.Dataset);
        Assert.Equal(commit, cached.Commit);
        Assert.Equal(files, cached.Files.Select(f => f.Path).ToList());
        Assert.Equal(before, hub.RequestCount);
    }

    [Fact]
    public void TreeCacheTextMatchesPythonJsonDump()
    {
        using var dir = new TempDir();
        HubCache.WriteTree(dir.Path, "c0ffee", new RepoFileEntry[]
        {
            new("model.safetensors", 4000, new string('2', 40), new string('3', 64), 4000),
            new("déjà.json", 2, new string('4', 40)),
            new("a/b.txt", 5, new string('1', 40)),
        });
        // Golden: Python json.dump(data, f, indent=1) of the same listing (huggingface_hub _tree_cache.write_tree_cache).
        const string expected = """
            {
             "format_version": 1,
             "files": {
              "a/b.txt": {
               "size": 5,
               "blob_id": "1111111111111111111111111111111111111111"
              },
              "d\u00e9j\u00e0.json": {
               "size": 2,
               "blob_id": "4444444444444444444444444444444444444444"
              },
              "model.safetensors": {
               "size": 4000,
               "blob_id": "2222222222222222222222222222222222222222",
               "lfs_sha256": "3333333333333333333333333333333333333333333333333333333333333333",
               "lfs_size": 4000
              }
             }
            }
            """;
        Assert.Equal(expected.Replace("\r\n", "\n"), File.ReadAllText(Path.Combine(dir.Path, "trees", "c0ffee.json")));
        var back = HubCache.ReadTree(dir.Path, "c0ffee")!;
        Assert.Equal(["a/b.txt", "déjà.json", "model.safetensors"], back.Select(f => f.Path));
        Assert.Equal(new string('3', 64), back[2].Etag);
    }

    [Fact]
    public void SnapshotDownloadFiltersAndRecordsTheRef()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        string commit = hub.AddRepo("org/tiny").Commit(new()
        {
            ["config.json"] = Utf8("{}"), ["tokenizer.json"] = Utf8("{\"v\":1}"), ["model.bin"] = Bytes(3000, 9), ["README.md"] = Utf8("r"),
        });
        using var client = new HubClient(hub.Settings(dir.Path));
        string snap = client.SnapshotDownload("org/tiny", RepoType.Model, "main", p => HubGlob.FnMatchCase(p, "*.json"));
        Assert.Equal(Path.Combine(Storage(dir.Path, "org/tiny"), "snapshots", commit), snap);
        Assert.Equal(["config.json", "tokenizer.json"], HubCache.ListSnapshotFiles(Storage(dir.Path, "org/tiny"), commit));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(Storage(dir.Path, "org/tiny"), "refs", "main")));
        Assert.Empty(hub.Cdn.Requests);
    }

    [Fact]
    public void RenamedRepoAndSlashedRevisions()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var repo = hub.AddRepo("org/new");
        repo.Commit(new() { ["config.json"] = Utf8("{\"main\": true}") });
        string pr = repo.Commit(new() { ["config.json"] = Utf8("{\"pr\": true}") }, branch: "refs/pr/1");
        hub.Renamed["org/old"] = "org/new";
        using var client = new HubClient(hub.Settings(dir.Path));

        // A renamed repository answers 307 with a relative Location: the HEAD follows it.
        Assert.Equal("{\"main\": true}", File.ReadAllText(client.DownloadFile("org/old", "config.json")));
        Assert.Contains(hub.Hub.Requests, r => r.Method == "HEAD" && r.RawPath == "/org/new/resolve/main/config.json");

        // A relative redirect keeps the percent-encoded revision.
        Assert.Equal("{\"pr\": true}", File.ReadAllText(client.DownloadFile("org/old", "config.json", revision: "refs/pr/1")));
        Assert.Contains(hub.Hub.Requests, r => r.Method == "HEAD" && r.RawPath == "/org/new/resolve/refs%2Fpr%2F1/config.json");

        // A revision with '/' is one percent-encoded URL segment; its ref is a nested file.
        string p = client.DownloadFile("org/new", "config.json", revision: "refs/pr/1");
        Assert.Equal("{\"pr\": true}", File.ReadAllText(p));
        Assert.Contains(hub.Hub.Requests, r => r.RawPath == "/org/new/resolve/refs%2Fpr%2F1/config.json");
        Assert.Equal(pr, File.ReadAllText(Path.Combine(Storage(dir.Path, "org/new"), "refs", "refs", "pr", "1")));
    }

    [Fact]
    public void GlobsFollowFsspecAndFnmatch()
    {
        var train = HubGlob.GlobToRegex("**/train[-._ 0-9]*");
        Assert.Matches(train, "train-0.csv");
        Assert.Matches(train, "a/b/train_1.json");
        Assert.DoesNotMatch(train, "atrain.csv");
        Assert.DoesNotMatch(train, "a/xtrain.csv");
        Assert.DoesNotMatch(train, "trainer.csv");
        var data = HubGlob.GlobToRegex("data/*");
        Assert.Matches(data, "data/x");
        Assert.DoesNotMatch(data, "data/x/y");
        Assert.Matches(HubGlob.GlobToRegex("data/**"), "data/x/y");
        Assert.Matches(HubGlob.GlobToRegex("*/b.txt"), "a/b.txt");
        Assert.DoesNotMatch(HubGlob.GlobToRegex("*/b.txt"), "/b.txt");
        Assert.Matches(HubGlob.GlobToRegex("[!a]?.json"), "bc.json");
        Assert.DoesNotMatch(HubGlob.GlobToRegex("[!a]?.json"), "ac.json");
        Assert.Throws<SpeculatorsException>(() => HubGlob.GlobToRegex("**.json"));
        Assert.True(HubGlob.FnMatchCase("a/b.json", "*.json"));
        Assert.False(HubGlob.FnMatchCase("a/b.JSON", "*.json"));
        Assert.True(HubGlob.AllowedByPatterns("original/x.pth", ["original/"], null));
        Assert.False(HubGlob.AllowedByPatterns("original/x.pth", null, ["original/"]));
    }
}
