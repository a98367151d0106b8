using System.Globalization;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Util;

namespace Speculators.Data;

/// <summary>
/// The draft ↔ target vocabulary mapping (speculators.md §5): <see cref="D2T"/> (int64 [Vd], target
/// id = i + d2t[i]) and <see cref="T2D"/> (bool [V], true for the Vd target ids the draft keeps).
/// Always validated: d2t has Vd entries, t2d has V entries with exactly Vd trues, and
/// i + d2t[i] is the i-th true index of t2d.
/// </summary>
public sealed class VocabMapping
{
    public const string D2TFileName = "d2t.npy";
    public const string T2DFileName = "t2d.npy";
    public static string D2TSizedName(int draftVocabSize) => $"d2t-{draftVocabSize.ToString(CultureInfo.InvariantCulture)}.npy";
    public static string T2DSizedName(int targetVocabSize) => $"t2d-{targetVocabSize.ToString(CultureInfo.InvariantCulture)}.npy";

    public long[] D2T { get; }
    public bool[] T2D { get; }
    public int DraftVocabSize => D2T.Length;
    public int TargetVocabSize => T2D.Length;
    /// <summary>True when the draft keeps the whole target vocabulary (Vd == V, all offsets zero).</summary>
    public bool IsIdentity => DraftVocabSize == TargetVocabSize;

    /// <summary>Target id of draft id <paramref name="draftId"/>.</summary>
    public long TargetId(int draftId) => draftId + D2T[draftId];

    /// <summary>The Vd kept target ids, ascending (draft id i ↔ SelectedTargetIds[i]).</summary>
    public long[] SelectedTargetIds()
    {
        var ids = new long[D2T.Length];
        for (int i = 0; i < ids.Length; i++) ids[i] = i + D2T[i];
        return ids;
    }

    /// <param name="source">Named in error messages (file names).</param>
    public VocabMapping(long[] d2t, bool[] t2d, string source = "vocabulary mapping")
    {
        Validate(d2t, t2d, source, source);
        D2T = d2t;
        T2D = t2d;
    }

    static void Validate(long[] d2t, bool[] t2d, string d2tName, string t2dName)
    {
        int vd = d2t.Length, v = t2d.Length;
        if (vd == 0) throw new SpeculatorsException($"{d2tName}: d2t is empty (draft vocabulary size 0).");
        if (vd > v) throw new SpeculatorsException($"{d2tName}: d2t has {vd} entries but {t2dName} has only {v} (draft vocabulary larger than the target's).");
        int trues = 0;
        foreach (bool b in t2d) if (b) trues++;
        if (trues != vd)
            throw new SpeculatorsException($"{t2dName}: t2d has {trues} true entries but {d2tName} has {vd} draft ids; they must be equal.");
        int draft = 0;
        for (int t = 0; t < v; t++)
        {
            if (!t2d[t]) continue;
            long mapped = draft + d2t[draft];
            if (mapped != t)
                throw new SpeculatorsException(
                    $"{d2tName} and {t2dName} disagree: draft id {draft} maps to target id {draft} + d2t[{draft}] = {mapped}, " +
                    $"but the {draft}-th true entry of t2d is target id {t}.");
            draft++;
        }
    }

    /// <summary>
    /// speculators' <c>build_vocab_mappings_from_distribution</c> (§5.2): ids sorted by (−count, id),
    /// the first min(Vd, distinct) kept, padded with the smallest unused ids 0, 1, 2, … up to Vd, sorted.
    /// Ids with count 0 are not "seen" (a counter never holds them).
    /// </summary>
    public static VocabMapping Build(IReadOnlyList<KeyValuePair<long, long>> counts, int draftVocabSize, int targetVocabSize, string source = "token frequencies")
    {
        if (draftVocabSize <= 0) throw new SpeculatorsException($"--draft-vocab-size must be positive; got {draftVocabSize}.");
        if (targetVocabSize <= 0) throw new SpeculatorsException($"target vocabulary size must be positive; got {targetVocabSize}.");
        if (draftVocabSize > targetVocabSize)
            throw new SpeculatorsException($"--draft-vocab-size {draftVocabSize} is larger than the target vocabulary size {targetVocabSize}.");
        var seen = new HashSet<long>();
        var entries = new List<KeyValuePair<long, long>>(counts.Count);
        foreach (var kv in counts)
        {
            if (kv.Key < 0 || kv.Key >= targetVocabSize)
                throw new SpeculatorsException($"{source}: token id {kv.Key} is outside the target vocabulary [0, {targetVocabSize}); wrong model or wrong token-frequency file?");
            if (!seen.Add(kv.Key)) throw new SpeculatorsException($"{source}: token id {kv.Key} appears twice.");
            entries.Add(kv);
        }
        entries.Sort((a, b) => a.Value != b.Value ? b.Value.CompareTo(a.Value) : a.Key.CompareTo(b.Key));
        int take = Math.Min(draftVocabSize, entries.Count);
        var selected = new List<long>(draftVocabSize);
        var chosen = new HashSet<long>();
        for (int i = 0; i < take; i++) { selected.Add(entries[i].Key); chosen.Add(entries[i].Key); }
        for (long id = 0; selected.Count < draftVocabSize; id++)
            if (!chosen.Contains(id)) selected.Add(id);
        selected.Sort();
        var d2t = new long[draftVocabSize];
        var t2d = new bool[targetVocabSize];
        for (int i = 0; i < draftVocabSize; i++)
        {
            d2t[i] = selected[i] - i;
            t2d[selected[i]] = true;
        }
        return new VocabMapping(d2t, t2d, source);
    }

