using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Speculators.Data;

/// <summary>
/// The JSON files and names of a Hugging Face <c>datasets</c> <c>save_to_disk</c> directory
/// (hf_formats.md §1, from datasets 4.x <c>arrow_dataset.py</c>, <c>arrow_writer.py</c>,
/// <c>info.py</c>, <c>features.py</c>):
/// <list type="bullet">
/// <item>shards <c>data-{i:05d}-of-{n:05d}.arrow</c> (Arrow IPC stream);</item>
/// <item>Arrow schema metadata key <c>huggingface</c> = <c>json.dumps({"info": {"features": …}})</c>
/// (one line, Python's default separators);</item>
/// <item><c>dataset_info.json</c> = <c>asdict(DatasetInfo)</c> with sorted top-level keys,
/// <c>indent=2</c>, no trailing newline;</item>
/// <item><c>state.json</c> with all seven keys, <c>indent=2, sort_keys=True</c>.</item>
/// </list>
/// Features are written with the 4.x spelling <c>"_type": "List"</c> (what speculators' pinned
/// datasets ≥ 4.0 writes); readers accept <c>List</c>, <c>Sequence</c> and <c>LargeList</c>.
/// </summary>
public static class HfDatasetLayout
{
    public const string DatasetInfoFile = "dataset_info.json";
    public const string StateFile = "state.json";
    public const string DatasetDictFile = "dataset_dict.json";
    public const string SchemaMetadataKey = "huggingface";

    /// <summary><c>datasets</c>' default <c>max_shard_size</c> "500MB" (decimal units).</summary>
    public const long DefaultMaxShardBytes = 500_000_000;

    public static string ShardName(int index, int count) =>
        $"data-{index.ToString("D5", CultureInfo.InvariantCulture)}-of-{count.ToString("D5", CultureInfo.InvariantCulture)}.arrow";

    /// <summary>
    /// <c>save_to_disk</c>'s shard count: <c>int(nbytes / max_shard_size) + 1</c>, at most one per row
    /// (datasets ≥ 4.5), and — unlike Python, which then writes no file — at least one.
    /// </summary>
    public static int ShardCount(long nbytes, long rows, long maxShardBytes = DefaultMaxShardBytes)
    {
        if (maxShardBytes <= 0) throw new ArgumentOutOfRangeException(nameof(maxShardBytes));
        long n = nbytes / maxShardBytes + 1;
        n = Math.Min(n, rows);
        return (int)Math.Max(1, Math.Min(n, 99_999));
    }

    /// <summary>Rows [start, end) of shard <paramref name="index"/> (<c>Dataset.shard(contiguous=True)</c>).</summary>
    public static (long Start, long End) ShardRange(long rows, int count, int index)
    {
        long div = rows / count, mod = rows % count;
        long start = div * index + Math.Min(index, mod);
        long end = start + div + (index < mod ? 1 : 0);
        return (start, end);
    }

    /// <summary>The features dict of the prepared-dataset columns, in column order.</summary>
    public static string PreparedFeaturesJsonOneLine =>
        "{\"input_ids\": {\"feature\": {\"dtype\": \"int64\", \"_type\": \"Value\"}, \"_type\": \"List\"}, " +
        "\"loss_mask\": {\"feature\": {\"dtype\": \"int64\", \"_type\": \"Value\"}, \"_type\": \"List\"}, " +
        "\"seq_len\": {\"dtype\": \"int64\", \"_type\": \"Value\"}}";

    /// <summary>The <c>huggingface</c> schema-metadata value (what <c>ArrowWriter._build_metadata</c> dumps).</summary>
    public static string PreparedSchemaMetadata => "{\"info\": {\"features\": " + PreparedFeaturesJsonOneLine + "}}";

    static JsonObject PreparedFeatures() => new()
    {
        ["input_ids"] = new JsonObject { ["feature"] = new JsonObject { ["dtype"] = "int64", ["_type"] = "Value" }, ["_type"] = "List" },
        ["loss_mask"] = new JsonObject { ["feature"] = new JsonObject { ["dtype"] = "int64", ["_type"] = "Value" }, ["_type"] = "List" },
        ["seq_len"] = new JsonObject { ["dtype"] = "int64", ["_type"] = "Value" },
    };

    /// <summary><c>dataset_info.json</c> text for the prepared dataset (sorted top-level keys, indent 2).</summary>
    public static string PreparedDatasetInfoJson()
    {
        var info = new JsonObject
        {
            ["citation"] = "",
            ["description"] = "",
            ["features"] = PreparedFeatures(),
            ["homepage"] = "",
            ["license"] = "",
        };
        return PythonIndentedJson(info);
    }

