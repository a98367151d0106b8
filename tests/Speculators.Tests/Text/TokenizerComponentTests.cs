using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>
/// Components the three real tokenizers do not use, checked against HF (Tokenizers.DotNet) on
/// variants of real files: a small trained byte-level tokenizer and the Llama-2 SentencePiece BPE
/// with their normalizer / pre-tokenizer / added tokens / post-processor / model flags edited.
/// </summary>
public class TokenizerComponentTests
{
    static readonly Lazy<string> Llama2Json = new(() => File.ReadAllText(TestPaths.Data("tokenizers", "llama2", "tokenizer.json")));

    static IEnumerable<string> Texts =>
        TokenizerCorpus.Handmade.Where(t => t.Length < 2000).Take(60)
            .Concat(["Hello HELLO hello", "ÉCOLE école Ecole", "a1b22c333 4444", "x, y; z! (w) [v] {u}", "  two  spaces  ", "<special>", "word<special>word",
                     "a <special> b", "<SPECIAL> <special>", "tab\t<special>\tend", "\u00C5ngstr\u00F6m \uFB01ne \u2460"]);

    static void AssertParity(string json, string label, bool checkDecode = true)
    {
        using var dir = new TempDir();
        string path = dir.File("tokenizer.json");
        File.WriteAllText(path, json);
        var ours = HfTokenizer.FromFiles(path, null);
        var oracle = new Tokenizers.DotNet.Tokenizer(vocabPath: path);
        foreach (var text in Texts)
        {
            int[] expected = oracle.Encode(text).Select(x => (int)x).ToArray();
            var enc = ours.Encode(text);
            Assert.True(expected.SequenceEqual(enc.Ids),
                $"{label}: ids differ on {JsonSerializer.Serialize(text)}\n ours:   {string.Join(",", enc.Ids)}\n oracle: {string.Join(",", expected)}");
            Assert.All(enc.Offsets, o => Assert.True(0 <= o.Start && o.Start <= o.End && o.End <= text.Length, $"{label}: offset {o} outside the text"));
            if (checkDecode)
                Assert.Equal(oracle.Decode(expected.Select(x => (uint)x).ToArray()), ours.Decode(expected, skipSpecialTokens: true));
        }
    }

    static JsonNode Node(string json) => JsonNode.Parse(json)!;

    static string WithAddedTokens(JsonNode root, params (string Content, bool Special, bool Normalized, bool Lstrip, bool Rstrip, bool SingleWord)[] tokens)
    {
        var vocab = root["model"]!["vocab"]!.AsObject();
        var added = root["added_tokens"]!.AsArray();
        int next = Math.Max(vocab.Count, added.Select(a => (int)a!["id"]!).DefaultIfEmpty(-1).Max() + 1);
        foreach (var t in tokens)
            added.Add(new JsonObject
            {
                ["id"] = next++, ["content"] = t.Content, ["single_word"] = t.SingleWord, ["lstrip"] = t.Lstrip, ["rstrip"] = t.Rstrip,
                ["normalized"] = t.Normalized, ["special"] = t.Special,
            });
        return root.ToJsonString();
    }

