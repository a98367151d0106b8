using System.Text.RegularExpressions;
using YamlDotNet.Core;
using YamlDotNet.Serialization;

namespace Speculators.Hub;

/// <summary>A named dataset of the Python speculators tool (data_generation/configs.py).</summary>
public sealed record DatasetPreset(string RepoId, string? Subset, string Split);

/// <summary>A parsed dataset argument: repository, revision, subset (config) and split.</summary>
public sealed record DatasetSpec(string RepoId, string Revision, string? Subset, string? Split);

/// <summary>Where a dataset split's rows are: its local files (in row order) and how they were chosen.</summary>
public sealed record DatasetResolution(
    string RepoId,
    string Commit,
    string Config,
    string Split,
    /// <summary>"parquet", "json" (JSON Lines or a top-level array) or "arrow" (Arrow IPC stream).</summary>
    string Format,
    IReadOnlyList<string> RepoPaths,
    IReadOnlyList<string> Files,
    IReadOnlyList<string> AvailableSplits,
    /// <summary>True when the files come from the hub's parquet export (refs/convert/parquet).</summary>
    bool FromParquetExport);

/// <summary>
/// Resolves prepare-data inputs to local data files: the presets (<c>sharegpt</c>, <c>ultrachat</c>, ...),
/// <c>hf:&lt;id&gt;</c>, <c>hf:&lt;id&gt;:&lt;split&gt;</c>, <c>hf:&lt;id&gt;:&lt;subset&gt;:&lt;split&gt;</c> (id may end in
/// <c>@revision</c>), or a local file / directory (listed by <see cref="Data.ConversationReader.ListFiles"/>). Hub datasets are fetched through <see cref="HubClient"/>
/// into the HF cache; which files form a split follows the <c>datasets</c> library (README YAML
/// <c>configs</c>, else <see cref="DataFiles"/> auto-detection).
/// </summary>
public static class DatasetLocator
{
    /// <summary>The Python tool's presets: name → repository, subset, split.</summary>
    public static IReadOnlyDictionary<string, DatasetPreset> Presets { get; } = new Dictionary<string, DatasetPreset>(StringComparer.OrdinalIgnoreCase)
    {
        ["sharegpt"] = new("Aeala/ShareGPT_Vicuna_unfiltered", null, "train"),
        ["ultrachat"] = new("HuggingFaceH4/ultrachat_200k", null, "train_sft"),
        ["gsm8k"] = new("openai/gsm8k", "main", "train"),
        ["magpie"] = new("Magpie-Align/Magpie-Llama-3.1-Pro-300K-Filtered", null, "train"),
        ["nemotron"] = new("nvidia/Llama-Nemotron-Post-Training-Dataset", "SFT", "chat"),
        ["sharegpt4v_coco"] = new("Lin-Chen/ShareGPT4V", "ShareGPT4V", "train"),
        ["open-perfectblend"] = new("mlabonne/open-perfectblend", null, "train"),
        ["hermes-fc"] = new("NousResearch/hermes-function-calling-v1", "func_calling", "train"),
    };

    static readonly string[] SupportedModules = ["parquet", "json", "arrow"];

    /// <summary>The local data files of <paramref name="spec"/>'s split, in row order.</summary>
    public static IReadOnlyList<string> Resolve(string spec, HubClient? client = null)
    {
        var local = ResolveLocal(spec);
        if (local is not null) return local;
        return ResolveDetailed(spec, client).Files;
    }

    /// <summary>Parses a preset name or an <c>hf:</c> spec.</summary>
    public static DatasetSpec ParseSpec(string spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new SpeculatorsException("No dataset given: pass a preset (sharegpt, ultrachat, ...), hf:<id>[:<subset>]:<split>, or a local file/directory.");
        if (Presets.TryGetValue(spec, out var preset)) return new DatasetSpec(preset.RepoId, "main", preset.Subset, preset.Split);
        if (!spec.StartsWith("hf:", StringComparison.Ordinal))
            throw new SpeculatorsException(
                $"Dataset '{spec}' is not a local file or directory, a preset ({string.Join(", ", Presets.Keys)}), " +
                "or a hub dataset 'hf:<id>', 'hf:<id>:<split>', 'hf:<id>:<subset>:<split>'.");
        string[] parts = spec[3..].Split(':');
        if (parts.Length > 3 || parts.Any(p => p.Length == 0))
            throw new SpeculatorsException($"Dataset '{spec}': expected 'hf:<id>', 'hf:<id>:<split>' or 'hf:<id>:<subset>:<split>' with no empty part.");
        string id = parts[0], revision = "main";
        int at = id.LastIndexOf('@');
        if (at >= 0) { revision = id[(at + 1)..]; id = id[..at]; }
        if (!HubClient.IsValidRepoId(id) || revision.Length == 0)
            throw new SpeculatorsException($"Dataset '{spec}': '{parts[0]}' is not a valid hub dataset id ('org/name' or 'org/name@revision').");
        return parts.Length switch
        {
            1 => new DatasetSpec(id, revision, null, null),
            2 => new DatasetSpec(id, revision, null, parts[1]),
            _ => new DatasetSpec(id, revision, parts[1], parts[2]),
        };
    }

