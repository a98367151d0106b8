using System.Security.Cryptography;
using Speculators.Hub;
using static Speculators.Tests.Hub.HubClientTests;

namespace Speculators.Tests.Hub;

public class ModelLocatorTests
{
    /// <summary>Writes a model into the cache by hand, the way huggingface_hub lays it out on Linux.</summary>
    static string WritePythonStyleCache(string cache, string repoId, string commit, Dictionary<string, byte[]> files)
    {
        string storage = Path.Combine(cache, "models--" + repoId.Replace("/", "--"));
        foreach (var (name, content) in files)
        {
            string etag = content.Length > 1024 ? Convert.ToHexStringLower(SHA256.HashData(content)) : FakeFile.GitBlobSha1(content);
            Directory.CreateDirectory(Path.Combine(storage, "blobs"));
            File.WriteAllBytes(Path.Combine(storage, "blobs", etag), content);
            string pointer = Path.Combine([storage, "snapshots", commit, .. name.Split('/')]);
            Directory.CreateDirectory(Path.GetDirectoryName(pointer)!);
            string up = string.Concat(Enumerable.Repeat("../", name.Count(c => c == '/') + 2));
            File.CreateSymbolicLink(pointer, up + "blobs/" + etag);
        }
        Directory.CreateDirectory(Path.Combine(storage, "refs"));
        File.WriteAllText(Path.Combine(storage, "refs", "main"), commit);
        return Path.Combine(storage, "snapshots", commit);
    }

    [Fact]
    public void ResolvesACacheWrittenByPythonWithoutNetwork()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        string commit = new string('a', 40);
        string snapshot = WritePythonStyleCache(dir.Path, "org/cached", commit, new()
        {
            ["config.json"] = Utf8("{}"), ["tokenizer.json"] = Utf8("{}"), ["model.safetensors"] = Bytes(2048, 1),
        });
        using var client = new HubClient(hub.Settings(dir.Path));
        Assert.Equal(snapshot, ModelLocator.Resolve("org/cached", client));
        Assert.Equal(snapshot, ModelLocator.Resolve("org/cached@" + commit, client));
        using var offline = new HubClient(hub.Settings(dir.Path, offline: true));
        Assert.Equal(snapshot, ModelLocator.Resolve("org/cached", offline));
        Assert.Equal(0, hub.RequestCount);
        Assert.Equal(snapshot + "/config.json", offline.TryLoadFromCache("org/cached", "config.json"));
    }

    [Fact]
    public void DownloadsWhatAModelNeedsAndReusesIt()
    {
        var hub = new FakeHub();
        using var dir = new TempDir();
        const string index = """
            {"metadata": {"total_size": 6000},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors",
                            "c.weight": "model-00001-of-00002.safetensors"}}
            """;
        var files = new Dictionary<string, byte[]>
        {
            ["config.json"] = Utf8("{\"model_type\": \"llama\"}"), ["generation_config.json"] = Utf8("{}"),
            ["tokenizer.json"] = Utf8("{\"model\": {}}"), ["tokenizer_config.json"] = Utf8("{}"), ["special_tokens_map.json"] = Utf8("{}"),
            ["chat_template.jinja"] = Utf8("{{ messages }}"), ["model.safetensors.index.json"] = Utf8(index),
            ["model-00001-of-00002.safetensors"] = Bytes(3000, 2), ["model-00002-of-00002.safetensors"] = Bytes(3000, 3),
            ["pytorch_model.bin"] = Bytes(5000, 4), ["consolidated.safetensors"] = Bytes(6000, 5), ["original/params.json"] = Utf8("{}"),
            ["README.md"] = Utf8("# model"), [".gitattributes"] = Utf8("*.safetensors filter=lfs"),
        };
        string commit = hub.AddRepo("org/llama").Commit(files);
        using var client = new HubClient(hub.Settings(dir.Path));

        string snapshot = ModelLocator.Resolve("org/llama", client);
        string storage = Path.Combine(dir.Path, "models--org--llama");
        Assert.Equal(Path.Combine(storage, "snapshots", commit), snapshot);
        Assert.Equal(
            ["chat_template.jinja", "config.json", "generation_config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
             "model.safetensors.index.json", "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"],
            HubCache.ListSnapshotFiles(storage, commit));
        Assert.Equal(files["model-00002-of-00002.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model-00002-of-00002.safetensors")));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(storage, "refs", "main")));
        Assert.Equal(2, hub.Cdn.Requests.Count); // only the two shards are large files

        // Complete in the cache: resolved again with the hub gone.
        hub.Dispose();
        Assert.Equal(snapshot, ModelLocator.Resolve("org/llama", client));
    }

    [Fact]
    public void RevisionsAndIncompleteCaches()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var repo = hub.AddRepo("org/tiny");
        repo.Commit(new() { ["config.json"] = Utf8("{\"v\": 0}"), ["model.safetensors"] = Bytes(100, 1), ["tokenizer.json"] = Utf8("{}") });
        string v1 = repo.Commit(new() { ["config.json"] = Utf8("{\"v\": 1}"), ["model.safetensors"] = Bytes(100, 2), ["tokenizer.json"] = Utf8("{}") }, branch: "v1");
        using var client = new HubClient(hub.Settings(dir.Path));
        string snap = ModelLocator.Resolve("org/tiny@v1", client);
        Assert.Equal("{\"v\": 1}", File.ReadAllText(Path.Combine(snap, "config.json")));
        Assert.Equal(v1, File.ReadAllText(Path.Combine(dir.Path, "models--org--tiny", "refs", "v1")));

        // Offline with only part of a model cached: the message says what is missing and where.
        WritePythonStyleCache(dir.Path, "org/partial", new string('b', 40), new() { ["config.json"] = Utf8("{}") });
        using var offline = new HubClient(hub.Settings(dir.Path, offline: true));
        var e = Assert.Throws<HubException>(() => ModelLocator.Resolve("org/partial", offline));
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Contains("model.safetensors", e.Message);
        Assert.Contains(dir.Path, e.Message);
        var none = Assert.Throws<HubException>(() => ModelLocator.Resolve("org/absent", offline));
        Assert.Contains("refs/main", none.Message);
    }

    [Fact]
    public void RepositoriesThatAreNotModels()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        hub.AddRepo("org/bin").Commit(new() { ["config.json"] = Utf8("{}"), ["pytorch_model.bin"] = Bytes(10, 1) });
        hub.AddRepo("org/noconfig").Commit(new() { ["README.md"] = Utf8("x") });
        using var client = new HubClient(hub.Settings(dir.Path, token: "t"));
        Assert.Contains("no safetensors weights", Assert.Throws<SpeculatorsException>(() => ModelLocator.Resolve("org/bin", client)).Message);
        Assert.Contains("no config.json", Assert.Throws<SpeculatorsException>(() => ModelLocator.Resolve("org/noconfig", client)).Message);
        Assert.Contains("not found", Assert.Throws<HubException>(() => ModelLocator.Resolve("org/missing", client)).Message);
        Assert.Contains("does not exist", Assert.Throws<SpeculatorsException>(() => ModelLocator.Resolve("./no/such/dir", client)).Message);
        Assert.Contains("nor a valid Hugging Face model id", Assert.Throws<SpeculatorsException>(() => ModelLocator.Resolve("a--b/c", client)).Message);
        Assert.Equal(dir.Path, ModelLocator.Resolve(dir.Path, client));
    }
}