    public static VocabMapping Build(TokenFrequencies freq, int draftVocabSize, int targetVocabSize, string source = "token frequencies") =>
        Build(freq.Items(), draftVocabSize, targetVocabSize, source);

    /// <summary>Loads and validates a pair of files written by this tool or by Python (<c>np.save</c>).</summary>
    public static VocabMapping Load(string d2tPath, string t2dPath)
    {
        var d2tArr = Npy.Read(d2tPath);
        var t2dArr = Npy.Read(t2dPath);
        if (d2tArr.Shape.Length != 1) throw new SpeculatorsException($"{d2tPath}: d2t must be 1-D; found shape ({string.Join(", ", d2tArr.Shape)}).");
        if (t2dArr.Shape.Length != 1) throw new SpeculatorsException($"{t2dPath}: t2d must be 1-D; found shape ({string.Join(", ", t2dArr.Shape)}).");
        if (d2tArr.DType is not (NpyDType.Int64 or NpyDType.Int32))
            throw new SpeculatorsException($"{d2tPath}: d2t must be int64 (<i8); found {Npy.Descr(d2tArr.DType)}.");
        long[] d2t = d2tArr.ToInt64();
        bool[] t2d = t2dArr.ToBool();
        Validate(d2t, t2d, d2tPath, t2dPath);
        return new VocabMapping(d2t, t2d, d2tPath);
    }

    /// <summary>Fraction of the counted tokens whose id the draft keeps.</summary>
    public double Coverage(IEnumerable<KeyValuePair<long, long>> counts)
    {
        long kept = 0, total = 0;
        foreach (var (id, c) in counts)
        {
            total += c;
            if (id >= 0 && id < T2D.Length && T2D[id]) kept += c;
        }
        return total == 0 ? 0 : (double)kept / total;
    }

    /// <summary>
    /// Writes <c>d2t.npy</c>, <c>t2d.npy</c> and the size-named copies <c>d2t-{Vd}.npy</c>,
    /// <c>t2d-{V}.npy</c> (DESIGN.md §4) into <paramref name="dir"/>. With
    /// <paramref name="plainNames"/> false only the size-named files are written.
    /// Returns the paths written.
    /// </summary>
    public List<string> Save(string dir, bool plainNames = true)
    {
        Directory.CreateDirectory(dir);
        var written = new List<string>();
        byte[] d2tBytes = Npy.Encode(D2T);
        byte[] t2dBytes = Npy.Encode(T2D);
        void Put(string name, byte[] bytes) { string p = Path.Combine(dir, name); AtomicFile.WriteAllBytes(p, bytes); written.Add(p); }
        Put(D2TSizedName(DraftVocabSize), d2tBytes);
        Put(T2DSizedName(TargetVocabSize), t2dBytes);
        if (plainNames)
        {
            Put(D2TFileName, d2tBytes);
            Put(T2DFileName, t2dBytes);
        }
        return written;
    }

    /// <summary>
    /// <c>vocab_size</c> of a model directory's config.json (the text config's for multimodal models,
    /// as speculators' <c>get_target_vocab_size</c> does).
    /// </summary>
    public static int ReadTargetVocabSize(string modelDir)
    {
        string path = Path.Combine(modelDir, "config.json");
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: not found; the model directory needs a config.json with vocab_size.");
        JsonNode? root;
        try { root = JsonNode.Parse(File.ReadAllText(path)); }
        catch (System.Text.Json.JsonException e) { throw new SpeculatorsException($"{path}: malformed JSON: {e.Message}", e); }
        if (root is not JsonObject obj) throw new SpeculatorsException($"{path}: expected a JSON object.");
        JsonObject cfg = obj["text_config"] as JsonObject ?? obj;
        string where = ReferenceEquals(cfg, obj) ? "vocab_size" : "text_config.vocab_size";
        var node = cfg["vocab_size"];
        if (node is JsonValue v && v.TryGetValue(out long n) && n > 0 && n <= int.MaxValue) return (int)n;
        if (node is JsonValue v2 && v2.TryGetValue(out double dd) && dd == Math.Floor(dd) && dd > 0 && dd <= int.MaxValue) return (int)dd;
        throw new SpeculatorsException($"{path}: {where} is {(node == null ? "missing" : node.ToJsonString())}; expected a positive integer.");
    }
}
