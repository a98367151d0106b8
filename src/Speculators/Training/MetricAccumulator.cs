using System.Text;
using Speculators.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// Sums raw metric values over batches and ranks, then normalizes them the Python tool's way
/// (<c>normalize_counted_metrics</c>): each <c>X_sum</c>/<c>X_total</c> pair becomes
/// <c>X = Σsum / Σtotal</c> (0 when the total is 0); any other value is summed too and divided by
/// the world size (an average over ranks). Values are kept as doubles; tensors are read in one
/// transfer per <see cref="Add(IReadOnlyDictionary{string, Tensor})"/>.
/// </summary>
public sealed class MetricAccumulator
{
    readonly SortedDictionary<string, double> _raw = new(StringComparer.Ordinal);

    /// <summary>The raw sums (including the <c>_sum</c>/<c>_total</c> keys), sorted by key.</summary>
    public IReadOnlyDictionary<string, double> Raw => _raw;

    /// <summary>Batches (or other units) added so far.</summary>
    public int Count { get; private set; }

    public bool IsEmpty => _raw.Count == 0;

    /// <summary>Adds raw values (keys ending in <c>_sum</c>/<c>_total</c>, or plain values).</summary>
    public void Add(IReadOnlyDictionary<string, double> values)
    {
        foreach (var (k, v) in values)
            _raw[k] = _raw.TryGetValue(k, out double old) ? old + v : v;
        Count++;
    }

    /// <summary>Adds 0-d (or one-element) metric tensors, reading them to the host in one copy.</summary>
    public void Add(IReadOnlyDictionary<string, Tensor> values)
    {
        if (values.Count == 0)
        {
            Count++;
            return;
        }
        var keys = values.Keys.ToArray();
        double[] host;
        using (var scope = NewDisposeScope())
        using (torch.no_grad())
        {
            foreach (var k in keys)
                if (values[k].numel() != 1)
                    throw new ArgumentException($"metric '{k}' must be a single value, got shape [{string.Join(", ", values[k].shape)}].");
            var stacked = torch.stack(keys.Select(k => values[k].detach().reshape(1).to(ScalarType.Float64, values[keys[0]].device)).ToArray());
            host = stacked.cpu().data<double>().ToArray();
        }
        var dict = new Dictionary<string, double>(keys.Length);
        for (int i = 0; i < keys.Length; i++) dict[keys[i]] = host[i];
        Add(dict);
    }

    /// <summary>Adds another accumulator's sums.</summary>
    public void Merge(MetricAccumulator other)
    {
        foreach (var (k, v) in other._raw)
            _raw[k] = _raw.TryGetValue(k, out double old) ? old + v : v;
        Count += other.Count;
    }

    public void Clear()
    {
        _raw.Clear();
        Count = 0;
    }

    /// <summary>
    /// Sums the raw values over all ranks of <paramref name="group"/> (every rank gets the totals).
    /// All ranks must hold the same keys (a rank with an empty batch still reports zero totals); a
    /// mismatch is detected with a hash of the key set and reported.
    /// </summary>
    public void AllReduce(IProcessGroup group)
    {
        if (group.WorldSize == 1) return;
        var keys = _raw.Keys.ToArray();
        ulong hash = KeyHash(keys);
        // Exact in float64: split the 64-bit hash into two 32-bit halves.
        double lo = hash & 0xFFFFFFFF, hi = hash >> 32;
        var max = group.AllReduceValues(new[] { lo, hi, keys.Length }, ReduceOp.Max);
        var min = group.AllReduceValues(new[] { lo, hi, keys.Length }, ReduceOp.Min);
        if (max[0] != min[0] || max[1] != min[1] || max[2] != min[2])
            throw new InvalidOperationException(
                $"metric reduction: ranks hold different metric keys (rank {group.Rank} has {keys.Length}: {string.Join(", ", keys)}); " +
                "every rank must report the same keys every step.");
        var summed = group.AllReduceValues(keys.Select(k => _raw[k]).ToArray(), ReduceOp.Sum);
        for (int i = 0; i < keys.Length; i++) _raw[keys[i]] = summed[i];
    }

    static ulong KeyHash(IEnumerable<string> keys)
    {
        ulong h = 14695981039346656037UL;
        foreach (var k in keys)
        {
            foreach (byte b in Encoding.UTF8.GetBytes(k))
            {
                h ^= b;
                h *= 1099511628211UL;
            }
            h ^= 0xFF;
            h *= 1099511628211UL;
        }
        return h;
    }

    /// <summary>
    /// Normalized values: <c>X = X_sum / X_total</c> for every pair (0 when the total is 0), a
    /// <c>_total</c> without <c>_sum</c> is dropped, and every other value is divided by
    /// <paramref name="worldSize"/>. Sorted by key.
    /// </summary>
    public SortedDictionary<string, double> Normalize(int worldSize = 1) => Normalize(_raw, worldSize);

    /// <summary>The Python tool's <c>normalize_counted_metrics</c> on a raw dictionary.</summary>
    public static SortedDictionary<string, double> Normalize(IReadOnlyDictionary<string, double> raw, int worldSize = 1)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize));
        var result = new SortedDictionary<string, double>(StringComparer.Ordinal);
        var paired = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, total) in raw)
        {
            if (!key.EndsWith("_total", StringComparison.Ordinal)) continue;
            string prefix = key[..^"_total".Length];
            paired.Add(key);
            if (raw.TryGetValue(prefix + "_sum", out double sum))
            {
                result[prefix] = total > 0 ? sum / total : 0.0;
                paired.Add(prefix + "_sum");
            }
        }
        foreach (var (key, value) in raw)
        {
            if (paired.Contains(key)) continue;
            result[key] = worldSize > 1 ? value / worldSize : value;
        }
        return result;
    }
}

/// <summary>Builds the flat keys the metric sinks receive (<c>train/loss</c>, <c>val/full_acc_1_epoch</c>, <c>lr/Muon</c>).</summary>
public static class MetricKeys
{
    /// <summary>Prefixes every key with <paramref name="prefix"/> + "/" and appends <paramref name="suffix"/>.</summary>
    public static Dictionary<string, double> Flatten(string prefix, IReadOnlyDictionary<string, double> values, string suffix = "")
    {
        var flat = new Dictionary<string, double>(values.Count);
        foreach (var (k, v) in values) flat[$"{prefix}/{k}{suffix}"] = v;
        return flat;
    }

    /// <summary>Training record: <c>train/{key}</c>.</summary>
    public static Dictionary<string, double> Train(IReadOnlyDictionary<string, double> normalized) => Flatten("train", normalized);

    /// <summary>Validation record: <c>val/{key}_epoch</c>.</summary>
    public static Dictionary<string, double> Validation(IReadOnlyDictionary<string, double> normalized) => Flatten("val", normalized, "_epoch");

    /// <summary>Copies every entry of <paramref name="source"/> into <paramref name="target"/>.</summary>
    public static void AddTo(this Dictionary<string, double> target, IReadOnlyDictionary<string, double> source)
    {
        foreach (var (k, v) in source) target[k] = v;
    }
}
