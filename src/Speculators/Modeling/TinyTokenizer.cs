using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Speculators.Modeling;

/// <summary>
/// A small but real Hugging Face byte-level BPE tokenizer (GPT-2 / Qwen layout): 256 byte tokens, merges
/// learned from a built-in English text, and the special tokens <c>&lt;|endoftext|&gt;</c>,
/// <c>&lt;|im_start|&gt;</c>, <c>&lt;|im_end|&gt;</c> (then reserved specials to fill any remaining ids), so the
/// tokenizer has exactly the model's vocabulary size. <see cref="TokenizerJson"/> is loadable by HF's Rust
/// tokenizers; <see cref="TokenizerConfigJson"/> carries a ChatML chat template with generation tags.
/// </summary>
public sealed class TinyTokenizer
{
    public const string EndOfText = "<|endoftext|>";
    public const string ImStart = "<|im_start|>";
    public const string ImEnd = "<|im_end|>";

    /// <summary>ChatML; assistant content (with its end tag) inside <c>{% generation %}</c> for loss masks.</summary>
    public const string ChatTemplate =
        "{%- for message in messages %}" +
        "{{- '<|im_start|>' + message['role'] + '\\n' }}" +
        "{%- if message['role'] == 'assistant' %}" +
        "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}" +
        "{%- else %}" +
        "{{- message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endif %}" +
        "{%- endfor %}" +
        "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    // GPT-2's pre-tokenization pattern (what the ByteLevel pre-tokenizer applies with use_regex).
    static readonly Regex PreTokenize = new(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+", RegexOptions.Compiled);

    const string Corpus =
        "Speculative decoding lets a small draft model propose several tokens that the large target model then checks in one " +
        "forward pass. When the draft guesses well, the target accepts many tokens at once and the text comes out faster, " +
        "while the output stays exactly what the target alone would have written. The draft reads the hidden states of the " +
        "target from a few layers, adds the embedding of the next token, and predicts what comes after it. Training the " +
        "draft needs conversations, a chat template, a tokenizer, and the hidden states of the target for every token.\n" +
        "The user asked a question about the weather, and the assistant answered that it would be sunny in the morning and " +
        "rainy in the evening. Then the user asked for a short poem about the sea, and the assistant wrote four lines about " +
        "waves, wind, salt and light. Good answers are short, clear and kind; they explain the reason for each step.\n" +
        "Numbers like 1, 2, 3, 10, 42, 100 and 2024 appear in text as well as words. Code appears too: def add(a, b): return " +
        "a + b, and for i in range(10): print(i). Questions end with a question mark? Lists use commas, and sentences end " +
        "with a period. The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore.\n" +
        "A model with more layers and a larger hidden size is slower but often better. The attention heads look at earlier " +
        "tokens; the key and value cache keeps them so that each new token costs little. Rotary position embeddings rotate " +
        "the queries and keys by an angle that grows with the position, so the model knows where each token is.\n" +
        "system: You are a helpful assistant. user: Hello, how are you today? assistant: I am well, thank you for asking. " +
        "How can I help you? user: Please summarize this document in three sentences. assistant: Here is the summary.";

    /// <summary>GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to U+0100 onwards.</summary>
    public static IReadOnlyList<char> ByteToChar { get; } = BuildByteToChar();

    static char[] BuildByteToChar()
    {
        var map = new char[256];
        var printable = new List<int>();
        for (int b = '!'; b <= '~'; b++) printable.Add(b);
        for (int b = 0xA1; b <= 0xAC; b++) printable.Add(b);
        for (int b = 0xAE; b <= 0xFF; b++) printable.Add(b);
        foreach (var b in printable) map[b] = (char)b;
        int n = 0;
        for (int b = 0; b < 256; b++)
            if (!printable.Contains(b)) map[b] = (char)(256 + n++);
        return map;
    }

    public int VocabSize { get; }
    /// <summary>Model vocabulary (byte tokens then merges) → id.</summary>
    public IReadOnlyDictionary<string, int> Vocab { get; }
    /// <summary>Merges in priority order.</summary>
    public IReadOnlyList<(string A, string B)> Merges { get; }
    /// <summary>Added special tokens → id (ids follow the model vocabulary).</summary>
    public IReadOnlyDictionary<string, int> Specials { get; }

    public int EndOfTextId => Specials[EndOfText];
    public int ImStartId => Specials[ImStart];
    public int ImEndId => Specials[ImEnd];

    TinyTokenizer(int vocabSize, Dictionary<string, int> vocab, List<(string, string)> merges, Dictionary<string, int> specials)
    {
        VocabSize = vocabSize;
        Vocab = vocab;
        Merges = merges;
        Specials = specials;
    }

    /// <summary>The smallest vocabulary: 256 bytes + the three ChatML specials.</summary>
    public const int MinVocabSize = 259;

    /// <summary>
    /// Builds a tokenizer with exactly <paramref name="vocabSize"/> ids: as many BPE merges as fit (learned
    /// deterministically from the built-in text), the three specials, then <c>&lt;|reserved_special_token_i|&gt;</c>.
    /// </summary>
    public static TinyTokenizer Build(int vocabSize) => Cache.GetOrAdd(vocabSize, BuildUncached);

    static readonly System.Collections.Concurrent.ConcurrentDictionary<int, TinyTokenizer> Cache = new();

    static TinyTokenizer BuildUncached(int vocabSize)
    {
        if (vocabSize < MinVocabSize)
            throw new SpeculatorsException($"a byte-level tokenizer needs a vocabulary of at least {MinVocabSize} (256 bytes + 3 special tokens); got {vocabSize}.");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocab[ByteToChar[b].ToString()] = b;
        int targetMerges = vocabSize - 256 - 3;

        // Words as symbol sequences with counts.
        var counts = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (Match m in PreTokenize.Matches(Corpus))
        {
            string mapped = new(Encoding.UTF8.GetBytes(m.Value).Select(b => ByteToChar[b]).ToArray());
            counts[mapped] = counts.GetValueOrDefault(mapped) + 1;
        }
        var words = counts.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => (Symbols: kv.Key.Select(c => c.ToString()).ToList(), Count: kv.Value)).ToList();
        var merges = new List<(string, string)>();
        var banned = new HashSet<(string, string)>();
        while (merges.Count < targetMerges)
        {
            var pairCounts = new Dictionary<(string, string), int>();
            foreach (var (symbols, count) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var p = (symbols[i], symbols[i + 1]);
                    if (!banned.Contains(p)) pairCounts[p] = pairCounts.GetValueOrDefault(p) + count;
                }
            if (pairCounts.Count == 0) break;
            var best = pairCounts.OrderByDescending(kv => kv.Value)
                .ThenBy(kv => kv.Key.Item1, StringComparer.Ordinal).ThenBy(kv => kv.Key.Item2, StringComparer.Ordinal).First().Key;
            string merged = best.Item1 + best.Item2;
            if (vocab.ContainsKey(merged))
            {
                banned.Add(best); // the same string by another split: keep tokens unique
                continue;
            }
            vocab[merged] = vocab.Count;
            merges.Add(best);
            foreach (var (symbols, _) in words)
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (symbols[i] == best.Item1 && symbols[i + 1] == best.Item2)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
        }
        var specials = new Dictionary<string, int>(StringComparer.Ordinal);
        int next = vocab.Count;
        foreach (var s in new[] { EndOfText, ImStart, ImEnd }) specials[s] = next++;
        for (int r = 0; next < vocabSize; r++) specials[$"<|reserved_special_token_{r}|>"] = next++;
        return new TinyTokenizer(vocabSize, vocab, merges, specials);
    }

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    static JsonObject AddedToken(int id, string content) => new()
    {
        ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false,
        ["normalized"] = false, ["special"] = true,
    };

