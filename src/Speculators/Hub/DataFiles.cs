using System.Text.RegularExpressions;

namespace Speculators.Hub;

/// <summary>
/// How the <c>datasets</c> library (4.x, data_files.py and load.py) turns a dataset repository's file list
/// into splits, re-implemented over a plain list of repository paths so it can run against the hub
/// listing or the cache:
/// <list type="number">
/// <item>sharded names <c>data/{split}-NNNNN-of-NNNNN*.*</c> give one split per name (train, validation,
/// test first, then the others alphabetically);</item>
/// <item>else a split keyword in a directory name, then in a file name (train/training,
/// validation/valid/dev/val, test/testing/eval/evaluation, separated by <c>-._ </c> or digits);</item>
/// <item>else every file is split train.</item>
/// </list>
/// Hidden files/dirs, <c>__*</c> dirs and README.md, config.json, dataset_info(s).json, dummy_data.zip,
/// dataset_dict.json are skipped unless a pattern names them. Each pattern's matches are sorted by path;
/// a split is the concatenation over its patterns. The format is the most common extension.
/// </summary>
public static class DataFiles
{
    public const string SplitPatternSharded = "data/{split}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]*.*";

    static readonly (string Split, string[] Keywords)[] SplitKeywords =
    [
        ("train", ["train", "training"]),
        ("validation", ["validation", "valid", "dev", "val"]),
        ("test", ["test", "testing", "eval", "evaluation"]),
    ];

    const string NonWordChars = "-._ 0-9";
    static readonly string[] KeywordsInFilename = ["**/{keyword}[{sep}]*", "**/*[{sep}]{keyword}[{sep}]*"];
    static readonly string[] KeywordsInDirName = ["**/{keyword}/**", "**/{keyword}[{sep}]*/**", "**/*[{sep}]{keyword}/**", "**/*[{sep}]{keyword}[{sep}]*/**"];

    static readonly string[] FilesToIgnore = ["README.md", "config.json", "dataset_info.json", "dataset_infos.json", "dummy_data.zip", "dataset_dict.json"];

    static readonly Regex SplitName = new(@"^\w+(\.\w+)*$", RegexOptions.CultureInvariant);

    /// <summary>Extension → packaged module of <c>datasets</c> (the formats that matter for text data, plus the others' names).</summary>
    static readonly Dictionary<string, string> ExtensionToModule = new(StringComparer.Ordinal)
    {
        [".csv"] = "csv", [".tsv"] = "csv", [".json"] = "json", [".jsonl"] = "json", [".ndjson"] = "json",
        [".parquet"] = "parquet", [".geoparquet"] = "parquet", [".gpq"] = "parquet", [".arrow"] = "arrow",
        [".txt"] = "text", [".conll"] = "conll", [".conllu"] = "conll", [".tar"] = "webdataset", [".xml"] = "xml",
        [".hdf5"] = "hdf5", [".h5"] = "hdf5", [".eval"] = "eval", [".lance"] = "lance", [".tsfile"] = "tsfile",
        [".png"] = "imagefolder", [".jpg"] = "imagefolder", [".jpeg"] = "imagefolder", [".gif"] = "imagefolder",
        [".bmp"] = "imagefolder", [".tif"] = "imagefolder", [".tiff"] = "imagefolder", [".webp"] = "imagefolder",
        [".wav"] = "audiofolder", [".mp3"] = "audiofolder", [".flac"] = "audiofolder", [".ogg"] = "audiofolder",
        [".mp4"] = "videofolder", [".avi"] = "videofolder", [".mkv"] = "videofolder", [".mov"] = "videofolder",
        [".pdf"] = "pdffolder",
    };

    static bool AllowedExtension(string path)
    {
        var suffixes = Basename(path).Split('.').Skip(1);
        return suffixes.Any(s => s == "zip" || ExtensionToModule.ContainsKey("." + s));
    }

    static string Basename(string path) => path[(path.LastIndexOf('/') + 1)..];

    static string Join(string basePath, string pattern) => basePath.Length == 0 ? pattern : basePath.TrimEnd('/') + "/" + pattern;

    static bool HasMagic(string pattern) => pattern.IndexOfAny(['*', '?', '[']) >= 0;

    /// <summary>
    /// <c>resolve_pattern</c>: the repository files matching <paramref name="pattern"/> (relative to
    /// <paramref name="basePath"/>), sorted by path, with the hidden / special-dir / ignored-name rules.
    /// </summary>
    public static List<string> ResolvePattern(string pattern, IReadOnlyList<string> files, string basePath = "", bool filterExtensions = true)
    {
        string full = Join(basePath, pattern);
        var regex = HubGlob.GlobToRegex(full);
        string patternBase = Basename(full);
        int hiddenInPattern = HiddenParts(full);
        int specialInPattern = SpecialDirs(full);
        var result = new List<string>();
        foreach (string path in files.Order(StringComparer.Ordinal))
        {
            if (!regex.IsMatch(path)) continue;
            string name = Basename(path);
            if (FilesToIgnore.Contains(name) && name != patternBase) continue;
            if (SpecialDirs(path) != specialInPattern) continue;
            if (HiddenParts(path) != hiddenInPattern) continue;
            if (filterExtensions && !AllowedExtension(path)) continue;
            result.Add(path);
        }
        return result;
    }

    static int HiddenParts(string path) => path.Split('/').Count(p => p.StartsWith('.') && p.Any(c => c != '.'));