    [Fact]
    public void ByteLevelVariants()
    {
        // GPT-2 style: no normalizer, ByteLevel with prefix space and its own regex, trimmed offsets.
        var gpt2 = Node(TrainedTokenizerFixture.Json);
        gpt2["normalizer"] = null;
        gpt2["pre_tokenizer"] = Node("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""");
        gpt2["post_processor"] = Node("""{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}""");
        AssertParity(gpt2.ToJsonString(), "gpt2-style");

        // Normalizer chain, digits and punctuation splits, ignore_merges, BOS + EOS template.
        var chain = Node(TrainedTokenizerFixture.Json);
        chain["normalizer"] = Node("""{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"Lowercase"},{"type":"Replace","pattern":{"Regex":"\\s+"},"content":" "},{"type":"Strip","strip_left":true,"strip_right":true}]}""");
        chain["pre_tokenizer"] = Node("""{"type":"Sequence","pretokenizers":[{"type":"Digits","individual_digits":false},{"type":"Punctuation","behavior":"Isolated"},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":true}]}""");
        chain["model"]!["ignore_merges"] = true;
        chain["post_processor"] = Node("""
            {"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|im_start|>","type_id":0}},{"Sequence":{"id":"A","type_id":0}},{"SpecialToken":{"id":"<|im_end|>","type_id":0}}],
             "pair":[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],
             "special_tokens":{"<|im_start|>":{"id":"<|im_start|>","ids":[698],"tokens":["<|im_start|>"]},"<|im_end|>":{"id":"<|im_end|>","ids":[699],"tokens":["<|im_end|>"]}}}
            """);
        AssertParity(chain.ToJsonString(), "nfkc-lowercase-digits-punct");

        // NFD + StripAccents, whitespace split, then split on a literal string with each behavior.
        foreach (var behavior in new[] { "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous" })
        foreach (var invert in new[] { false, true })
        {
            var split = Node(TrainedTokenizerFixture.Json);
            split["normalizer"] = Node("""{"type":"Sequence","normalizers":[{"type":"NFD"},{"type":"StripAccents"}]}""");
            split["pre_tokenizer"] = Node($$"""{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"String":"o"},"behavior":"{{behavior}}","invert":{{(invert ? "true" : "false")}}},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":false,"use_regex":false}]}""");
            AssertParity(split.ToJsonString(), $"split-{behavior}-{invert}", checkDecode: false);
        }

        var ws = Node(TrainedTokenizerFixture.Json);
        ws["pre_tokenizer"] = Node("""{"type":"Sequence","pretokenizers":[{"type":"WhitespaceSplit"},{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":false,"use_regex":false}]}""");
        AssertParity(ws.ToJsonString(), "whitespace-split", checkDecode: false);
    }

    [Fact]
    public void AddedTokenFlags()
    {
        // lstrip / rstrip / single_word on raw-matched tokens, and a normalized (lowercased) one.
        var root = Node(TrainedTokenizerFixture.Json);
        root["normalizer"] = Node("""{"type":"Lowercase"}""");
        string json = WithAddedTokens(root,
            ("<special>", true, false, true, true, false),
            ("word", false, false, false, false, true),
            ("École", false, true, false, false, false),
            ("<SPECIAL>", true, true, false, false, false));
        AssertParity(json, "added-token-flags");

        var tok = HfTokenizer.FromJson(json);
        // lstrip + rstrip: the spaces around "<special>" belong to it.
        var enc = tok.Encode("a <special> b", addSpecialTokens: false);
        int sid = tok.TokenToId("<special>")!.Value;
        int at = Array.IndexOf(enc.Ids, sid);
        Assert.Equal((1, 12), enc.Offsets[at]);
    }

    [Fact]
    public void SentencePieceVariants()
    {
        // Mistral v0.3 / Llama-2 legacy=false style: no normalizer, Metaspace pre-tokenizer and decoder.
        foreach (var (scheme, split) in new[] { ("first", false), ("always", true), ("never", true) })
        {
            var root = Node(Llama2Json.Value);
            root["normalizer"] = null;
            root["pre_tokenizer"] = Node($$"""{"type":"Metaspace","replacement":"▁","prepend_scheme":"{{scheme}}","split":{{(split ? "true" : "false")}}}""");
            root["decoder"] = Node($$"""{"type":"Metaspace","replacement":"▁","prepend_scheme":"{{scheme}}","split":{{(split ? "true" : "false")}}}""");
            AssertParity(root.ToJsonString(), $"metaspace-{scheme}-{split}");
        }

        // No byte fallback: unknown characters become <unk>, fused or not.
        foreach (var fuse in new[] { true, false })
        {
            var root = Node(Llama2Json.Value);
            root["model"]!["byte_fallback"] = false;
            root["model"]!["fuse_unk"] = fuse;
            AssertParity(root.ToJsonString(), $"unk-fuse-{fuse}", checkDecode: false);
        }

        // Gemma style: only a Replace normalizer, an EOS-adding template, a Bert-style cls/sep processor.
        var gemma = Node(Llama2Json.Value);
        gemma["normalizer"] = Node("""{"type":"Replace","pattern":{"String":" "},"content":"▁"}""");
        gemma["post_processor"] = Node("""{"type":"BertProcessing","sep":["</s>",2],"cls":["<s>",1]}""");
        AssertParity(gemma.ToJsonString(), "gemma-style");
    }

