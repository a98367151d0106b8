using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Formats;

/// <summary>
/// Writes safetensors files the way the Python <c>safetensors</c> package does: tensors ordered by dtype
/// (descending enum order, so wider types come first and every tensor is aligned to its element size)
/// then by name; offsets contiguous from 0 with no gaps; compact JSON header with <c>__metadata__</c> first
/// (always carrying <c>"format": "pt"</c>, which transformers requires), padded with spaces to a multiple
/// of 8 bytes. Non-contiguous, non-CPU and &gt;2 GiB tensors are handled. Writes are atomic (tmp, fsync, rename).
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>Tests lower this to exercise the chunked write path on small tensors.</summary>
    internal static int ChunkBytes { get; set; } = 1 << 30;

    static readonly JsonWriterOptions CompactJson = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, Indented = false };

    /// <summary>Writes <paramref name="tensors"/> to <paramref name="path"/> atomically.</summary>
    public static void Save(string path, IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        var plan = Plan(path, list, metadata);
        AtomicFile.Write(path, fs => WriteData(fs, plan));
    }

    /// <summary>Serializes to a byte array (for small files and tests).</summary>
    public static byte[] Serialize(IEnumerable<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        var plan = Plan("<memory>", tensors.ToList(), metadata);
        using var ms = new MemoryStream();
        WriteData(ms, plan);
        return ms.ToArray();
    }

    sealed record Entry(string Name, Tensor Tensor, SafeTensorsDType DType, long[] Shape, long Bytes);

    sealed record WritePlan(byte[] Header, List<Entry> Entries);

    static WritePlan Plan(string path, List<KeyValuePair<string, Tensor>> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var entries = new List<Entry>(tensors.Count);
        foreach (var (name, t) in tensors)
        {
            if (string.IsNullOrEmpty(name)) throw new SpeculatorsException($"{path}: tensor names must not be empty.");
            if (name == "__metadata__") throw new SpeculatorsException($"{path}: '__metadata__' is reserved and cannot name a tensor.");
            if (!seen.Add(name)) throw new SpeculatorsException($"{path}: tensor '{name}' given twice.");
            var dtype = SafeTensorsDTypes.FromTorch(t.dtype, $"{path}: tensor '{name}'");
            entries.Add(new Entry(name, t, dtype, t.shape, t.numel() * t.ElementSize));
        }
        entries.Sort((a, b) => a.DType != b.DType ? b.DType.CompareTo(a.DType) : string.CompareOrdinal(a.Name, b.Name));

        var meta = new SortedDictionary<string, string>(StringComparer.Ordinal) { ["format"] = "pt" };
        if (metadata != null) foreach (var (k, v) in metadata) meta[k] = v;

        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, CompactJson))
        {
            w.WriteStartObject();
            w.WriteStartObject("__metadata__");
            foreach (var (k, v) in meta) w.WriteString(k, v);
            w.WriteEndObject();
            long offset = 0;
            foreach (var e in entries)
            {
                w.WriteStartObject(e.Name);
                w.WriteString("dtype", e.DType.Name());
                w.WriteStartArray("shape");
                foreach (var d in e.Shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + e.Bytes);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += e.Bytes;
            }
            w.WriteEndObject();
        }
        var json = ms.ToArray();
        int padded = (json.Length + 7) / 8 * 8;
        var header = new byte[8 + padded];
        BitConverter.TryWriteBytes(header.AsSpan(0, 8), (ulong)padded);
        json.CopyTo(header, 8);
        header.AsSpan(8 + json.Length).Fill((byte)' ');
        return new WritePlan(header, entries);
    }

    static void WriteData(Stream fs, WritePlan plan)
    {
        fs.Write(plan.Header);
        foreach (var e in plan.Entries)
        {
            using var scope = NewDisposeScope();
            var t = e.Tensor.detach();
            if (t.device_type != DeviceType.CPU) t = t.cpu();
            if (!t.is_contiguous()) t = t.contiguous();
            TensorMemory.WriteTo(t, fs, ChunkBytes);
        }
    }

    /// <summary>Bytes a tensor occupies in a safetensors file.</summary>
    public static long StorageBytes(Tensor t) => t.numel() * t.ElementSize;

    /// <summary>
    /// Writes a checkpoint to <paramref name="directory"/> the way huggingface_hub shards it: one
    /// <c>{baseName}.safetensors</c> when everything fits in <paramref name="maxShardBytes"/>, otherwise
    /// <c>{baseName}-0000i-of-0000N.safetensors</c> plus <c>{baseName}.safetensors.index.json</c>
    /// (<c>metadata.total_size</c>, <c>weight_map</c>). Tensors are taken in name order and packed
    /// greedily; a tensor larger than the limit gets a shard of its own. Files of an earlier save
    /// under the same base name that are not part of this one are removed. Returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> SaveSharded(string directory, IEnumerable<KeyValuePair<string, Tensor>> tensors,
        long maxShardBytes, string baseName = "model", IReadOnlyDictionary<string, string>? metadata = null)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes), "must be positive");
        Directory.CreateDirectory(directory);
        var sorted = tensors.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToList();
        var shards = new List<List<KeyValuePair<string, Tensor>>>();
        List<KeyValuePair<string, Tensor>>? current = null;
        long currentBytes = 0;
        foreach (var kv in sorted)
        {
            long bytes = StorageBytes(kv.Value);
            if (bytes > maxShardBytes)
            {
                shards.Add([kv]);
                continue;
            }
            if (current == null || currentBytes + bytes > maxShardBytes)
            {
                current = [];
                shards.Add(current);
                currentBytes = 0;
            }
            current.Add(kv);
            currentBytes += bytes;
        }
        if (shards.Count == 0) shards.Add([]);

        var written = new List<string>();
        string single = baseName + ".safetensors";
        string indexName = baseName + ".safetensors.index.json";
        if (shards.Count == 1)
        {
            Save(Path.Combine(directory, single), shards[0], metadata);
            written.Add(single);
        }
        else
        {
            int n = shards.Count;
            var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
            long total = 0;
            for (int i = 0; i < n; i++)
            {
                string name = $"{baseName}-{i + 1:D5}-of-{n:D5}.safetensors";
                Save(Path.Combine(directory, name), shards[i], metadata);
                written.Add(name);
                foreach (var kv in shards[i])
                {
                    weightMap[kv.Key] = name;
                    total += StorageBytes(kv.Value);
                }
            }
            var index = new JsonObject
            {
                ["metadata"] = new JsonObject { ["total_size"] = total },
                ["weight_map"] = new JsonObject(weightMap.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            };
            AtomicFile.WriteAllText(Path.Combine(directory, indexName),
                index.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }) + "\n");
            written.Add(indexName);
        }
        RemoveStale(directory, baseName, written);
        return written;
    }

    static void RemoveStale(string directory, string baseName, List<string> keep)
    {
        var keepSet = new HashSet<string>(keep, StringComparer.Ordinal);
        var shardPattern = new System.Text.RegularExpressions.Regex(
            "^" + System.Text.RegularExpressions.Regex.Escape(baseName) + @"-\d{5}-of-\d{5}\.safetensors$");
        foreach (var f in Directory.EnumerateFiles(directory))
        {
            string name = Path.GetFileName(f);
            if (keepSet.Contains(name)) continue;
            if (name == baseName + ".safetensors" || name == baseName + ".safetensors.index.json" || shardPattern.IsMatch(name))
                File.Delete(f);
        }
    }
}
