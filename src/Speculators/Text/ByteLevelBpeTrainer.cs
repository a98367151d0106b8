using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Speculators.Text.Unicode;
using Speculators.Util;

namespace Speculators.Text;

/// <summary>Options of <see cref="ByteLevelBpeTrainer"/>.</summary>
public sealed record ByteLevelBpeTrainerOptions
{
    /// <summary>A pair must occur at least this often (weighted by word counts) to be merged.</summary>
    public int MinFrequency { get; init; } = 2;

    /// <summary>When set (it must be one of the special tokens) a TemplateProcessing post-processor puts it before every sequence.</summary>
    public string? BosToken { get; init; }

    /// <summary>Report merge progress through <see cref="Progress"/>.</summary>
    public bool ShowProgress { get; init; }
}

/// <summary>
/// Trains a byte-level BPE tokenizer like GPT-2 / Qwen2 and writes a real HF <c>tokenizer.json</c>:
/// NFC normalizer, the Qwen2 split regex + ByteLevel pre-tokenizer, 256 byte symbols (GPT-2
/// order) then the learned merges, special tokens as added tokens with ids after the vocabulary,
/// ByteLevel decoder, and no BOS unless <see cref="ByteLevelBpeTrainerOptions.BosToken"/> is set.
/// Deterministic: the most frequent pair wins, ties go to the smallest (left id, right id).
/// <c>vocabSize</c> counts everything, special tokens included (= <see cref="HfTokenizer.VocabSize"/>
/// when the corpus is rich enough to learn all merges).
/// </summary>
public static class ByteLevelBpeTrainer
{
    /// <summary>Qwen2's pre-tokenizer regex (digits one by one).</summary>
    public const string SplitPattern = FastSplitPatterns.Qwen2;

    /// <summary>Trains, writes <paramref name="outputPath"/> atomically and returns the loaded tokenizer.</summary>
    public static HfTokenizer Train(IEnumerable<string> corpus, int vocabSize, IReadOnlyList<string> specialTokens, string outputPath,
        ByteLevelBpeTrainerOptions? options = null)
    {
        string json = TrainToJson(corpus, vocabSize, specialTokens, options);
        AtomicFile.WriteAllText(outputPath, json);
        return HfTokenizer.FromJson(json, source: outputPath);
    }

    /// <summary>Trains and returns the tokenizer.json text.</summary>
    public static string TrainToJson(IEnumerable<string> corpus, int vocabSize, IReadOnlyList<string> specialTokens,
        ByteLevelBpeTrainerOptions? options = null)
    {
        options ??= new ByteLevelBpeTrainerOptions();
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(specialTokens);
        var specials = specialTokens.ToList();
        if (specials.Any(string.IsNullOrEmpty)) throw new SpeculatorsException("Special tokens must be non-empty strings.");
        if (specials.Distinct(StringComparer.Ordinal).Count() != specials.Count)
            throw new SpeculatorsException($"Special tokens must be distinct; got [{string.Join(", ", specials)}].");
        if (options.BosToken != null && !specials.Contains(options.BosToken))
            throw new SpeculatorsException($"BOS token '{options.BosToken}' must be one of the special tokens [{string.Join(", ", specials)}].");
        int modelVocab = vocabSize - specials.Count;
        if (modelVocab < 256)
            throw new SpeculatorsException($"Vocabulary size {vocabSize} is too small: byte-level BPE needs 256 byte tokens plus {specials.Count} special tokens.");
        if (options.MinFrequency < 1) throw new SpeculatorsException($"MinFrequency must be ≥ 1; got {options.MinFrequency}.");

        var words = CountWords(corpus, specials);
        var (tokens, merges) = LearnMerges(words, modelVocab, options);
        return WriteJson(tokens, merges, specials, options);
    }