    [Fact]
    public void UnsupportedComponentsAreNamed()
    {
        var root = Node(TrainedTokenizerFixture.Json);
        root["normalizer"] = Node("""{"type":"Precompiled","precompiled_charsmap":"AAAA"}""");
        var e = Assert.Throws<SpeculatorsException>(() => HfTokenizer.FromJson(root.ToJsonString(), source: "x/tokenizer.json"));
        Assert.Contains("x/tokenizer.json", e.Message);
        Assert.Contains("normalizer.type 'Precompiled'", e.Message);

        root = Node(TrainedTokenizerFixture.Json);
        root["model"]!["type"] = "Unigram";
        e = Assert.Throws<SpeculatorsException>(() => HfTokenizer.FromJson(root.ToJsonString()));
        Assert.Contains("Unigram", e.Message);

        root = Node(TrainedTokenizerFixture.Json);
        root["model"]!["merges"]!.AsArray().Add(new JsonArray("Ġ", "no-such-token"));
        e = Assert.Throws<SpeculatorsException>(() => HfTokenizer.FromJson(root.ToJsonString()));
        Assert.Contains("no-such-token", e.Message);

        e = Assert.Throws<SpeculatorsException>(() => HfTokenizer.FromJson("{not json"));
        Assert.Contains("invalid JSON", e.Message);

        using var dir = new TempDir();
        e = Assert.Throws<SpeculatorsException>(() => HfTokenizer.Load(dir.Path));
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Fact]
    public void LlamaClassConfigRebuildsTheTemplateFromAddBosAndAddEos()
    {
        using var dir = new TempDir();
        File.Copy(TestPaths.Data("tokenizers", "llama2", "tokenizer.json"), dir.File("tokenizer.json"));
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"tokenizer_class": "LlamaTokenizer", "add_bos_token": true, "add_eos_token": true,
             "bos_token": {"content": "<s>", "lstrip": false, "normalized": false}, "eos_token": "</s>", "unk_token": "<unk>"}
            """);
        var tok = HfTokenizer.Load(dir.Path);
        var ids = tok.EncodeToIds("Hello");
        Assert.Equal(1, ids[0]);
        Assert.Equal(2, ids[^1]);
        Assert.Equal(ids[1..^1], tok.EncodeToIds("Hello", addSpecialTokens: false));
        Assert.Equal(1, tok.BosTokenId);
    }

    [Fact]
    public void ConfigTokensMissingFromTokenizerJsonAreAddedLikeTransformers()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("tokenizer.json"), TrainedTokenizerFixture.Json); // 697 model tokens + 3 added (697..699)
        File.WriteAllText(dir.File("tokenizer_config.json"), """
            {"added_tokens_decoder": {"697": {"content": "<|endoftext|>", "special": true},
                                      "700": {"content": "<tool>", "special": false, "normalized": false}},
             "eos_token": {"content": "<|im_end|>"}, "pad_token": "<pad>", "bos_token": "ab",
             "additional_special_tokens": ["<extra>"]}
            """);
        var tok = HfTokenizer.Load(dir.Path);
        Assert.Equal(700, tok.TokenToId("<tool>"));     // from added_tokens_decoder, next id after 699
        Assert.Equal(701, tok.TokenToId("<pad>"));      // special tokens found nowhere get new ids
        Assert.Equal(702, tok.TokenToId("<extra>"));
        int ab = tok.Model.Vocab["ab"];
        Assert.Equal(ab, tok.BosTokenId);                // in the model vocabulary: keeps its id...
        Assert.Equal(703, tok.VocabSize);
        Assert.Contains(ab, tok.SpecialTokenIds);
        Assert.DoesNotContain(700, tok.SpecialTokenIds);
        // ...but is now matched as a special token before pre-tokenization.
        Assert.Equal([tok.TokenToId("x")!.Value, ab, 701, 700], tok.EncodeToIds("xab<pad><tool>"));
        Assert.Equal("x<tool>", tok.Decode(tok.EncodeToIds("xab<pad><tool>"), skipSpecialTokens: true));
    }
}