    /// <summary>A local file or directory, listed by the data readers' own rules (<see cref="Data.ConversationReader.ListFiles"/>); null otherwise.</summary>
    static IReadOnlyList<string>? ResolveLocal(string spec) =>
        File.Exists(spec) || Directory.Exists(spec) ? Data.ConversationReader.ListFiles(spec) : null;

    /// <summary>Resolves a preset or <c>hf:</c> spec on the hub (or the cache) and downloads the split's files.</summary>
    public static DatasetResolution ResolveDetailed(string spec, HubClient? client = null)
    {
        var parsed = ParseSpec(spec);
        if (client is not null) return ResolveOnHub(parsed, client);
        using var own = HubClient.FromEnvironment();
        return ResolveOnHub(parsed, own);
    }

    public static DatasetResolution ResolveOnHub(DatasetSpec spec, HubClient client)
    {
        var listing = client.ListRepoTree(spec.RepoId, RepoType.Dataset, spec.Revision);
        var files = listing.Files.Select(f => f.Path).ToList();
        string where = $"dataset '{spec.RepoId}' (revision '{spec.Revision}', commit {listing.Commit[..Math.Min(12, listing.Commit.Length)]})";

        var card = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (files.Contains("README.md"))
            foreach (var kv in ReadYamlFrontMatter(client.DownloadFile(spec.RepoId, "README.md", RepoType.Dataset, listing.Commit))) card[kv.Key] = kv.Value;
        if (files.Contains(".huggingface.yaml"))
            foreach (var kv in ReadYamlFile(client.DownloadFile(spec.RepoId, ".huggingface.yaml", RepoType.Dataset, listing.Commit))) card[kv.Key] = kv.Value;

        string scriptName = spec.RepoId.Split('/')[^1] + ".py";
        if (files.Contains(scriptName))
        {
            Util.Log.Info($"{where} is a loading script ({scriptName}), which datasets 4.x no longer runs; using the hub's parquet export (refs/convert/parquet).");
            return ResolveParquetExport(spec, client, where);
        }

        var configs = ParseConfigs(card, where);
        var (configName, patterns, basePath) = ChooseConfig(spec, configs, files, where);
        if (patterns.Count == 0)
            throw new SpeculatorsException($"{where}, config '{configName}': no data files found" + (basePath.Length > 0 ? $" under '{basePath}/'." : "."));
        var splits = DataFiles.ResolveSplits(patterns, files, basePath, $"{where}, config '{configName}'");

        var allFiles = splits.SelectMany(s => s.Value).ToList();
        var modules = splits.Select(s => DataFiles.InferModule(s.Value)).Distinct().ToList();
        if (modules.Count != 1)
            throw new SpeculatorsException(
                $"{where}, config '{configName}': the splits have different file formats " +
                $"({string.Join(", ", splits.Select(s => $"{s.Key}: {DataFiles.InferModule(s.Value) ?? "none"}"))}).");
        string? module = modules[0];
        if (module is null)
            throw new SpeculatorsException($"{where}, config '{configName}': no supported data files (parquet, json, jsonl, arrow) found.");
        if (!SupportedModules.Contains(module))
            throw new SpeculatorsException(
                $"{where}, config '{configName}': its data files are {module} ({Sample(allFiles)}); supported formats are parquet, json/jsonl and arrow.");

        var available = splits.Select(s => s.Key).ToList();
        string split = spec.Split ?? "train";
        var chosen = splits.FirstOrDefault(s => s.Key == split);
        if (chosen.Key is null)
            throw new SpeculatorsException(
                $"{where}, config '{configName}': no split '{split}'. Available splits: {string.Join(", ", available)}. " +
                $"Use hf:{spec.RepoId}:<split>" + (configs.Count > 1 ? $" or hf:{spec.RepoId}:<subset>:<split>." : "."));
        var repoPaths = DataFiles.FilterForModule(chosen.Value, module);
        if (repoPaths.Count == 0)
            throw new SpeculatorsException($"{where}, config '{configName}', split '{split}': no {module} files.");

        var local = client.DownloadFiles(listing, repoPaths);
        return new DatasetResolution(spec.RepoId, listing.Commit, configName, split, module, repoPaths, local, available, false);
    }

