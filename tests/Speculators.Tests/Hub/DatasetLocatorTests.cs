using Speculators.Hub;
using static Speculators.Tests.Hub.HubClientTests;

namespace Speculators.Tests.Hub;

public class DatasetLocatorTests
{
    static List<string> Splits(List<KeyValuePair<string, List<string>>> p) => p.Select(kv => kv.Key).ToList();

    static List<string> FilesOf(IReadOnlyList<string> files, string split, string basePath = "")
    {
        var resolved = DataFiles.ResolveSplits(DataFiles.GetDataPatterns(files, basePath), files, basePath, "test");
        return resolved.Single(kv => kv.Key == split).Value;
    }

    [Fact]
    public void AutoDetectionFollowsDatasets()
    {
        // push_to_hub layout with the old fingerprint suffix (ultrachat_200k): one split per sharded name.
        string[] ultra =
        [
            ".gitattributes", "README.md",
            "data/test_gen-00000-of-00001-3d4cd8309148a71f.parquet", "data/test_sft-00000-of-00001-f7dfac4afe5b93f4.parquet",
            "data/train_gen-00000-of-00003-a6c9fb894be3e50b.parquet",
            "data/train_sft-00002-of-00003-ee46ed25cfae92c6.parquet", "data/train_sft-00000-of-00003-a3ecf92756993583.parquet",
            "data/train_sft-00001-of-00003-0a1804bcb6ae68c6.parquet",
        ];
        Assert.Equal(["test_gen", "test_sft", "train_gen", "train_sft"], Splits(DataFiles.GetDataPatterns(ultra)));
        Assert.Equal(
            ["data/train_sft-00000-of-00003-a3ecf92756993583.parquet", "data/train_sft-00001-of-00003-0a1804bcb6ae68c6.parquet",
             "data/train_sft-00002-of-00003-ee46ed25cfae92c6.parquet"],
            FilesOf(ultra, "train_sft"));

        // train, validation, test come first, then other names alphabetically.
        string[] sharded = ["data/zeta-00000-of-00001.parquet", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet", "data/alpha-00000-of-00001.parquet"];
        Assert.Equal(["train", "test", "alpha", "zeta"], Splits(DataFiles.GetDataPatterns(sharded)));

        // No split keyword (ShareGPT_Vicuna_unfiltered): every data file is "train", in path order.
        string[] sharegpt = [".gitattributes", "README.md", "ShareGPT_V4.3_unfiltered_cleaned_split.json", "ShareGPT_2023.05.04v0_Wasteland_Edition.json"];
        Assert.Equal(["train"], Splits(DataFiles.GetDataPatterns(sharegpt)));
        Assert.Equal(["ShareGPT_2023.05.04v0_Wasteland_Edition.json", "ShareGPT_V4.3_unfiltered_cleaned_split.json"], FilesOf(sharegpt, "train"));

        // Keywords in file names; hidden files, __ folders and README are skipped.
        string[] named = ["test.jsonl", "valid.jsonl", "train.jsonl", "my_train_2.jsonl", ".hidden/train.jsonl", "__cache__/train.jsonl", "notes.txt"];
        Assert.Equal(["train", "validation", "test"], Splits(DataFiles.GetDataPatterns(named)));
        Assert.Equal(["train.jsonl", "my_train_2.jsonl"], FilesOf(named, "train"));

        // Keywords in directory names win over file names.
        string[] dirs = ["data/train/shard_1.parquet", "data/train/shard_0.parquet", "data/test/test-a.parquet", "other/training-x.json"];
        Assert.Equal(["train", "test"], Splits(DataFiles.GetDataPatterns(dirs)));
        Assert.Equal(["data/train/shard_0.parquet", "data/train/shard_1.parquet"], FilesOf(dirs, "train"));

        // Relative to a data_dir.
        string[] nested = ["en/train-0.json", "fr/train-0.json", "fr/test-0.json"];
        Assert.Equal(["fr/train-0.json"], FilesOf(nested, "train", "fr"));

        Assert.Throws<SpeculatorsException>(() => DataFiles.GetDataPatterns(["data/my-split-00000-of-00001.parquet"]));
        Assert.Empty(DataFiles.GetDataPatterns(["README.md", ".gitattributes"]));
    }

    [Fact]
    public void FormatIsTheMostCommonExtension()
    {
        Assert.Equal("parquet", DataFiles.InferModule(["a.json", "b.parquet"]));
        Assert.Equal("json", DataFiles.InferModule(["a.json", "b.json", "c.parquet"]));
        Assert.Equal("json", DataFiles.InferModule(["a.jsonl", "b.json"]));
        Assert.Equal("json", DataFiles.InferModule(["x.json.gz"]));
        Assert.Equal("arrow", DataFiles.InferModule(["train/data-00000-of-00001.arrow", "train/state.json"]));
        Assert.Null(DataFiles.InferModule(["a.weird"]));
        Assert.Equal(["a.json", "b.jsonl.gz"], DataFiles.FilterForModule(["a.json", "b.jsonl.gz", "c.parquet"], "json"));
    }

    [Fact]
    public void ParsesSpecsAndPresets()
    {
        Assert.Equal(new DatasetSpec("org/d", "main", null, null), DatasetLocator.ParseSpec("hf:org/d"));
        Assert.Equal(new DatasetSpec("org/d", "main", null, "test"), DatasetLocator.ParseSpec("hf:org/d:test"));
        Assert.Equal(new DatasetSpec("org/d", "v2", "sub", "train_sft"), DatasetLocator.ParseSpec("hf:org/d@v2:sub:train_sft"));
        Assert.Equal(new DatasetSpec("HuggingFaceH4/ultrachat_200k", "main", null, "train_sft"), DatasetLocator.ParseSpec("ultrachat"));
        Assert.Equal(new DatasetSpec("Aeala/ShareGPT_Vicuna_unfiltered", "main", null, "train"), DatasetLocator.ParseSpec("sharegpt"));
        Assert.Contains("hf:<id>", Assert.Throws<SpeculatorsException>(() => DatasetLocator.ParseSpec("nonsense")).Message);
        Assert.Throws<SpeculatorsException>(() => DatasetLocator.ParseSpec("hf:org/d::train"));
        Assert.Throws<SpeculatorsException>(() => DatasetLocator.ParseSpec("hf:a:b:c:d"));
    }

    const string ChatReadme = """
        ---
        license: mit
        configs:
        - config_name: default
          data_files:
          - split: train_sft
            path: data/train_sft-*
          - split: test_sft
            path: data/test_sft-*
        - config_name: extra
          data_files:
          - split: train_sft
            path: extra/train_sft-*
        dataset_info:
          features:
          - name: messages
        ---
        # Chat data
        """;

    [Fact]
    public void SplitsAndSubsetsFromTheDatasetCard()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var shard0 = Bytes(3000, 1); var shard1 = Bytes(200, 2); var extra = Bytes(300, 3);
        string commit = hub.AddRepo("org/chat", RepoType.Dataset).Commit(new()
        {
            ["README.md"] = Utf8(ChatReadme), [".gitattributes"] = Utf8("*"),
            ["data/train_sft-00001-of-00002.parquet"] = shard1, ["data/train_sft-00000-of-00002.parquet"] = shard0,
            ["data/test_sft-00000-of-00001.parquet"] = Bytes(100, 4), ["extra/train_sft-00000-of-00001.parquet"] = extra,
        });
        using var client = new HubClient(hub.Settings(dir.Path));

        var files = DatasetLocator.Resolve("hf:org/chat:train_sft", client);
        string snap = Path.Combine(dir.Path, "datasets--org--chat", "snapshots", commit);
        Assert.Equal([Path.Combine(snap, "data/train_sft-00000-of-00002.parquet"), Path.Combine(snap, "data/train_sft-00001-of-00002.parquet")], files);
        Assert.Equal(shard0, File.ReadAllBytes(files[0]));
        Assert.Equal(shard1, File.ReadAllBytes(files[1]));

        var sub = DatasetLocator.ResolveDetailed("hf:org/chat:extra:train_sft", client);
        Assert.Equal("extra", sub.Config);
        Assert.Equal("parquet", sub.Format);
        Assert.Equal(extra, File.ReadAllBytes(Assert.Single(sub.Files)));

        var noTrain = Assert.Throws<SpeculatorsException>(() => DatasetLocator.Resolve("hf:org/chat", client));
        Assert.Contains("no split 'train'", noTrain.Message);
        Assert.Contains("train_sft, test_sft", noTrain.Message);
        var noSubset = Assert.Throws<SpeculatorsException>(() => DatasetLocator.Resolve("hf:org/chat:nope:train", client));
        Assert.Contains("default, extra", noSubset.Message);

        // Everything needed is now cached: offline resolution gives the same files without a request.
        int before = hub.RequestCount;
        using var offline = new HubClient(hub.Settings(dir.Path, offline: true));
        Assert.Equal(files, DatasetLocator.Resolve("hf:org/chat:train_sft", offline));
        Assert.Equal(before, hub.RequestCount);
    }

