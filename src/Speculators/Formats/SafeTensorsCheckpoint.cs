using System.Text.Json;
using static TorchSharp.torch;

namespace Speculators.Formats;

/// <summary>
/// The weights of a model directory: a single <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>weight_map</c>: tensor → shard file). Shards are opened
/// (memory-mapped) on first use, so loading a subset touches only the files that hold it.
/// </summary>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    readonly Dictionary<string, string> _fileOfKey;
    readonly Dictionary<string, SafeTensorsFile> _open = new(StringComparer.Ordinal);

    /// <summary>The directory (or the single file's directory).</summary>
    public string Directory { get; }
    /// <summary>Where the key list came from: the index json or the single file.</summary>
    public string Source { get; }
    /// <summary>The shard files (full paths), in name order.</summary>
    public IReadOnlyList<string> Files { get; }
    public IReadOnlyCollection<string> Keys => _fileOfKey.Keys;

    SafeTensorsCheckpoint(string directory, string source, Dictionary<string, string> fileOfKey)
    {
        Directory = directory;
        Source = source;
        _fileOfKey = fileOfKey;
        Files = fileOfKey.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>True when <paramref name="directory"/> holds <c>{baseName}.safetensors</c> or its index.</summary>
    public static bool Exists(string directory, string baseName = "model") =>
        File.Exists(Path.Combine(directory, baseName + ".safetensors")) ||
        File.Exists(Path.Combine(directory, baseName + ".safetensors.index.json"));

    /// <summary>
    /// Opens the weights in <paramref name="path"/>: a directory (index json preferred over the single
    /// file, as transformers does) or a path to one .safetensors file.
    /// </summary>
    public static SafeTensorsCheckpoint Open(string path, string baseName = "model")
    {
        if (File.Exists(path) && path.EndsWith(".safetensors", StringComparison.Ordinal))
            return FromSingle(Path.GetFullPath(path));
        if (File.Exists(path) && path.EndsWith(".index.json", StringComparison.Ordinal))
            return FromIndex(Path.GetFullPath(path));
        if (!System.IO.Directory.Exists(path))
            throw new SpeculatorsException($"{path}: no such directory or safetensors file.");
        string index = Path.Combine(path, baseName + ".safetensors.index.json");
        if (File.Exists(index)) return FromIndex(Path.GetFullPath(index));
        string single = Path.Combine(path, baseName + ".safetensors");
        if (File.Exists(single)) return FromSingle(Path.GetFullPath(single));
        var others = System.IO.Directory.EnumerateFiles(path)
            .Select(Path.GetFileName)
            .Where(n => n!.EndsWith(".safetensors", StringComparison.Ordinal) || n.EndsWith(".bin", StringComparison.Ordinal) || n.EndsWith(".pt", StringComparison.Ordinal) || n.EndsWith(".pth", StringComparison.Ordinal))
            .Take(5).ToList();
        throw new SpeculatorsException(
            $"{path}: no {baseName}.safetensors or {baseName}.safetensors.index.json" +
            (others.Count > 0 ? $" (found {string.Join(", ", others)}; PyTorch .bin/.pt weights are not supported, convert them to safetensors)." : "."));
    }

    static SafeTensorsCheckpoint FromSingle(string file)
    {
        var header = SafeTensorsHeader.Read(file);
        var map = header.Tensors.ToDictionary(t => t.Name, _ => file, StringComparer.Ordinal);
        return new SafeTensorsCheckpoint(Path.GetDirectoryName(file)!, file, map);
    }

    static SafeTensorsCheckpoint FromIndex(string indexPath)
    {
        string dir = Path.GetDirectoryName(indexPath)!;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(indexPath));
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{indexPath}: invalid JSON ({e.Message}).");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object ||
                !doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new SpeculatorsException($"{indexPath}: missing the 'weight_map' object (tensor name → shard file).");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            var checkedFiles = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new SpeculatorsException($"{indexPath}: weight_map[\"{p.Name}\"] must be a file name, found {p.Value.ValueKind}.");
                string rel = p.Value.GetString()!;
                if (!checkedFiles.TryGetValue(rel, out var full))
                {
                    full = Path.GetFullPath(Path.Combine(dir, rel));
                    if (!File.Exists(full))
                        throw new SpeculatorsException($"{indexPath}: shard '{rel}' (holding '{p.Name}') is missing from {dir}.");
                    checkedFiles[rel] = full;
                }
                map[p.Name] = full;
            }
            return new SafeTensorsCheckpoint(dir, indexPath, map);
        }
    }

    public bool Contains(string key) => _fileOfKey.ContainsKey(key);

    /// <summary>The shard that holds <paramref name="key"/>.</summary>
    public string FileOf(string key) =>
        _fileOfKey.TryGetValue(key, out var f) ? f : throw new SpeculatorsException($"{Source}: no tensor named '{key}'.");

    SafeTensorsFile Shard(string key)
    {
        string file = FileOf(key);
        if (!_open.TryGetValue(file, out var st))
        {
            st = SafeTensorsFile.Open(file);
            _open[file] = st;
        }
        if (!st.Contains(key))
            throw new SpeculatorsException($"{Source} lists '{key}' in {Path.GetFileName(file)}, but that shard does not contain it.");
        return st;
    }

    public SafeTensorInfo Info(string key) => Shard(key).Info(key);

    public Tensor Load(string key, ScalarType? dtype = null, Device? device = null) => Shard(key).Load(key, dtype, device);

    public void ReadInto(string key, Tensor destination, string? destinationName = null) => Shard(key).ReadInto(key, destination, destinationName);

    /// <summary>Header infos of every tensor (opens every shard's header; no data read).</summary>
    public IEnumerable<SafeTensorInfo> AllInfos() => Keys.Select(Info);

    public void Dispose()
    {
        foreach (var f in _open.Values) f.Dispose();
        _open.Clear();
    }
}
