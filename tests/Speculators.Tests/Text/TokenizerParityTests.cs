using System.Text;
using System.Text.Json;
using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>The three real tokenizers and their HF (Rust) oracles, loaded once per test run (150k-vocab files are slow to load).</summary>
public static class TokenizerFixtures
{
    public static readonly string[] Names = ["qwen3", "llama3_1", "llama2"];

    static readonly Dictionary<string, Lazy<HfTokenizer>> Ours = Names.ToDictionary(n => n,
        n => new Lazy<HfTokenizer>(() => HfTokenizer.Load(TestPaths.Data("tokenizers", n))));

    static readonly Dictionary<string, Lazy<Tokenizers.DotNet.Tokenizer>> Oracles = Names.ToDictionary(n => n,
        n => new Lazy<Tokenizers.DotNet.Tokenizer>(() => new Tokenizers.DotNet.Tokenizer(vocabPath: TestPaths.Data("tokenizers", n, "tokenizer.json"))));

    public static HfTokenizer Get(string name) => Ours[name].Value;
    public static Tokenizers.DotNet.Tokenizer Oracle(string name) => Oracles[name].Value;

    /// <summary>HF ids from the oracle (it always runs the post-processor, i.e. add_special_tokens=True).</summary>
    public static int[] OracleIds(string name, string text)
    {
        lock (Oracles[name]) return Oracle(name).Encode(text).Select(x => (int)x).ToArray();
    }

    public static string OracleDecode(string name, int[] ids)
    {
        lock (Oracles[name]) return Oracle(name).Decode(ids.Select(x => (uint)x).ToArray());
    }
}

/// <summary>A varied test corpus built in code (deterministic), plus real rendered chats from the shared goldens.</summary>
public static class TokenizerCorpus
{
    public static IReadOnlyList<string> Handmade { get; } = BuildHandmade();

    static List<string> BuildHandmade()
    {
        var list = new List<string>
        {
            "", " ", "  ", "a", "\n", "\t", "Hello world!", " Hello world", "Hello  world   ",
            "The quick brown fox jumps over the lazy dog. It's 5 o'clock; isn't it? I'M sure she'S fine, they'RE here, we'VE won, I'LL go, he'D say.",
            "'s 't 're 've 'm 'll 'd 'S 'T 'ſ 'K", // contractions, upper case, long s (case folds to s)
            "don'ſt 'ſx I'ʟʟ it'Ss 'Re 'rE '\u212Ax", // the contraction group is case-insensitive for ASCII only
            "public static int Main(string[] args)\n{\n    var x = args.Length > 0 ? int.Parse(args[0]) : 42;\n\treturn x * 2; // comment\n}\n",
            "def f(x):\n    \"\"\"Docstring.\"\"\"\n    return [i**2 for i in range(x) if i % 3 == 0]\n\n\nprint(f(10))\r\n",
            "{\"key\": [1, 2.5, -3e10, null, true], \"nested\": {\"a\": \"b\\n\"}}",
            "# Title\n\n* item one\n* item **two**\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
            "日本語のテキストです。中文文本，包括标点符号！한국어 텍스트도 있습니다.",
            "Привет, мир! Ελληνικά κείμενα. مرحبا بالعالم. שלום עולם. नमस्ते दुनिया। สวัสดีชาวโลก",
            "Emoji: 😀😃😄 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 ❤️ ✨ 🤖abc 😀abc a😀 x🙂y",
            "Supplementary letters: 𠀀𠀁𠀂 a𠀀b 𝐀𝐁𝐂𝐚𝐛𝐜 digits 𝟎𝟏𝟐𝟑 𐐀𐐨 linear-b 𐀀 gothic 𐌰𐌱",
            "Cafe\u0301 au lait, re\u0301sume\u0301, A\u030Angstro\u0308m, n\u0303, \u1100\u1161\u11A8 (decomposed Hangul), \u212B, \u2126",
            "NFD vs NFC: \u00E9 e\u0301 \u00C5 A\u030A \u1E9B\u0323 q\u0307\u0323 \u0958 \u0915\u093C",
            "ﬁ ﬂ ① ｶﾞ ½ x² ㎡ — compatibility characters stay (no NFKC here)",
            "   leading spaces", "trailing spaces   ", "multiple     inner      spaces", "tabs\t\tand\ttabs", "new\nlines\n\n\nand\r\nCRLF\r\n",
            "\u00A0nbsp\u00A0and\u3000ideographic\u3000space\u2009thin\u200Bzero-width\u200D",
            "0 1 12 123 1234 12345 123456 1234567 3.14159 -2.5e-3 1,000,000 ٣٤٥ ૧૨૩",
            "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>",
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi<|eot_id|>",
            "<s>[INST] Hello [/INST] Hi</s><s>[INST] again [/INST]",
            "partial <|im_start <|im_end| <|begin_of_text <s <unk> </s>x<s>",
            "special<|endoftext|>inside<|im_start|>words<|eot_id|>here",
            "<<|im_start|>> <|<|im_end|>|> <<s>>",
            "URL: https://example.com/path/to/resource?query=value&other=123#fragment",
            "Base64: SGVsbG8gV29ybGQhIFRoaXMgaXMgYSB0ZXN0IG9mIGJhc2U2NCBlbmNvZGluZy4=",
            "Mixed\u00ADsoft\u00ADhyphen and ZWNJ\u200Cjoin and RTL \u202Bembedding\u202C and BOM\uFEFF",
            "Control chars: \u0001\u0002\u001B[31mred\u001B[0m \u007F \u0085next-line",
            "\u2581 already metaspace \u2581\u2581 and Ġ byte-level-looking chars Ċ",
            "<0x41> <0xFF> looks like byte fallback",
            "Replacement char \uFFFD and private use \uE000\uF8FF and noncharacter \uFFFF",
        };
        list.Add(new string('a', 3000));
        list.Add(string.Concat(Enumerable.Repeat("abc😀", 400)));
        list.Add(new string(' ', 500) + "x" + new string('\n', 300));
        list.Add(string.Concat(Enumerable.Repeat("1234567890", 80)));
        list.Add(string.Concat(Enumerable.Repeat("supercalifragilistic", 60)));
        list.AddRange(RandomStrings(120, seed: 7));
        return list;
    }

