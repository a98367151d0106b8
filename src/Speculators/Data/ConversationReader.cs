using System.IO.Compression;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Parquet;
using Parquet.Serialization;

namespace Speculators.Data;

/// <summary>
/// Streams raw rows from local files: <c>.jsonl</c>, <c>.json</c> (JSON Lines, one top-level array
/// — parsed element by element, never loaded whole — or a column-oriented object), <c>.parquet</c>
/// (row group by row group), <c>.arrow</c> (Arrow IPC stream shards), the same with <c>.gz</c>, and
/// directories: a <c>save_to_disk</c> directory (its <c>state.json</c> shards) or, recursively in
/// ordinal path order, every supported file (hidden entries and datasets' metadata JSON skipped).
/// <para>
/// A bad row (malformed JSON line, non-object element) comes back as a <see cref="RawRecord"/> with
/// <see cref="RawRecord.Error"/> and its file:line; the reader goes on with the next line. A file
/// that cannot be read at all (missing, truncated or corrupt parquet/arrow, broken JSON array
/// syntax) throws a <see cref="SpeculatorsException"/> naming the file — except a JSON array
/// broken after some elements, which yields the elements before the break and then one error record.
/// </para>
/// </summary>
public static class ConversationReader
{
    static readonly string[] Extensions = [".jsonl", ".json", ".parquet", ".arrow", ".jsonl.gz", ".json.gz"];
    static readonly HashSet<string> MetadataJson = new(StringComparer.OrdinalIgnoreCase)
    {
        HfDatasetLayout.DatasetInfoFile, "dataset_infos.json", HfDatasetLayout.StateFile, HfDatasetLayout.DatasetDictFile,
    };

    /// <summary>True when <paramref name="path"/> has an extension this reader understands.</summary>
    public static bool IsSupportedFile(string path) =>
        Extensions.Any(e => path.EndsWith(e, StringComparison.OrdinalIgnoreCase));

    /// <summary>The data files <paramref name="pathOrDir"/> stands for, in read order.</summary>
    public static IReadOnlyList<string> ListFiles(string pathOrDir)
    {
        if (File.Exists(pathOrDir))
        {
            if (!IsSupportedFile(pathOrDir))
                throw new SpeculatorsException($"{pathOrDir}: unsupported file type; expected {string.Join(", ", Extensions)}.");
            return [pathOrDir];
        }
        if (!Directory.Exists(pathOrDir)) throw new SpeculatorsException($"{pathOrDir}: no such file or directory.");
        string state = Path.Combine(pathOrDir, HfDatasetLayout.StateFile);
        if (File.Exists(state))
        {
            var (files, _) = HfDatasetLayout.ReadState(state);
            return files.Select(f => Path.Combine(pathOrDir, f)).ToList();
        }
        string dd = Path.Combine(pathOrDir, HfDatasetLayout.DatasetDictFile);
        if (File.Exists(dd))
        {
            var splits = HfDatasetLayout.ReadSplits(dd);
            throw new SpeculatorsException($"{pathOrDir}: is a saved DatasetDict (splits: {string.Join(", ", splits)}); pass one split's directory, e.g. {Path.Combine(pathOrDir, splits.FirstOrDefault() ?? "train")}.");
        }
        var result = new List<string>();
        Collect(pathOrDir, pathOrDir, result);
        result.Sort((a, b) => string.CompareOrdinal(Path.GetRelativePath(pathOrDir, a), Path.GetRelativePath(pathOrDir, b)));
        if (result.Count == 0)
            throw new SpeculatorsException($"{pathOrDir}: no data files found (looked for {string.Join(", ", Extensions)}).");
        return result;
    }

    static void Collect(string root, string dir, List<string> into)
    {
        foreach (var f in Directory.EnumerateFiles(dir))
        {
            string name = Path.GetFileName(f);
            if (name.StartsWith('.') || MetadataJson.Contains(name) || !IsSupportedFile(f)) continue;
            into.Add(f);
        }
        foreach (var d in Directory.EnumerateDirectories(dir))
        {
            if (Path.GetFileName(d).StartsWith('.')) continue;
            Collect(root, d, into);
        }
    }