    /// <summary>NFC, special tokens cut out, Qwen2 regex split; counts of each piece's UTF-8 bytes.</summary>
    static Dictionary<string, long> CountWords(IEnumerable<string> corpus, List<string> specials)
    {
        var regex = new CodePointRegex(SplitPattern, "ByteLevelBpeTrainer");
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        var lookup = counts.GetAlternateLookup<ReadOnlySpan<char>>();
        var matches = new List<(int Start, int End)>();
        var cutter = new AddedTokenMatcher(specials.Select((s, i) => (s, new AddedToken(i, s, true, false, false, false, false))).ToList());
        var found = new List<(int Start, int End, AddedToken Token)>();
        foreach (var doc in corpus)
        {
            if (string.IsNullOrEmpty(doc)) continue;
            found.Clear();
            cutter.FindMatches(doc, found);
            int pos = 0;
            foreach (var (s, e, _) in found.Append((doc.Length, doc.Length, null!)))
            {
                if (s > pos)
                {
                    string text = UnicodeNormalizer.Normalize(doc[pos..s], UnicodeForm.NFC);
                    matches.Clear();
                    regex.Matches(text, matches);
                    foreach (var (ms, me) in matches)
                    {
                        var piece = text.AsSpan(ms, me - ms);
                        if (lookup.TryGetValue(piece, out long c)) lookup[piece] = c + 1;
                        else counts[piece.ToString()] = 1;
                    }
                }
                pos = e;
            }
        }
        return counts;
    }

    sealed class PairOrder : IComparer<(long Count, int A, int B)>
    {
        public static readonly PairOrder Instance = new();
        public int Compare((long Count, int A, int B) x, (long Count, int A, int B) y)
        {
            if (x.Count != y.Count) return y.Count.CompareTo(x.Count);
            if (x.A != y.A) return x.A.CompareTo(y.A);
            return x.B.CompareTo(y.B);
        }
    }

    static long Key(int a, int b) => ((long)a << 32) | (uint)b;

    /// <summary>
    /// Classic incremental BPE: pair counts, pair → words index, lazy max-heap (every pair whose
    /// count changes is pushed again; stale entries are dropped or refreshed when popped).
    /// Returns the token strings (byte-level characters) by id and the merges in rank order.
    /// </summary>
    static (List<string> Tokens, List<(int A, int B)> Merges) LearnMerges(Dictionary<string, long> wordCounts, int modelVocab, ByteLevelBpeTrainerOptions options)
    {
        var tokens = new List<string>(modelVocab);
        foreach (char c in ByteLevelAlphabet.OrderedAlphabet) tokens.Add(c.ToString());
        var tokenIds = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) tokenIds[tokens[i]] = i;
        // Symbol ids: 0..255 = byte characters in GPT-2 vocabulary order; then merges in order.
        var byteToSymbol = new int[256];
        var alphabet = ByteLevelAlphabet.OrderedAlphabet;
        for (int i = 0; i < 256; i++) byteToSymbol[ByteLevelAlphabet.CharToByte(alphabet[i])] = i;

        var entries = wordCounts.OrderBy(kv => kv.Key, StringComparer.Ordinal).ToArray();
        var words = new int[entries.Length][];
        var lengths = new int[entries.Length];
        var counts = new long[entries.Length];
        var pairCounts = new Dictionary<long, long>();
        var where = new Dictionary<long, HashSet<int>>();
        for (int w = 0; w < entries.Length; w++)
        {
            byte[] bytes = Encoding.UTF8.GetBytes(entries[w].Key);
            words[w] = bytes.Select(b => byteToSymbol[b]).ToArray();
            lengths[w] = bytes.Length;
            counts[w] = entries[w].Value;
            AddPairs(w, +1);
        }

        void AddPairs(int w, int sign)
        {
            var syms = words[w];
            for (int i = 0; i + 1 < lengths[w]; i++)
            {
                long k = Key(syms[i], syms[i + 1]);
                pairCounts.TryGetValue(k, out long c);
                pairCounts[k] = c + sign * counts[w];
                if (sign > 0)
                {
                    if (!where.TryGetValue(k, out var set)) where[k] = set = new HashSet<int>();
                    set.Add(w);
                }
            }
        }

        var heap = new PriorityQueue<long, (long Count, int A, int B)>(PairOrder.Instance);
        foreach (var (k, c) in pairCounts) heap.Enqueue(k, (c, (int)(k >> 32), (int)k));