    [Fact]
    public void RepositoriesWithoutACard()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        hub.AddRepo("org/plain", RepoType.Dataset).Commit(new()
        {
            ["data/train-00000-of-00001.parquet"] = Bytes(50, 1), ["data/validation-00000-of-00001.parquet"] = Bytes(60, 2),
        });
        hub.AddRepo("org/folders", RepoType.Dataset).Commit(new()
        {
            ["en/train.jsonl"] = Utf8("{}\n"), ["fr/train.jsonl"] = Utf8("{\"fr\":1}\n"), ["README.md"] = Utf8("no yaml here"),
        });
        using var client = new HubClient(hub.Settings(dir.Path));
        Assert.EndsWith("data/train-00000-of-00001.parquet", Assert.Single(DatasetLocator.Resolve("hf:org/plain", client)));
        Assert.EndsWith("data/validation-00000-of-00001.parquet", Assert.Single(DatasetLocator.Resolve("hf:org/plain:validation", client)));

        var all = DatasetLocator.ResolveDetailed("hf:org/folders", client);
        Assert.Equal(["en/train.jsonl", "fr/train.jsonl"], all.RepoPaths);
        Assert.Equal("json", all.Format);
        var fr = DatasetLocator.ResolveDetailed("hf:org/folders:fr:train", client);
        Assert.Equal(["fr/train.jsonl"], fr.RepoPaths);
        Assert.Contains("no subset 'de'", Assert.Throws<SpeculatorsException>(() => DatasetLocator.Resolve("hf:org/folders:de:train", client)).Message);
    }

    [Fact]
    public void PresetsResolveToTheRealLayouts()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        // HuggingFaceH4/ultrachat_200k: README configs with one default config and four splits.
        const string ultraReadme = """
            ---
            configs:
            - config_name: default
              data_files:
              - split: train_sft
                path: data/train_sft-*
              - split: test_sft
                path: data/test_sft-*
              - split: train_gen
                path: data/train_gen-*
              - split: test_gen
                path: data/test_gen-*
            ---
            """;
        hub.AddRepo("HuggingFaceH4/ultrachat_200k", RepoType.Dataset).Commit(new()
        {
            ["README.md"] = Utf8(ultraReadme),
            ["data/train_sft-00000-of-00003-a3ecf92756993583.parquet"] = Bytes(10, 1),
            ["data/train_sft-00001-of-00003-0a1804bcb6ae68c6.parquet"] = Bytes(10, 2),
            ["data/train_sft-00002-of-00003-ee46ed25cfae92c6.parquet"] = Bytes(10, 3),
            ["data/test_sft-00000-of-00001-f7dfac4afe5b93f4.parquet"] = Bytes(10, 4),
            ["data/train_gen-00000-of-00003-a6c9fb894be3e50b.parquet"] = Bytes(10, 5),
            ["data/test_gen-00000-of-00001-3d4cd8309148a71f.parquet"] = Bytes(10, 6),
        });
        hub.AddRepo("Aeala/ShareGPT_Vicuna_unfiltered", RepoType.Dataset).Commit(new()
        {
            [".gitattributes"] = Utf8("*.json filter=lfs"), ["README.md"] = Utf8("---\nlicense: apache-2.0\n---\n"),
            ["ShareGPT_V4.3_unfiltered_cleaned_split.json"] = Utf8("[{\"id\": \"b\", \"conversations\": []}]"),
            ["ShareGPT_2023.05.04v0_Wasteland_Edition.json"] = Utf8("[{\"id\": \"a\", \"conversations\": []}]"),
        });
        using var client = new HubClient(hub.Settings(dir.Path));

        var ultra = DatasetLocator.ResolveDetailed("ultrachat", client);
        Assert.Equal(
            ["data/train_sft-00000-of-00003-a3ecf92756993583.parquet", "data/train_sft-00001-of-00003-0a1804bcb6ae68c6.parquet",
             "data/train_sft-00002-of-00003-ee46ed25cfae92c6.parquet"], ultra.RepoPaths);
        Assert.Equal(["train_sft", "test_sft", "train_gen", "test_gen"], ultra.AvailableSplits);

        var share = DatasetLocator.ResolveDetailed("sharegpt", client);
        Assert.Equal(["ShareGPT_2023.05.04v0_Wasteland_Edition.json", "ShareGPT_V4.3_unfiltered_cleaned_split.json"], share.RepoPaths);
        Assert.Equal("json", share.Format);
        Assert.Contains("\"a\"", File.ReadAllText(share.Files[0]));
        Assert.All(hub.Hub.Requests.Where(r => r.RawPath.Contains("/resolve/")), r => Assert.StartsWith("/datasets/", r.RawPath));
    }

    [Fact]
    public void ScriptDatasetsUseTheParquetExport()
    {
        using var hub = new FakeHub();
        using var dir = new TempDir();
        var repo = hub.AddRepo("org/scripted", RepoType.Dataset);
        repo.Commit(new() { ["scripted.py"] = Utf8("import datasets"), ["README.md"] = Utf8("# s") });
        string export = repo.Commit(new()
        {
            ["default/train/0001.parquet"] = Bytes(20, 2), ["default/train/0000.parquet"] = Bytes(20, 1), ["default/test/0000.parquet"] = Bytes(20, 3),
        }, branch: "refs/convert/parquet");
        using var client = new HubClient(hub.Settings(dir.Path));
        var r = DatasetLocator.ResolveDetailed("hf:org/scripted", client);
        Assert.True(r.FromParquetExport);
        Assert.Equal(export, r.Commit);
        Assert.Equal(["default/train/0000.parquet", "default/train/0001.parquet"], r.RepoPaths);
        Assert.Contains(hub.Hub.Requests, q => q.RawPath == "/api/datasets/org/scripted/revision/refs%2Fconvert%2Fparquet");
        Assert.Equal(export, File.ReadAllText(Path.Combine(dir.Path, "datasets--org--scripted", "refs", "refs", "convert", "parquet")));
    }

    [Fact]
    public void LocalFilesAndDirectories()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("b.jsonl"), "{}\n");
        Directory.CreateDirectory(dir.File("sub"));
        File.WriteAllText(dir.File("sub", "a.json"), "[]");
        File.WriteAllText(dir.File("notes.txt"), "x");
        Assert.Equal([dir.File("b.jsonl")], DatasetLocator.Resolve(dir.File("b.jsonl")));
        Assert.Equal([dir.File("b.jsonl"), dir.File("sub", "a.json")], DatasetLocator.Resolve(dir.Path));
    }
}