    /// <summary>The config to load: its name, split patterns, and the folder they are relative to.</summary>
    static (string Name, List<KeyValuePair<string, List<string>>> Patterns, string BasePath) ChooseConfig(
        DatasetSpec spec, List<(string Name, Dictionary<string, object?> Params)> configs, List<string> files, string where)
    {
        if (configs.Count == 0)
        {
            // No YAML configs: a single "default" config over the whole repository.
            if (spec.Subset is null || spec.Subset == "default")
                return ("default", DataFiles.GetDataPatterns(files), "");
            // Beyond datasets (which only knows "default" here): a subset that names a folder is read like
            // load_dataset(id, data_dir=subset).
            string dir = spec.Subset.Trim('/');
            if (files.Any(f => f.StartsWith(dir + "/", StringComparison.Ordinal)))
                return (spec.Subset, DataFiles.GetDataPatterns(files, dir), dir);
            throw new SpeculatorsException($"{where} has no subset '{spec.Subset}': its README declares no configs, so the only subset is 'default', and no folder '{dir}/' exists.");
        }

        (string Name, Dictionary<string, object?> Params) config;
        if (spec.Subset is not null)
        {
            config = configs.FirstOrDefault(c => c.Name == spec.Subset);
            if (config.Name is null)
                throw new SpeculatorsException($"{where} has no subset '{spec.Subset}'. Available subsets: {string.Join(", ", configs.Select(c => c.Name))}.");
        }
        else
        {
            var defaults = configs.Where(c => configs.Count == 1 || c.Name == "default" || IsTrue(c.Params.GetValueOrDefault("default"))).ToList();
            if (defaults.Count > 1)
                throw new SpeculatorsException($"{where} declares several default configs: {string.Join(", ", defaults.Select(d => d.Name))}.");
            if (defaults.Count == 0)
                throw new SpeculatorsException(
                    $"{where} has several subsets and no default: pick one with hf:{spec.RepoId}:<subset>:<split>. Available subsets: {string.Join(", ", configs.Select(c => c.Name))}.");
            config = defaults[0];
        }

        string basePath = config.Params.GetValueOrDefault("data_dir") is string d ? d.Trim('/') : "";
        var dataFiles = config.Params.GetValueOrDefault("data_files");
        var patterns = dataFiles is null ? DataFiles.GetDataPatterns(files, basePath) : SanitizePatterns(dataFiles, where, config.Name);
        return (config.Name, patterns, basePath);
    }

    static bool IsTrue(object? v) => v is string s && (s.Equals("true", StringComparison.OrdinalIgnoreCase) || s == "1" || s.Equals("yes", StringComparison.OrdinalIgnoreCase));

    /// <summary>datasets' <c>sanitize_patterns</c> for YAML data_files: a string, a list of strings (split train), or a list of {split, path}.</summary>
    static List<KeyValuePair<string, List<string>>> SanitizePatterns(object dataFiles, string where, string config)
    {
        static List<string> Strings(object? v, string what) => v switch
        {
            string s => [s],
            List<object> l when l.All(x => x is string) => l.Cast<string>().ToList(),
            _ => throw new SpeculatorsException($"{what}: expected a string or a list of strings."),
        };
        string ctx = $"{where}, README configs '{config}' data_files";
        if (dataFiles is string one) return [new("train", [one])];
        if (dataFiles is Dictionary<object, object> dict)
            return dict.Select(kv => new KeyValuePair<string, List<string>>(kv.Key.ToString()!, Strings(kv.Value, ctx))).ToList();
        if (dataFiles is List<object> list)
        {
            if (list.All(x => x is string)) return [new("train", list.Cast<string>().ToList())];
            var result = new List<KeyValuePair<string, List<string>>>();
            foreach (var item in list)
            {
                if (item is not Dictionary<object, object> entry || !entry.TryGetValue("split", out var split) || split is not string splitName || !entry.ContainsKey("path"))
                    throw new SpeculatorsException($"{ctx}: each entry must be {{split: <name>, path: <pattern or list>}}.");
                if (result.Any(r => r.Key == splitName)) throw new SpeculatorsException($"{ctx}: split '{splitName}' is listed twice.");
                result.Add(new(splitName, Strings(entry["path"], ctx)));
            }
            return result;
        }
        throw new SpeculatorsException($"{ctx}: expected a string, a list of strings, or a list of {{split, path}}.");
    }

