using System.Globalization;
using System.Text;
using System.Text.Json;
using Speculators.Formats;
using Speculators.Util;

namespace Speculators.Data;

/// <summary>
/// Counts of supervised tokens: for every row, the ids in <c>input_ids[loss_mask == 1]</c>
/// (speculators.md §5.1). Thread-safe (one lock per row added) and mergeable, so workers may share
/// one counter or keep their own and <see cref="Merge"/> them.
/// <para>
/// Order: ids are remembered in first-seen order, and within one row the newly seen ids are taken in
/// ascending order — exactly the insertion order of Python's <c>Counter.update</c> fed with
/// <c>tensor.unique()</c> per row, so a single-threaded count over the same rows gives a
/// <c>token_freq.pt</c> byte-identical to the Python tool's.
/// </para>
/// Files: <c>token_freq.pt</c> (torch zip pickle of <c>dict[int, int]</c>, readable by
/// <c>torch.load(weights_only=True)</c>) and <c>token_freq.json</c> (a JSON object
/// <c>{"token_id": count, …}</c> with decimal-string keys, in the same order).
/// </summary>
public sealed class TokenFrequencies
{
    public const string PtFileName = "token_freq.pt";
    public const string JsonFileName = "token_freq.json";

    readonly object _gate = new();
    long[] _counts = new long[1024];
    readonly List<int> _order = new();

    /// <summary>Number of distinct token ids with a non-zero count.</summary>
    public int Distinct { get { lock (_gate) return _order.Count; } }

    /// <summary>Total counted tokens.</summary>
    public long Total { get { lock (_gate) { long t = 0; foreach (int id in _order) t += _counts[id]; return t; } } }

    public long this[long tokenId]
    {
        get { lock (_gate) return tokenId >= 0 && tokenId < _counts.Length ? _counts[tokenId] : 0; }
    }

    /// <summary>Counts <c>inputIds[i]</c> for every <c>i</c> with <c>lossMask[i] != 0</c>.</summary>
    public void AddRow(ReadOnlySpan<long> inputIds, ReadOnlySpan<long> lossMask)
    {
        if (inputIds.Length != lossMask.Length)
            throw new ArgumentException($"input_ids has {inputIds.Length} tokens but loss_mask has {lossMask.Length}.");
        List<int>? fresh = null;
        lock (_gate)
        {
            for (int i = 0; i < inputIds.Length; i++)
            {
                if (lossMask[i] == 0) continue;
                long id = inputIds[i];
                if (id < 0 || id > int.MaxValue - 1) throw new ArgumentOutOfRangeException(nameof(inputIds), $"token id {id} at position {i} is out of range.");
                EnsureCapacity((int)id);
                if (_counts[id]++ == 0) (fresh ??= new()).Add((int)id);
            }
            if (fresh != null)
            {
                fresh.Sort();
                _order.AddRange(fresh);
            }
        }
    }

    /// <summary>Adds <paramref name="count"/> occurrences of one id (new ids go to the end of the order).</summary>
    public void Add(long tokenId, long count)
    {
        if (tokenId < 0 || tokenId > int.MaxValue - 1) throw new ArgumentOutOfRangeException(nameof(tokenId), $"token id {tokenId} is out of range.");
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), $"count {count} for token {tokenId} is negative.");
        if (count == 0) return;
        lock (_gate)
        {
            EnsureCapacity((int)tokenId);
            if (_counts[tokenId] == 0) _order.Add((int)tokenId);
            _counts[tokenId] += count;
        }
    }

    /// <summary>Adds another counter's counts (its new ids appended in its order), as <c>Counter.update</c> does.</summary>
    public void Merge(TokenFrequencies other)
    {
        if (ReferenceEquals(other, this)) throw new ArgumentException("cannot merge a counter into itself");
        foreach (var (id, count) in other.Items()) Add(id, count);
    }

    void EnsureCapacity(int id)
    {
        if (id < _counts.Length) return;
        int n = _counts.Length;
        while (n <= id) n = n < (1 << 29) ? n * 2 : int.MaxValue;
        Array.Resize(ref _counts, n);
    }

    /// <summary>(token id, count) pairs in insertion order (a snapshot).</summary>
    public List<KeyValuePair<long, long>> Items()
    {
        lock (_gate)
        {
            var list = new List<KeyValuePair<long, long>>(_order.Count);
            foreach (int id in _order) list.Add(new(id, _counts[id]));
            return list;
        }
    }

    /// <summary>Writes <c>token_freq.pt</c> (torch zip pickle) atomically.</summary>
    public void SavePt(string path) => TorchPickle.SaveIntDict(path, Items());

    /// <summary>Writes <c>token_freq.json</c> atomically: <c>{"id": count, …}</c> in insertion order.</summary>
    public void SaveJson(string path)
    {
        var sb = new StringBuilder("{");
        bool first = true;
        foreach (var (id, count) in Items())
        {
            if (!first) sb.Append(", ");
            first = false;
            sb.Append('"').Append(id.ToString(CultureInfo.InvariantCulture)).Append("\": ").Append(count.ToString(CultureInfo.InvariantCulture));
        }
        sb.Append('}');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Writes both <c>token_freq.pt</c> and <c>token_freq.json</c> into <paramref name="dir"/>.</summary>
    public void SaveBoth(string dir)
    {
        SavePt(Path.Combine(dir, PtFileName));
        SaveJson(Path.Combine(dir, JsonFileName));
    }

    /// <summary>Reads a <c>.pt</c> (torch pickle) or <c>.json</c> token-frequency file, chosen by extension.</summary>
    public static TokenFrequencies Load(string path)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: token-frequency file not found.");
        string ext = Path.GetExtension(path).ToLowerInvariant();
        IEnumerable<KeyValuePair<long, long>> items = ext switch
        {
            ".json" => ReadJson(path),
            _ => TorchPickle.LoadIntDict(path),
        };
        var f = new TokenFrequencies();
        foreach (var (id, count) in items)
        {
            if (id < 0 || id > int.MaxValue - 1) throw new SpeculatorsException($"{path}: token id {id} is out of range (expected 0 ≤ id < 2^31-1).");
            if (count < 0) throw new SpeculatorsException($"{path}: token {id} has a negative count {count}.");
            f.Add(id, count);
        }
        return f;
    }

    static List<KeyValuePair<long, long>> ReadJson(string path)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(path)); }
        catch (JsonException e) { throw new SpeculatorsException($"{path}: malformed JSON: {e.Message}", e); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SpeculatorsException($"{path}: expected a JSON object {{\"token_id\": count, ...}}, found {doc.RootElement.ValueKind}.");
            var list = new List<KeyValuePair<long, long>>();
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!long.TryParse(p.Name, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long id))
                    throw new SpeculatorsException($"{path}: key \"{p.Name}\" is not an integer token id.");
                if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt64(out long count))
                    throw new SpeculatorsException($"{path}: count for token {p.Name} is {p.Value.GetRawText()}; expected an integer.");
                list.Add(new(id, count));
            }
            return list;
        }
    }
}
