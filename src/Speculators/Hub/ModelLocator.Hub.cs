using System.Text.Json;

namespace Speculators.Hub;

public static partial class ModelLocator
{
    /// <summary>Files a model directory needs besides the weights (top level of the repository).</summary>
    static readonly HashSet<string> SupportFiles = new(StringComparer.Ordinal)
    {
        "config.json", "generation_config.json",
        "tokenizer.json", "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
        "vocab.json", "merges.txt", "vocab.txt",
    };

    const string WeightsIndex = "model.safetensors.index.json";
    const string SingleWeights = "model.safetensors";

    /// <summary>Splits "org/name@revision" (revision defaults to main).</summary>
    public static (string RepoId, string Revision) ParseHubSpec(string spec)
    {
        int at = spec.LastIndexOf('@');
        string repo = at >= 0 ? spec[..at] : spec;
        string revision = at >= 0 ? spec[(at + 1)..] : "main";
        if (revision.Length == 0)
            throw new SpeculatorsException($"Model '{spec}': expected 'org/name@revision' with a branch, tag or commit after '@'.");
        return (repo, revision);
    }

    /// <summary>
    /// A Hugging Face model id ("org/name" or "org/name@revision"): the cached snapshot when it is complete
    /// (no network, works offline), else config, tokenizer, generation config, chat templates and the
    /// safetensors weights (all shards of the index) are downloaded into the HF cache.
    /// </summary>
    static string ResolveFromHub(string spec, HubClient client)
    {
        if (spec.StartsWith('/') || spec.StartsWith('.') || spec.StartsWith('~') || spec.Contains('\\'))
            throw new SpeculatorsException($"Model directory '{spec}' does not exist.");
        var (repoId, revision) = ParseHubSpec(spec);
        if (!HubClient.IsValidRepoId(repoId))
            throw new SpeculatorsException(
                $"Model '{spec}' is neither an existing local directory nor a valid Hugging Face model id ('org/name' or 'org/name@revision').");

        string storage = client.Cache.StorageFolder(repoId, RepoType.Model);
        string? cachedCommit = client.Cache.ResolveCachedCommit(repoId, RepoType.Model, revision);
        IReadOnlyList<string> missing = ["config.json"];
        if (cachedCommit is not null)
        {
            missing = MissingFromSnapshot(storage, cachedCommit);
            if (missing.Count == 0) return Path.Combine(storage, "snapshots", cachedCommit);
        }
        if (client.IsOffline(RepoType.Model))
        {
            string what = cachedCommit is null
                ? $"no snapshot of revision '{revision}' is cached (no refs/{revision} in {storage})"
                : $"the cached snapshot {Path.Combine(storage, "snapshots", cachedCommit)} lacks {string.Join(", ", missing)}";
            throw new HubException(HubErrorKind.Offline,
                $"HF_HUB_OFFLINE is set, so the hub is not contacted, and model '{repoId}' cannot be used from the cache {client.CacheDir}: {what}. " +
                "Run once with network access (unset HF_HUB_OFFLINE) to download it.");
        }

        var listing = client.ListRepoTree(repoId, RepoType.Model, revision);
        string snapshot = Path.Combine(storage, "snapshots", listing.Commit);
        if (listing.FallbackReason is not null)
        {
            // The hub could not be asked; the cache is all there is.
            var stillMissing = MissingFromSnapshot(storage, listing.Commit);
            if (stillMissing.Count == 0) return snapshot;
            throw new HubException(HubErrorKind.Network,
                $"{listing.FallbackReason} The cached snapshot {snapshot} of model '{repoId}' lacks {string.Join(", ", stillMissing)}.");
        }

        var names = listing.Files.Select(f => f.Path).ToHashSet(StringComparer.Ordinal);
        if (!names.Contains("config.json"))
            throw new SpeculatorsException(
                $"Model '{repoId}' (revision '{revision}') has no config.json at the top of the repository: not a transformers model. Files: {Sample(names)}.");

        var first = listing.Files.Select(f => f.Path).Where(IsSupportFile).ToList();
        bool sharded = names.Contains(WeightsIndex);
        if (sharded) first.Add(WeightsIndex);
        else if (names.Contains(SingleWeights)) first.Add(SingleWeights);
        else
        {
            var any = names.Where(n => !n.Contains('/') && n.EndsWith(".safetensors", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            if (any.Count == 0)
                throw new SpeculatorsException(
                    $"Model '{repoId}' (revision '{revision}') has no safetensors weights ({SingleWeights} or {WeightsIndex}); " +
                    $"only safetensors are read. Files: {Sample(names)}.");
            first.AddRange(any);
        }
        client.DownloadFiles(listing, first);

        if (sharded)
        {
            var shards = ShardsOf(Path.Combine(snapshot, WeightsIndex));
            var absent = shards.Where(s => !names.Contains(s)).ToList();
            if (absent.Count > 0)
                throw new SpeculatorsException(
                    $"{WeightsIndex} of model '{repoId}' (revision '{revision}') names shard(s) the repository does not have: {string.Join(", ", absent)}.");
            client.DownloadFiles(listing, shards);
        }
        return snapshot;
    }

    static bool IsSupportFile(string path) =>
        SupportFiles.Contains(path)
        || (!path.Contains('/') && path.StartsWith("chat_template.", StringComparison.Ordinal))
        || (path.StartsWith("additional_chat_templates/", StringComparison.Ordinal) && path.EndsWith(".jinja", StringComparison.Ordinal)
            && path.Count(c => c == '/') == 1);

    static string Sample(IEnumerable<string> names)
    {
        var list = names.Order(StringComparer.Ordinal).ToList();
        return list.Count == 0 ? "(none)" : string.Join(", ", list.Take(12)) + (list.Count > 12 ? $", ... ({list.Count - 12} more)" : "");
    }

    /// <summary>The distinct shard files of a safetensors index (its weight_map values), sorted.</summary>
    static List<string> ShardsOf(string indexPath)
    {
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
            if (!doc.RootElement.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
                throw new SpeculatorsException($"{indexPath}: expected an object 'weight_map' (tensor name -> shard file).");
            var shards = new SortedSet<string>(StringComparer.Ordinal);
            foreach (var kv in map.EnumerateObject())
            {
                string? file = kv.Value.ValueKind == JsonValueKind.String ? kv.Value.GetString() : null;
                if (string.IsNullOrEmpty(file))
                    throw new SpeculatorsException($"{indexPath}: weight_map['{kv.Name}'] must be a file name.");
                HubCache.ValidateRelativeFilename(file);
                shards.Add(file);
            }
            if (shards.Count == 0) throw new SpeculatorsException($"{indexPath}: weight_map is empty.");
            return shards.ToList();
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{indexPath} is not valid JSON: {e.Message}");
        }
    }

    /// <summary>
    /// What a cached snapshot lacks to be used as a model directory: config.json, the weights (every shard of
    /// the index), a tokenizer; and, when the commit's full listing is cached (trees/{commit}.json), every file
    /// this resolver would download.
    /// </summary>
    internal static IReadOnlyList<string> MissingFromSnapshot(string storage, string commit)
    {
        string dir = Path.Combine(storage, "snapshots", commit);
        var missing = new List<string>();
        if (!Directory.Exists(dir)) return ["config.json"];
        bool Has(string f) => File.Exists(Path.Combine([dir, .. f.Split('/')]));

        if (!Has("config.json")) missing.Add("config.json");
        if (Has(WeightsIndex))
        {
            try { missing.AddRange(ShardsOf(Path.Combine(dir, WeightsIndex)).Where(s => !Has(s))); }
            catch (SpeculatorsException) { missing.Add(WeightsIndex + " (unreadable)"); }
        }
        else if (!Has(SingleWeights) && !Directory.EnumerateFiles(dir, "*.safetensors").Any(File.Exists))
            missing.Add($"{SingleWeights} (or {WeightsIndex} and its shards)");

        var tree = HubCache.ReadTree(storage, commit);
        if (tree is not null)
        {
            bool treeSharded = tree.Any(f => f.Path == WeightsIndex);
            foreach (var f in tree)
                if ((IsSupportFile(f.Path) || f.Path == WeightsIndex || (f.Path == SingleWeights && !treeSharded)) && !Has(f.Path) && !missing.Contains(f.Path))
                    missing.Add(f.Path);
        }
        else
        {
            bool tokenizer = Has("tokenizer.json") || Has("tokenizer.model") || Has("vocab.json") || Has("tokenizer_config.json")
                             || HubCache.IsKnownMissing(storage, commit, "tokenizer_config.json");
            if (!tokenizer) missing.Add("tokenizer.json (or tokenizer.model / tokenizer_config.json)");
        }
        return missing;
    }
}