        var merges = new List<(int, int)>();
        using var progress = options.ShowProgress ? new Progress("BPE merges", modelVocab - 256, "tokens") : null;
        var touched = new HashSet<long>();
        while (tokens.Count < modelVocab && heap.TryDequeue(out long key, out var prio))
        {
            long current = pairCounts.GetValueOrDefault(key);
            if (current != prio.Count)
            {
                if (current > 0) heap.Enqueue(key, (current, prio.A, prio.B));
                continue;
            }
            if (current < options.MinFrequency) break;
            int a = prio.A, b = prio.B;
            // Two merge paths can spell the same string; like HF's trainer, reuse its id.
            string merged = tokens[a] + tokens[b];
            if (!tokenIds.TryGetValue(merged, out int id))
            {
                id = tokens.Count;
                tokens.Add(merged);
                tokenIds[merged] = id;
                progress?.Advance();
            }
            merges.Add((a, b));
            touched.Clear();
            foreach (int w in where[key].Order().ToArray())
            {
                var syms = words[w];
                int n = lengths[w];
                bool has = false;
                for (int i = 0; i + 1 < n; i++) if (syms[i] == a && syms[i + 1] == b) { has = true; break; }
                if (!has) continue;
                for (int i = 0; i + 1 < n; i++) touched.Add(Key(syms[i], syms[i + 1]));
                AddPairs(w, -1);
                int o = 0;
                for (int i = 0; i < n; i++)
                {
                    if (i + 1 < n && syms[i] == a && syms[i + 1] == b) { syms[o++] = id; i++; }
                    else syms[o++] = syms[i];
                }
                lengths[w] = o;
                AddPairs(w, +1);
                for (int i = 0; i + 1 < o; i++) touched.Add(Key(syms[i], syms[i + 1]));
            }
            where.Remove(key);
            pairCounts.Remove(key);
            foreach (long k in touched.Order())
            {
                if (k == key) continue;
                long c = pairCounts.GetValueOrDefault(k);
                if (c <= 0) { pairCounts.Remove(k); continue; }
                heap.Enqueue(k, (c, (int)(k >> 32), (int)k));
            }
        }
        return (tokens, merges);
    }

    static string WriteJson(List<string> tokens, List<(int A, int B)> merges, List<string> specials, ByteLevelBpeTrainerOptions options)
    {
        int modelVocab = tokens.Count;

        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (int i = 0; i < specials.Count; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", modelVocab + i);
                w.WriteString("content", specials[i]);
                w.WriteBoolean("single_word", false);
                w.WriteBoolean("lstrip", false);
                w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false);
                w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("normalizer");
            w.WriteString("type", "NFC");
            w.WriteEndObject();
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern");
            w.WriteString("Regex", SplitPattern);
            w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteBoolean("invert", false);
            w.WriteEndObject();
            WriteByteLevel(w, null);
            w.WriteEndArray();
            w.WriteEndObject();
            if (options.BosToken == null) WriteByteLevel(w, "post_processor");
            else
            {
                int bosId = modelVocab + specials.IndexOf(options.BosToken);
                w.WriteStartObject("post_processor");
                w.WriteString("type", "Sequence");
                w.WriteStartArray("processors");
                WriteByteLevel(w, null);
                w.WriteStartObject();
                w.WriteString("type", "TemplateProcessing");
                void Special(int typeId) { w.WriteStartObject(); w.WriteStartObject("SpecialToken"); w.WriteString("id", options.BosToken); w.WriteNumber("type_id", typeId); w.WriteEndObject(); w.WriteEndObject(); }
                void Seq(string id, int typeId) { w.WriteStartObject(); w.WriteStartObject("Sequence"); w.WriteString("id", id); w.WriteNumber("type_id", typeId); w.WriteEndObject(); w.WriteEndObject(); }
                w.WriteStartArray("single"); Special(0); Seq("A", 0); w.WriteEndArray();
                w.WriteStartArray("pair"); Special(0); Seq("A", 0); Special(1); Seq("B", 1); w.WriteEndArray();
                w.WriteStartObject("special_tokens");
                w.WriteStartObject(options.BosToken);
                w.WriteString("id", options.BosToken);
                w.WriteStartArray("ids"); w.WriteNumberValue(bosId); w.WriteEndArray();
                w.WriteStartArray("tokens"); w.WriteStringValue(options.BosToken); w.WriteEndArray();
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndObject();
                w.WriteEndArray();
                w.WriteEndObject();
            }
            WriteByteLevel(w, "decoder");
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteNull("continuing_subword_prefix");
            w.WriteNull("end_of_word_suffix");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            for (int i = 0; i < tokens.Count; i++) w.WriteNumber(tokens[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in merges)
            {
                w.WriteStartArray();
                w.WriteStringValue(tokens[a]);
                w.WriteStringValue(tokens[b]);
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    static void WriteByteLevel(Utf8JsonWriter w, string? property)
    {
        if (property == null) w.WriteStartObject(); else w.WriteStartObject(property);
        w.WriteString("type", "ByteLevel");
        w.WriteBoolean("add_prefix_space", false);
        w.WriteBoolean("trim_offsets", false);
        w.WriteBoolean("use_regex", false);
        w.WriteEndObject();
    }
}