    /// <summary>Random mixes of code points from scripts, marks, emoji, whitespace and token-like snippets.</summary>
    static IEnumerable<string> RandomStrings(int count, int seed)
    {
        var rng = new Random(seed);
        (int Lo, int Hi)[] ranges =
        [
            (0x20, 0x7E), (0x20, 0x7E), (0x20, 0x7E), (0xA0, 0x17F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
            (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x3040, 0x30FF),
            (0x4E00, 0x4FFF), (0xAC00, 0xAD00), (0xFF00, 0xFFEF), (0x1F300, 0x1F64F), (0x1F900, 0x1F9FF),
            (0x20000, 0x200FF), (0x1D400, 0x1D7FF), (0x2000, 0x206F),
        ];
        string[] snippets = ["<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|eot_id|>", "<s>", "</s>", " ", "\n", "\t", "  ", "'s", "'LL", "123", "\r\n"];
        for (int i = 0; i < count; i++)
        {
            var sb = new StringBuilder();
            int n = rng.Next(1, 60);
            for (int k = 0; k < n; k++)
            {
                if (rng.Next(8) == 0) { sb.Append(snippets[rng.Next(snippets.Length)]); continue; }
                var (lo, hi) = ranges[rng.Next(ranges.Length)];
                int cp = rng.Next(lo, hi + 1);
                if (cp is >= 0xD800 and <= 0xDFFF) continue;
                sb.Append(char.ConvertFromUtf32(cp));
            }
            yield return sb.ToString();
        }
    }

    /// <summary>Real chat renders (53 templates × scenarios) from the shared jinja goldens.</summary>
    public static IReadOnlyList<string> RenderedChats { get; } = LoadChats();

    static List<string> LoadChats()
    {
        var list = new List<string>();
        foreach (var line in File.ReadLines(TestPaths.Data("chat_templates", "goldens.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty("ok").GetBoolean()) list.Add(doc.RootElement.GetProperty("text").GetString()!);
        }
        return list;
    }

    public static IEnumerable<string> All => Handmade.Concat(RenderedChats);
}

public class TokenizerParityTests
{
    public static TheoryData<string> Names => new(TokenizerFixtures.Names);

    [Theory]
    [MemberData(nameof(Names))]
    public void IdsEqualHuggingFaceOnTheCorpus(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        int checkedTokens = 0;
        var failures = new List<string>();
        foreach (var text in TokenizerCorpus.All)
        {
            int[] expected = TokenizerFixtures.OracleIds(name, text);
            int[] ours = tok.EncodeToIds(text);
            checkedTokens += expected.Length;
            if (!ours.SequenceEqual(expected))
                failures.Add($"{JsonSerializer.Serialize(text)}\n  ours:   {string.Join(",", ours)}\n  oracle: {string.Join(",", expected)}");
        }
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures.Take(5)));
        Assert.True(checkedTokens > 20000, $"only {checkedTokens} tokens compared");
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void AddSpecialTokensFalseDropsOnlyThePostProcessorTokens(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        var (prefix, suffix) = tok.PostProcessorSpecialIds;
        int[] expectedPrefix = name switch { "qwen3" => [], "llama3_1" => [128000], _ => [1] };
        Assert.Equal(expectedPrefix, prefix);
        Assert.Empty(suffix);
        foreach (var text in TokenizerCorpus.Handmade.Take(60))
        {
            int[] oracle = TokenizerFixtures.OracleIds(name, text);
            Assert.Equal(oracle[prefix.Length..], tok.EncodeToIds(text, addSpecialTokens: false));
            var enc = tok.Encode(text, addSpecialTokens: true);
            Assert.Equal(oracle, enc.Ids);
            for (int i = 0; i < prefix.Length; i++) Assert.Equal((0, 0), enc.Offsets[i]);
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void DecodeSkippingSpecialTokensEqualsHuggingFace(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        foreach (var text in TokenizerCorpus.All.Take(250))
        {
            int[] ids = TokenizerFixtures.OracleIds(name, text);
            Assert.Equal(TokenizerFixtures.OracleDecode(name, ids), tok.Decode(ids, skipSpecialTokens: true));
        }
    }

    [Fact]
    public void LoneSurrogatesEncodeAsReplacementCharacter()
    {
        // HF cannot take invalid UTF-16 (the oracle throws); we encode a lone surrogate as U+FFFD, keeping offsets 1:1.
        foreach (var name in TokenizerFixtures.Names)
        {
            var tok = TokenizerFixtures.Get(name);
            string bad = "a\uD800b\uDC00 c\uD83D";
            string fixedText = "a\uFFFDb\uFFFD c\uFFFD";
            Assert.Equal(TokenizerFixtures.OracleIds(name, fixedText), tok.EncodeToIds(bad));
            var enc = tok.Encode(bad, addSpecialTokens: false);
            Assert.Equal(bad.Length, enc.Offsets.Max(o => o.End));
        }
    }

    [Fact]
    public void VocabularyAndSpecialTokensMatchTheFiles()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        Assert.Equal(151669, qwen.VocabSize);
        Assert.Null(qwen.BosTokenId);
        Assert.Equal(151645, qwen.EosTokenId);
        Assert.Equal(151643, qwen.PadTokenId);
        Assert.Equal(151644, qwen.TokenToId("<|im_start|>"));
        Assert.Equal("<|im_start|>", qwen.IdToToken(151644));
        Assert.Equal("Ġthe", qwen.IdToToken(qwen.TokenToId("Ġthe")!.Value));
        Assert.Contains(151644, qwen.SpecialTokenIds);
        Assert.DoesNotContain(qwen.TokenToId("<think>")!.Value, qwen.SpecialTokenIds); // special: false in the file
        Assert.Null(qwen.TokenToId("no-such-token-xyz"));
        Assert.Null(qwen.IdToToken(10_000_000));

        var llama3 = TokenizerFixtures.Get("llama3_1");
        Assert.Equal(128256, llama3.VocabSize);
        Assert.Equal(128000, llama3.BosTokenId);
        Assert.Equal(128009, llama3.EosTokenId);
        Assert.Equal("<|begin_of_text|>", llama3.BosToken);

        var llama2 = TokenizerFixtures.Get("llama2");
        Assert.Equal(32000, llama2.VocabSize); // <unk>, <s>, </s> are also in the model vocab
        Assert.Equal(1, llama2.BosTokenId);
        Assert.Equal(2, llama2.EosTokenId);
        Assert.Null(llama2.PadTokenId);
        Assert.Equal(new HashSet<int> { 0, 1, 2 }, llama2.SpecialTokenIds.ToHashSet());
    }

    [Fact]
    public void ConcurrentEncodingGivesTheSameResults()
    {
        // Data preparation encodes on all cores: per-thread scratch buffers and the shared word cache must not interfere.
        var tok = TokenizerFixtures.Get("qwen3");
        tok.ClearCache();
        var texts = TokenizerCorpus.All.ToArray();
        var parallel = new EncodedText[texts.Length * 4];
        Parallel.For(0, parallel.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => parallel[i] = tok.Encode(texts[i % texts.Length]));
        for (int i = 0; i < parallel.Length; i++)
        {
            var expected = tok.Encode(texts[i % texts.Length]);
            Assert.Equal(expected.Ids, parallel[i].Ids);
            Assert.Equal(expected.Offsets, parallel[i].Offsets);
        }
    }
}