    static int SpecialDirs(string path)
    {
        var parts = path.Split('/');
        return parts.Take(parts.Length - 1).Count(p => p.StartsWith("__", StringComparison.Ordinal));
    }

    /// <summary><c>get_data_patterns</c>: split name → patterns, in split order. Empty when no data file exists.</summary>
    public static List<KeyValuePair<string, List<string>>> GetDataPatterns(IReadOnlyList<string> files, string basePath = "")
    {
        var sharded = ResolvePattern(SplitPatternSharded.Replace("{split}", "*"), files, basePath, filterExtensions: false);
        if (sharded.Count > 0)
        {
            // datasets' string_to_dict: the pattern's "{split}" becomes (.+) and the rest is used as a regex as is.
            var unformat = new Regex(Basename(SplitPatternSharded).Replace("{split}", "(?<split>.+)"), RegexOptions.CultureInvariant);
            var splits = new HashSet<string>(StringComparer.Ordinal);
            foreach (string p in sharded)
            {
                var m = unformat.Match(Basename(p));
                if (m.Success) splits.Add(m.Groups["split"].Value);
            }
            var bad = splits.Where(s => !SplitName.IsMatch(s)).ToList();
            if (bad.Count > 0)
                throw new SpeculatorsException($"Split names must match '^\\w+(\\.\\w+)*$' but the data files name split(s) {string.Join(", ", bad.Select(b => $"'{b}'"))}.");
            var ordered = SplitKeywords.Select(k => k.Split).Where(splits.Contains)
                .Concat(splits.Where(s => s is not ("train" or "validation" or "test")).Order(StringComparer.Ordinal));
            return ordered.Select(s => new KeyValuePair<string, List<string>>(s, [SplitPatternSharded.Replace("{split}", s)])).ToList();
        }

        var groups = new List<List<KeyValuePair<string, List<string>>>>
        {
            new() { new("logs", ["**/*.eval"]) },
            SplitKeywords.Select(k => new KeyValuePair<string, List<string>>(k.Split, Expand(KeywordsInDirName, k.Keywords))).ToList(),
            SplitKeywords.Select(k => new KeyValuePair<string, List<string>>(k.Split, Expand(KeywordsInFilename, k.Keywords))).ToList(),
            new() { new("train", ["**"]) },
        };
        foreach (var group in groups)
        {
            var nonEmpty = group.Where(kv => kv.Value.Any(p => ResolvePattern(p, files, basePath, filterExtensions: false).Count > 0)).ToList();
            if (nonEmpty.Count > 0) return nonEmpty;
        }
        return [];
    }

    static List<string> Expand(string[] basePatterns, string[] keywords) =>
        keywords.SelectMany(k => basePatterns.Select(p => p.Replace("{keyword}", k).Replace("{sep}", NonWordChars))).ToList();

    /// <summary>
    /// <c>DataFilesDict.from_patterns</c> with the allowed extensions: the files of every split (patterns in
    /// order, each pattern's matches sorted). A pattern without wildcards that matches nothing is an error.
    /// </summary>
    public static List<KeyValuePair<string, List<string>>> ResolveSplits(
        IEnumerable<KeyValuePair<string, List<string>>> patterns, IReadOnlyList<string> files, string basePath, string where)
    {
        var result = new List<KeyValuePair<string, List<string>>>();
        foreach (var (split, pats) in patterns)
        {
            var list = new List<string>();
            foreach (string p in pats)
            {
                var matched = ResolvePattern(p, files, basePath);
                if (matched.Count == 0 && !HasMagic(p))
                    throw new SpeculatorsException($"{where}: data file '{Join(basePath, p)}' of split '{split}' is not in the repository.");
                list.AddRange(matched);
            }
            result.Add(new(split, list));
        }
        return result;
    }

    /// <summary>
    /// <c>infer_module_for_data_files_list</c>: the module of the most common extension (ties: parquet, lance,
    /// arrow, jsonl, json, csv, then by name), or null.
    /// </summary>
    public static string? InferModule(IReadOnlyList<string> files)
    {
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (string f in files)
            foreach (string s in Basename(f).Split('.').Skip(1))
            {
                string ext = "." + s.ToLowerInvariant();
                counts[ext] = counts.GetValueOrDefault(ext) + 1;
            }
        foreach (var (ext, _) in counts
                     .OrderByDescending(kv => kv.Value)
                     .ThenByDescending(kv => kv.Key == ".parquet").ThenByDescending(kv => kv.Key == ".lance")
                     .ThenByDescending(kv => kv.Key == ".arrow").ThenByDescending(kv => kv.Key == ".jsonl")
                     .ThenByDescending(kv => kv.Key == ".json").ThenByDescending(kv => kv.Key == ".csv")
                     .ThenByDescending(kv => kv.Key, StringComparer.Ordinal))
        {
            if (ExtensionToModule.TryGetValue(ext, out var module)) return module;
            if (ext == ".zip") return "zip";
        }
        return null;
    }

    /// <summary><c>DataFilesList.filter(extensions=...)</c>: keep files whose name ends in one of the module's extensions (optionally + a compression suffix).</summary>
    public static List<string> FilterForModule(IEnumerable<string> files, string module)
    {
        var exts = ExtensionToModule.Where(kv => kv.Value == module).Select(kv => Regex.Escape(kv.Key)).Append(Regex.Escape(".zip"));
        var regex = new Regex($"^.*({string.Join("|", exts)})(\\..+)?$", RegexOptions.CultureInvariant | RegexOptions.Singleline);
        return files.Where(f => regex.IsMatch(f)).ToList();
    }
}