    /// <summary><c>state.json</c> text (all seven keys, recursively sorted, indent 2).</summary>
    public static string StateJson(IReadOnlyList<string> dataFiles, string fingerprint, string? formatType)
    {
        var files = new JsonArray();
        foreach (var f in dataFiles) files.Add(new JsonObject { ["filename"] = f });
        var state = new JsonObject
        {
            ["_data_files"] = files,
            ["_fingerprint"] = fingerprint,
            ["_format_columns"] = null,
            ["_format_kwargs"] = new JsonObject(),
            ["_format_type"] = formatType,
            ["_output_all_columns"] = false,
            ["_split"] = null,
        };
        return PythonIndentedJson(state);
    }

    /// <summary>16 lowercase hex chars, like <c>generate_random_fingerprint</c>.</summary>
    public static string RandomFingerprint()
    {
        Span<byte> b = stackalloc byte[8];
        RandomNumberGenerator.Fill(b);
        return Convert.ToHexStringLower(b);
    }

    /// <summary>
    /// <c>json.dump(obj, indent=2)</c> with ASCII escaping (<c>ensure_ascii=True</c>), keys in the
    /// object's order, <c>": "</c> and newline separators, no trailing newline.
    /// </summary>
    public static string PythonIndentedJson(JsonNode node)
    {
        var sb = new StringBuilder();
        Write(sb, node, 0);
        return sb.ToString();
    }

    static void Write(StringBuilder sb, JsonNode? node, int depth)
    {
        switch (node)
        {
            case null: sb.Append("null"); break;
            case JsonObject o:
                if (o.Count == 0) { sb.Append("{}"); break; }
                sb.Append('{');
                bool first = true;
                foreach (var (k, v) in o)
                {
                    sb.Append(first ? "\n" : ",\n");
                    first = false;
                    sb.Append(' ', 2 * (depth + 1));
                    AppendPythonString(sb, k);
                    sb.Append(": ");
                    Write(sb, v, depth + 1);
                }
                sb.Append('\n').Append(' ', 2 * depth).Append('}');
                break;
            case JsonArray a:
                if (a.Count == 0) { sb.Append("[]"); break; }
                sb.Append('[');
                for (int i = 0; i < a.Count; i++)
                {
                    sb.Append(i == 0 ? "\n" : ",\n");
                    sb.Append(' ', 2 * (depth + 1));
                    Write(sb, a[i], depth + 1);
                }
                sb.Append('\n').Append(' ', 2 * depth).Append(']');
                break;
            case JsonValue v:
                if (v.TryGetValue(out string? s)) AppendPythonString(sb, s);
                else if (v.TryGetValue(out bool b)) sb.Append(b ? "true" : "false");
                else sb.Append(v.ToJsonString());
                break;
        }
    }

    /// <summary>A JSON string literal as Python's json module writes it with ensure_ascii=True.</summary>
    static void AppendPythonString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || c > 0x7E) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    /// <summary>Parses a state.json and returns its <c>_data_files</c> names (in row order) and <c>_format_type</c>.</summary>
    internal static (List<string> DataFiles, string? FormatType) ReadState(string stateJsonPath)
    {
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllBytes(stateJsonPath)); }
        catch (JsonException e) { throw new SpeculatorsException($"{stateJsonPath}: malformed JSON: {e.Message}", e); }
        if (root is not JsonObject o) throw new SpeculatorsException($"{stateJsonPath}: expected a JSON object.");
        if (o["_data_files"] is not JsonArray files)
            throw new SpeculatorsException($"{stateJsonPath}: \"_data_files\" is {(o.ContainsKey("_data_files") ? "not a list" : "missing")}; expected [{{\"filename\": \"data-00000-of-00001.arrow\"}}, ...].");
        var names = new List<string>();
        for (int i = 0; i < files.Count; i++)
        {
            string? fn = (files[i] as JsonObject)?["filename"] is JsonValue v && v.TryGetValue(out string? s) ? s : null;
            if (string.IsNullOrEmpty(fn)) throw new SpeculatorsException($"{stateJsonPath}: _data_files[{i}] has no \"filename\".");
            if (Path.IsPathRooted(fn) || fn.Split('/', '\\').Contains(".."))
                throw new SpeculatorsException($"{stateJsonPath}: _data_files[{i}] \"{fn}\" must be a file name inside the dataset directory.");
            names.Add(fn);
        }
        string? format = o["_format_type"] is JsonValue fv && fv.TryGetValue(out string? ft) ? ft : null;
        return (names, format);
    }

    /// <summary>Split names of a <c>DatasetDict</c> directory's <c>dataset_dict.json</c>.</summary>
    internal static List<string> ReadSplits(string datasetDictPath)
    {
        try
        {
            var root = JsonNode.Parse(File.ReadAllBytes(datasetDictPath));
            var result = new List<string>();
            if (root?["splits"] is JsonArray a)
                foreach (var s in a) if (s is JsonValue v && v.TryGetValue(out string? name)) result.Add(name);
            return result;
        }
        catch (JsonException e) { throw new SpeculatorsException($"{datasetDictPath}: malformed JSON: {e.Message}", e); }
    }
}