    static List<(string Name, Dictionary<string, object?> Params)> ParseConfigs(Dictionary<string, object?> card, string where)
    {
        var result = new List<(string, Dictionary<string, object?>)>();
        if (!card.TryGetValue("configs", out var raw) || raw is null || (raw is string s && s.Length == 0)) return result;
        if (raw is not List<object> list) throw new SpeculatorsException($"{where}: README YAML 'configs' must be a list.");
        foreach (var item in list)
        {
            if (item is not Dictionary<object, object> map || !map.TryGetValue("config_name", out var name) || name is not string configName)
                throw new SpeculatorsException($"{where}: every entry of README YAML 'configs' needs a config_name.");
            var ps = map.Where(kv => kv.Key.ToString() != "config_name").ToDictionary(kv => kv.Key.ToString()!, kv => (object?)kv.Value, StringComparer.Ordinal);
            result.Add((configName, ps));
        }
        return result;
    }

    // huggingface_hub repocard.py REGEX_YAML_BLOCK
    static readonly Regex YamlBlock = new(@"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))", RegexOptions.CultureInvariant);

    /// <summary>The YAML front matter (<c>---</c> … <c>---</c>) of a dataset card as a map; empty when there is none.</summary>
    public static Dictionary<string, object?> ReadYamlFrontMatter(string readmePath)
    {
        string text = File.ReadAllText(readmePath);
        var m = YamlBlock.Match(text);
        return m.Success ? ParseYamlMap(m.Groups[2].Value, readmePath) : new Dictionary<string, object?>(StringComparer.Ordinal);
    }

    static Dictionary<string, object?> ReadYamlFile(string path) => ParseYamlMap(File.ReadAllText(path), path);

    static Dictionary<string, object?> ParseYamlMap(string yaml, string path)
    {
        object? root;
        try { root = new DeserializerBuilder().Build().Deserialize<object?>(yaml); }
        catch (YamlException e) { throw new SpeculatorsException($"{path}: invalid YAML metadata: {e.Message}"); }
        var result = new Dictionary<string, object?>(StringComparer.Ordinal);
        if (root is Dictionary<object, object> map)
            foreach (var kv in map) result[kv.Key.ToString()!] = kv.Value;
        return result;
    }

    static string Sample(IReadOnlyList<string> files) =>
        string.Join(", ", files.Take(3)) + (files.Count > 3 ? $", ... ({files.Count} files)" : "");

    /// <summary>
    /// Script-based datasets: the dataset viewer's parquet export on the branch refs/convert/parquet,
    /// laid out as {config}/{split}/NNNN.parquet (or {config}/partial-{split}/ when only a prefix was converted).
    /// </summary>
    static DatasetResolution ResolveParquetExport(DatasetSpec spec, HubClient client, string where)
    {
        const string Branch = "refs/convert/parquet";
        RepoListing listing;
        try { listing = client.ListRepoTree(spec.RepoId, RepoType.Dataset, Branch); }
        catch (HubException e) when (e.Kind == HubErrorKind.RevisionNotFound)
        {
            throw new SpeculatorsException($"{where} needs a loading script and has no parquet export ({Branch}); it cannot be read without Python.");
        }
        var parquet = listing.Files.Select(f => f.Path).Where(p => p.EndsWith(".parquet", StringComparison.Ordinal) && p.Count(c => c == '/') == 2).ToList();
        var configs = parquet.Select(p => p.Split('/')[0]).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        string config = spec.Subset
            ?? (configs.Count == 1 ? configs[0] : configs.Contains("default") ? "default"
                : throw new SpeculatorsException($"{where}: pick a subset with hf:{spec.RepoId}:<subset>:<split>. Available subsets: {string.Join(", ", configs)}."));
        if (!configs.Contains(config))
            throw new SpeculatorsException($"{where} has no subset '{config}' in its parquet export. Available subsets: {string.Join(", ", configs)}.");
        var splitDirs = parquet.Where(p => p.StartsWith(config + "/", StringComparison.Ordinal)).Select(p => p.Split('/')[1]).Distinct().ToList();
        var available = splitDirs.Select(d => d.StartsWith("partial-", StringComparison.Ordinal) ? d["partial-".Length..] : d).Distinct().ToList();
        string split = spec.Split ?? "train";
        string? dir = splitDirs.Contains(split) ? split : splitDirs.Contains("partial-" + split) ? "partial-" + split : null;
        if (dir is null)
            throw new SpeculatorsException($"{where}, subset '{config}': no split '{split}' in the parquet export. Available splits: {string.Join(", ", available)}.");
        if (dir.StartsWith("partial-", StringComparison.Ordinal))
            Util.Log.Warn($"{where}: the parquet export of split '{split}' is partial (only the first ~5 GB were converted).");
        var repoPaths = parquet.Where(p => p.StartsWith($"{config}/{dir}/", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        var local = client.DownloadFiles(listing, repoPaths);
        return new DatasetResolution(spec.RepoId, listing.Commit, config, split, "parquet", repoPaths, local, available, true);
    }
}