    /// <summary>Streams every row of a file or directory.</summary>
    public static IEnumerable<RawRecord> Read(string pathOrDir)
    {
        foreach (var file in ListFiles(pathOrDir))
            foreach (var r in ReadFile(file))
                yield return r;
    }

    /// <summary>Streams the rows of one file (type chosen by extension).</summary>
    public static IEnumerable<RawRecord> ReadFile(string path)
    {
        string lower = path.ToLowerInvariant();
        bool gz = lower.EndsWith(".gz", StringComparison.Ordinal);
        string inner = gz ? lower[..^3] : lower;
        if (inner.EndsWith(".jsonl", StringComparison.Ordinal)) return ReadJsonLines(path, gz);
        if (inner.EndsWith(".json", StringComparison.Ordinal)) return ReadJson(path, gz);
        if (lower.EndsWith(".parquet", StringComparison.Ordinal)) return ReadParquet(path);
        if (lower.EndsWith(".arrow", StringComparison.Ordinal)) return ReadArrow(path);
        throw new SpeculatorsException($"{path}: unsupported file type; expected {string.Join(", ", Extensions)}.");
    }

    static Stream Open(string path, bool gz)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: file not found.");
        Stream s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        return gz ? new GZipStream(s, CompressionMode.Decompress) : s;
    }

    // ---------------------------------------------------------------- JSON Lines

    static IEnumerable<RawRecord> ReadJsonLines(string path, bool gz)
    {
        using var stream = Open(path, gz);
        foreach (var r in ReadJsonLines(stream, path)) yield return r;
    }

    /// <summary>JSON Lines from a stream: one object per non-blank line.</summary>
    public static IEnumerable<RawRecord> ReadJsonLines(Stream stream, string name)
    {
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: true, bufferSize: 1 << 16, leaveOpen: true);
        long line = 0;
        while (true)
        {
            string? text;
            try { text = reader.ReadLine(); }
            catch (IOException e) { throw new SpeculatorsException($"{name}:{line + 1}: read error: {e.Message}", e); }
            catch (InvalidDataException e) { throw new SpeculatorsException($"{name}:{line + 1}: corrupt compressed data: {e.Message}", e); }
            if (text == null) yield break;
            line++;
            if (string.IsNullOrWhiteSpace(text)) continue;
            yield return ParseObject(text, name, RecordOrigin.JsonLine, line - 1, line);
        }
    }

    static RawRecord ParseObject(string text, string name, RecordOrigin origin, long index, long? line)
    {
        JsonNode? node;
        try { node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { MaxDepth = 256 }); }
        catch (JsonException e)
        {
            return new RawRecord(name, origin, index, line, null, "malformed JSON: " + FirstSentence(e.Message));
        }
        return node is JsonObject o
            ? new RawRecord(name, origin, index, line, o, null)
            : new RawRecord(name, origin, index, line, null, $"expected a JSON object per row, found {Kind(node)}");
    }

    static string Kind(JsonNode? n) => n switch
    {
        null => "null",
        JsonArray => "an array",
        JsonObject => "an object",
        JsonValue v => v.GetValueKind() switch { JsonValueKind.String => "a string", JsonValueKind.Number => "a number", _ => "a boolean" },
        _ => "a value",
    };

    static string FirstSentence(string message)
    {
        // System.Text.Json messages end with "Path: $ | LineNumber: 0 | BytePositionInLine: 5."
        int i = message.IndexOf(" Path:", StringComparison.Ordinal);
        return i > 0 ? message[..i] : message;
    }

    // ---------------------------------------------------------------- .json

    static IEnumerable<RawRecord> ReadJson(string path, bool gz)
    {
        int first;
        using (var probe = Open(path, gz)) first = FirstNonWhitespace(probe);
        if (first == '[')
        {
            using var s = Open(path, gz);
            foreach (var r in ReadJsonArray(s, path)) yield return r;
            yield break;
        }
        if (first < 0) yield break; // empty file: no rows
        // JSON Lines with a .json name (what datasets' json loader tries first), else one document.
        bool jsonLines;
        using (var s = Open(path, gz)) jsonLines = FirstLineIsCompleteJson(s);
        if (jsonLines)
        {
            using var s = Open(path, gz);
            foreach (var r in ReadJsonLines(s, path)) yield return r;
            yield break;
        }
        foreach (var r in ReadJsonDocument(path, gz)) yield return r;
    }

    static int FirstNonWhitespace(Stream s)
    {
        var buf = new byte[4096];
        bool start = true;
        while (true)
        {
            int n = s.Read(buf, 0, buf.Length);
            if (n == 0) return -1;
            int i = 0;
            if (start && n >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) i = 3;
            start = false;
            for (; i < n; i++)
                if (buf[i] is not ((byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')) return buf[i];
        }
    }

    static bool FirstLineIsCompleteJson(Stream s)
    {
        using var reader = new StreamReader(s, Encoding.UTF8, true, 1 << 16, leaveOpen: true);
        string? line;
        while ((line = reader.ReadLine()) != null)
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            try { JsonNode.Parse(line); return true; }
            catch (JsonException) { return false; }
        }
        return false;
    }

    /// <summary>
    /// A whole JSON document that is an object: column-oriented (<c>{"col": [v0, v1, …], …}</c> with
    /// equal-length lists, as datasets' json loader reads it) or a single row — the latter when it is
    /// not columnar, or when its <c>conversations</c>/<c>messages</c> list holds turn objects
    /// (a column of conversations holds lists).
    /// </summary>
    static IEnumerable<RawRecord> ReadJsonDocument(string path, bool gz)
    {
        JsonNode? root;
        using (var s = Open(path, gz))
        {
            try { root = JsonNode.Parse(s); }
            catch (JsonException e)
            {
                throw new SpeculatorsException($"{path}:{e.LineNumber + 1}: malformed JSON: {FirstSentence(e.Message)}", e);
            }
        }
        if (root is not JsonObject obj) throw new SpeculatorsException($"{path}: expected JSON objects (one per line), an array of objects, or an object of columns; found {Kind(root)}.");
        int? rows = null;
        bool columnar = obj.Count > 0;
        foreach (var (k, v) in obj)
        {
            if (v is not JsonArray a || (rows != null && rows != a.Count)) { columnar = false; break; }
            // {"conversations": [turn, turn]} is one conversation, not a column of turns.
            if (k is "conversations" or "messages" && a.Count > 0 && a[0] is JsonObject) { columnar = false; break; }
            rows = a.Count;
        }
        if (!columnar)
        {
            yield return new RawRecord(path, RecordOrigin.JsonArrayElement, 0, 1, obj, null);
            yield break;
        }
        var columns = obj.Select(kv => (kv.Key, (JsonArray)kv.Value!)).ToList();
        for (int i = 0; i < rows; i++)
        {
            var row = new JsonObject();
            foreach (var (k, a) in columns) row[k] = a[i]?.DeepClone();
            yield return new RawRecord(path, RecordOrigin.JsonColumns, i, null, row, null);
        }
    }

    // ---------------------------------------------------------------- streamed JSON array

    enum StepKind { NeedMore, Started, Element, End, Error }

    /// <param name="ErrorLine">0-based line of a syntax error in the whole file, or -1 when not known.</param>
    readonly record struct Step(StepKind Kind, int Start, int Consumed, JsonReaderState State, string? Message, long ErrorLine);

    static Step Advance(ReadOnlySpan<byte> data, bool final, JsonReaderState state, bool started)
    {
        var reader = new Utf8JsonReader(data, final, state);
        try
        {
            if (!started)
            {
                if (!reader.Read()) return new Step(final ? StepKind.Error : StepKind.NeedMore, 0, 0, state, "empty document", -1);
                if (reader.TokenType != JsonTokenType.StartArray) return new Step(StepKind.Error, 0, 0, state, "expected '[' at the start of the file", -1);
                return new Step(StepKind.Started, 0, (int)reader.BytesConsumed, reader.CurrentState, null, -1);
            }
            if (!reader.Read())
                return final ? new Step(StepKind.Error, 0, 0, state, "the file ends inside the top-level array (truncated?)", -1) : new Step(StepKind.NeedMore, 0, 0, state, null, -1);
            if (reader.TokenType == JsonTokenType.EndArray) return new Step(StepKind.End, 0, (int)reader.BytesConsumed, reader.CurrentState, null, -1);
            int start = (int)reader.TokenStartIndex;
            if (reader.TokenType is JsonTokenType.StartObject or JsonTokenType.StartArray && !reader.TrySkip())
                return final ? new Step(StepKind.Error, 0, 0, state, "the file ends inside an element (truncated?)", -1) : new Step(StepKind.NeedMore, 0, 0, state, null, -1);
            return new Step(StepKind.Element, start, (int)reader.BytesConsumed, reader.CurrentState, null, -1);
        }
        catch (JsonException e)
        {
            // The reader state carries the line count across buffer refills, so this is the file's (0-based) line.
            return new Step(StepKind.Error, 0, 0, state, FirstSentence(e.Message), e.LineNumber ?? -1);
        }
    }

    /// <summary>
    /// Streams the elements of a top-level JSON array with a growing window buffer: memory is bounded by
    /// the largest element, not the file. Each element records the line it starts on.
    /// </summary>
    public static IEnumerable<RawRecord> ReadJsonArray(Stream stream, string name)
    {
        byte[] buf = new byte[1 << 16];
        int pos = 0, len = 0;
        bool eof = false, started = false, bomChecked = false;
        long line = 1;                       // line number at buf[pos]
        long index = 0;
        var state = new JsonReaderState(new JsonReaderOptions { MaxDepth = 256 });
        while (true)
        {
            var step = Advance(buf.AsSpan(pos, len - pos), eof, state, started);
            switch (step.Kind)
            {
                case StepKind.NeedMore:
                    if (pos > 0) { Buffer.BlockCopy(buf, pos, buf, 0, len - pos); len -= pos; pos = 0; }
                    if (len == buf.Length) Array.Resize(ref buf, buf.Length * 2);
                    int n;
                    try { n = stream.Read(buf, len, buf.Length - len); }
                    catch (Exception e) when (e is IOException or InvalidDataException)
                    { throw new SpeculatorsException($"{name}: read error near line {line}: {e.Message}", e); }
                    if (n == 0) eof = true;
                    len += n;
                    if (!bomChecked && !started && pos == 0 && len >= 3)
                    {
                        bomChecked = true;
                        if (buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) pos = 3;
                    }
                    else if (eof) bomChecked = true;
                    continue;
                case StepKind.Started:
                    line += CountNewlines(buf.AsSpan(pos, step.Consumed));
                    pos += step.Consumed;
                    state = step.State;
                    started = true;
                    continue;
                case StepKind.End:
                    yield break;
                case StepKind.Error:
                    {
                        long errorLine = step.ErrorLine >= 0 ? step.ErrorLine + 1 : line;
                        if (!started) throw new SpeculatorsException($"{name}:{errorLine}: malformed JSON array: {step.Message}");
                        yield return new RawRecord(name, RecordOrigin.JsonArrayElement, index, errorLine, null,
                            $"malformed JSON: {step.Message}; the rest of this file is skipped");
                        yield break;
                    }
                case StepKind.Element:
                    {
                        long elementLine = line + CountNewlines(buf.AsSpan(pos, step.Start));
                        var slice = buf.AsSpan(pos + step.Start, step.Consumed - step.Start);
                        RawRecord rec;
                        try
                        {
                            var node = JsonNode.Parse(slice, documentOptions: new JsonDocumentOptions { MaxDepth = 256 });
                            rec = node is JsonObject o
                                ? new RawRecord(name, RecordOrigin.JsonArrayElement, index, elementLine, o, null)
                                : new RawRecord(name, RecordOrigin.JsonArrayElement, index, elementLine, null, $"expected a JSON object per row, found {Kind(node)}");
                        }
                        catch (JsonException e)
                        {
                            rec = new RawRecord(name, RecordOrigin.JsonArrayElement, index, elementLine, null, "malformed JSON: " + FirstSentence(e.Message));
                        }
                        line += CountNewlines(buf.AsSpan(pos, step.Consumed));
                        pos += step.Consumed;
                        state = step.State;
                        index++;
                        yield return rec;
                        continue;
                    }
            }
        }
    }

    static int CountNewlines(ReadOnlySpan<byte> s) => s.Count((byte)'\n');

    // ---------------------------------------------------------------- parquet

    static IEnumerable<RawRecord> ReadParquet(string path)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: file not found.");
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        int groups;
        try
        {
            var reader = ParquetReader.CreateAsync(fs, leaveStreamOpen: true).GetAwaiter().GetResult();
            groups = reader.RowGroupCount;
            reader.DisposeAsync().AsTask().GetAwaiter().GetResult();
        }
        catch (Exception e) when (e is not SpeculatorsException and not OutOfMemoryException)
        {
            throw new SpeculatorsException($"{path}: unreadable parquet file (truncated or corrupt?): {e.Message}", e);
        }
        long row = 0;
        for (int g = 0; g < groups; g++)
        {
            IList<Dictionary<string, object>> data;
            try
            {
                fs.Position = 0;
                data = ParquetSerializer.DeserializeUntypedAsync(fs, null, g).GetAwaiter().GetResult().Data;
            }
            catch (Exception e) when (e is not SpeculatorsException and not OutOfMemoryException)
            {
                throw new SpeculatorsException($"{path}: cannot read row group {g} of {groups} (truncated or corrupt parquet?): {e.Message}", e);
            }
            foreach (var dict in data)
            {
                RawRecord rec;
                try { rec = new RawRecord(path, RecordOrigin.ParquetRow, row, null, (JsonObject)ClrToJson(dict)!, null); }
                catch (NotSupportedException e) { rec = new RawRecord(path, RecordOrigin.ParquetRow, row, null, null, e.Message); }
                row++;
                yield return rec;
            }
        }
    }

    /// <summary>Parquet.Net's untyped values (dictionaries, lists, primitives) as JSON nodes.</summary>
    internal static JsonNode? ClrToJson(object? v)
    {
        switch (v)
        {
            case null: return null;
            case JsonNode n: return n;
            case string s: return JsonValue.Create(s);
            case bool b: return JsonValue.Create(b);
            case long l: return JsonValue.Create(l);
            case int i: return JsonValue.Create(i);
            case short sh: return JsonValue.Create(sh);
            case sbyte sb: return JsonValue.Create(sb);
            case byte by: return JsonValue.Create(by);
            case ushort us: return JsonValue.Create(us);
            case uint ui: return JsonValue.Create(ui);
            case ulong ul: return JsonValue.Create(ul);
            case double d: return double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(System.Globalization.CultureInfo.InvariantCulture));
            case float f: return float.IsFinite(f) ? JsonValue.Create(f) : JsonValue.Create(f.ToString(System.Globalization.CultureInfo.InvariantCulture));
            case decimal m: return JsonValue.Create(m);
            case DateTime dt: return JsonValue.Create(dt.ToString("o", System.Globalization.CultureInfo.InvariantCulture));
            case DateTimeOffset dto: return JsonValue.Create(dto.ToString("o", System.Globalization.CultureInfo.InvariantCulture));
            case TimeSpan ts: return JsonValue.Create(ts.ToString("c", System.Globalization.CultureInfo.InvariantCulture));
            case Guid g: return JsonValue.Create(g.ToString());
            case ReadOnlyMemory<char> rm: return JsonValue.Create(rm.ToString());
            case byte[] bytes: return JsonValue.Create(Convert.ToBase64String(bytes));
            case System.Collections.IDictionary dict:
                {
                    var o = new JsonObject();
                    foreach (System.Collections.DictionaryEntry e in dict) o[e.Key.ToString() ?? ""] = ClrToJson(e.Value);
                    return o;
                }
            case System.Collections.IEnumerable list:
                {
                    var a = new JsonArray();
                    foreach (var item in list) a.Add(ClrToJson(item));
                    return a;
                }
            default: throw new NotSupportedException($"unsupported parquet value of type {v.GetType().Name}");
        }
    }

    // ---------------------------------------------------------------- arrow

    static IEnumerable<RawRecord> ReadArrow(string path)
    {
        using var shard = new ArrowShard(path);
        long row = 0;
        foreach (var batch in shard.Batches)
        {
            for (int r = 0; r < batch.Length; r++)
            {
                RawRecord rec;
                try { rec = new RawRecord(path, RecordOrigin.ArrowRow, row, null, ArrowJson.Row(batch, r), null); }
                catch (NotSupportedException e) { rec = new RawRecord(path, RecordOrigin.ArrowRow, row, null, null, e.Message); }
                row++;
                yield return rec;
            }
        }
    }
}