    /// <summary>The <c>tokenizer.json</c> text (HF tokenizers format 1.0, BPE model, ByteLevel pre-tokenizer and decoder).</summary>
    public string TokenizerJson()
    {
        var vocab = new JsonObject();
        foreach (var (tok, id) in Vocab.OrderBy(kv => kv.Value)) vocab[tok] = id;
        var merges = new JsonArray(Merges.Select(m => (JsonNode)JsonValue.Create(m.A + " " + m.B)).ToArray());
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = new JsonArray(Specials.OrderBy(kv => kv.Value).Select(kv => (JsonNode)AddedToken(kv.Value, kv.Key)).ToArray()),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = true },
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = "",
                ["end_of_word_suffix"] = "",
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocab,
                ["merges"] = merges,
            },
        };
        return root.ToJsonString(Indented) + "\n";
    }

    /// <summary>The <c>tokenizer_config.json</c> text: ChatML template, eos <c>&lt;|im_end|&gt;</c>, pad <c>&lt;|endoftext|&gt;</c>, no BOS.</summary>
    public string TokenizerConfigJson(int modelMaxLength) =>
        ChatMlTokenizerConfigJson(Specials.Select(kv => (kv.Key, kv.Value)), ChatTemplate, modelMaxLength);

    /// <summary>
    /// <c>tokenizer_config.json</c> as transformers writes it for a fast ChatML tokenizer without BOS (eos
    /// <c>&lt;|im_end|&gt;</c>, pad <c>&lt;|endoftext|&gt;</c>): shared by the test-model factory and the quickstart's tokenizer.
    /// </summary>
    /// <param name="specials">the special tokens and their ids</param>
    /// <param name="additionalSpecialTokens">written as <c>additional_special_tokens</c> when given</param>
    public static string ChatMlTokenizerConfigJson(IEnumerable<(string Token, int Id)> specials, string chatTemplate, int modelMaxLength,
        IReadOnlyList<string>? additionalSpecialTokens = null)
    {
        var decoder = new JsonObject();
        foreach (var (tok, id) in specials.OrderBy(s => s.Id))
        {
            var t = AddedToken(id, tok);
            t.Remove("id");
            decoder[id.ToString(System.Globalization.CultureInfo.InvariantCulture)] = t;
        }
        var root = new JsonObject
        {
            ["add_bos_token"] = false,
            ["add_eos_token"] = false,
            ["add_prefix_space"] = false,
            ["added_tokens_decoder"] = decoder,
        };
        if (additionalSpecialTokens != null)
            root["additional_special_tokens"] = new JsonArray(additionalSpecialTokens.Select(t => (JsonNode)JsonValue.Create(t)!).ToArray());
        root["bos_token"] = null;
        root["chat_template"] = chatTemplate;
        root["clean_up_tokenization_spaces"] = false;
        root["eos_token"] = ImEnd;
        root["errors"] = "replace";
        root["model_max_length"] = modelMaxLength;
        root["pad_token"] = EndOfText;
        root["split_special_tokens"] = false;
        root["tokenizer_class"] = "PreTrainedTokenizerFast";
        root["unk_token"] = null;
        return root.ToJsonString(Indented) + "\n";
    }

    /// <summary>
    /// Encodes text with the learned merges (special tokens are not parsed; this is the reference the tests use
    /// to check the file against HF's tokenizers).
    /// </summary>
    public IReadOnlyList<int> EncodeOrdinary(string text)
    {
        var rank = new Dictionary<(string, string), int>();
        for (int i = 0; i < Merges.Count; i++) rank[Merges[i]] = i;
        var ids = new List<int>();
        foreach (Match m in PreTokenize.Matches(text))
        {
            var symbols = Encoding.UTF8.GetBytes(m.Value).Select(b => ByteToChar[b].ToString()).ToList();
            while (symbols.Count > 1)
            {
                int bestIdx = -1, bestRank = int.MaxValue;
                for (int i = 0; i + 1 < symbols.Count; i++)
                    if (rank.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < bestRank)
                    {
                        bestRank = r;
                        bestIdx = i;
                    }
                if (bestIdx < 0) break;
                symbols[bestIdx] += symbols[bestIdx + 1];
                symbols.RemoveAt(bestIdx + 1);
            }
            ids.AddRange(symbols.Select(s => Vocab[s]));
        }
        return ids;
    }
}
