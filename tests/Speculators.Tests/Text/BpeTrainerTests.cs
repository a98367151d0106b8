using System.Text.Json;
using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>A small byte-level tokenizer trained once on the test corpus, shared by tests that need one.</summary>
public static class TrainedTokenizerFixture
{
    public static readonly string[] Specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];

    /// <summary>Training corpus: the rendered chats and most of the hand-made corpus; held-out texts are the rest.</summary>
    public static IReadOnlyList<string> TrainTexts { get; } =
        TokenizerCorpus.RenderedChats.Where((_, i) => i % 5 != 0).Concat(TokenizerCorpus.Handmade.Where((_, i) => i % 3 != 0)).ToList();

    public static IReadOnlyList<string> HeldOut { get; } =
        TokenizerCorpus.RenderedChats.Where((_, i) => i % 5 == 0).Concat(TokenizerCorpus.Handmade.Where((_, i) => i % 3 == 0)).ToList();

    static readonly Lazy<string> LazyJson = new(() => ByteLevelBpeTrainer.TrainToJson(TrainTexts, 700, Specials));

    public static string Json => LazyJson.Value;
}

public class BpeTrainerTests
{
    [Fact]
    public void TrainedTokenizerMatchesHuggingFaceAndRoundTrips()
    {
        using var dir = new TempDir();
        string path = dir.File("tokenizer.json");
        var ours = ByteLevelBpeTrainer.Train(TrainedTokenizerFixture.TrainTexts, 700, TrainedTokenizerFixture.Specials, path);
        Assert.Equal(TrainedTokenizerFixture.Json, File.ReadAllText(path)); // deterministic
        Assert.False(File.Exists(path + ".tmp"));
        Assert.Equal(700, ours.VocabSize);

        var oracle = new Tokenizers.DotNet.Tokenizer(vocabPath: path);
        int tokens = 0;
        foreach (var text in TrainedTokenizerFixture.HeldOut)
        {
            int[] expected = oracle.Encode(text).Select(x => (int)x).ToArray();
            var enc = ours.Encode(text);
            Assert.True(expected.SequenceEqual(enc.Ids), $"ids differ on {JsonSerializer.Serialize(text)}");
            tokens += expected.Length;
            // Byte-level with NFC: decoding gives the NFC text back, special tokens included.
            Assert.Equal(Speculators.Text.Unicode.UnicodeNormalizer.Normalize(text, Speculators.Text.Unicode.UnicodeForm.NFC), ours.Decode(enc.Ids));
        }
        Assert.True(tokens > 5000);

        // Special tokens are single ids after the vocabulary, never learned from the text.
        Assert.Equal([697, 698, 699], TrainedTokenizerFixture.Specials.Select(s => ours.TokenToId(s)!.Value));
        var chat = ours.EncodeToIds("<|im_start|>user\nhi<|im_end|><|endoftext|>");
        Assert.Equal(698, chat[0]);
        Assert.Equal([699, 697], chat[^2..]);
        Assert.Equal(new HashSet<int> { 697, 698, 699 }, ours.SpecialTokenIds.ToHashSet());
        Assert.Empty(ours.PostProcessorSpecialIds.Prefix);

        // The merges compress: far fewer tokens than bytes on held-out chat text.
        string sample = TrainedTokenizerFixture.HeldOut[0];
        Assert.True(ours.EncodeToIds(sample).Length < System.Text.Encoding.UTF8.GetByteCount(sample) / 2.0);
    }

    [Fact]
    public void BosOptionAddsATemplateAndLearnsTheMostFrequentPairFirst()
    {
        // Pieces "abc", " abc", " abd", " xy" × 50 each. Pair counts: "a b" 150, "b c" 100, "Ġ a" 100, others 50.
        var corpus = Enumerable.Repeat("abc abc abd xy", 50).ToList();
        string json = ByteLevelBpeTrainer.TrainToJson(corpus, 256 + 4 + 2, ["<s>", "</s>"], new ByteLevelBpeTrainerOptions { BosToken = "<s>" });
        using var doc = JsonDocument.Parse(json);
        var merges = doc.RootElement.GetProperty("model").GetProperty("merges").EnumerateArray()
            .Select(m => m[0].GetString() + " " + m[1].GetString()).ToArray();
        // Then "ab c" and "Ġ ab" tie at 100: the smaller left id wins ('Ġ' = 220 < "ab" = 256).
        // Then five pairs tie at 50: "x y" (87, 88) has the smallest left id, then "Ġ xy" (220, 258).
        Assert.Equal(["a b", "Ġ ab", "x y", "Ġ xy"], merges);
        var tok = HfTokenizer.FromJson(json);
        Assert.Equal(262, tok.VocabSize);
        Assert.Equal(tok.TokenToId("<s>"), tok.EncodeToIds("abc")[0]);
        Assert.Equal(tok.EncodeToIds("abc")[1..], tok.EncodeToIds("abc", addSpecialTokens: false));

        using var dir = new TempDir();
        File.WriteAllText(dir.File("t.json"), json);
        var oracle = new Tokenizers.DotNet.Tokenizer(vocabPath: dir.File("t.json"));
        foreach (var s in new[] { "abc", "abd abc", " xy abcd" })
            Assert.Equal(oracle.Encode(s).Select(x => (int)x), tok.EncodeToIds(s));
    }

    [Fact]
    public void RejectsImpossibleSettings()
    {
        var e = Assert.Throws<SpeculatorsException>(() => ByteLevelBpeTrainer.TrainToJson(["x"], 200, ["<s>"]));
        Assert.Contains("too small", e.Message);
        e = Assert.Throws<SpeculatorsException>(() => ByteLevelBpeTrainer.TrainToJson(["x"], 300, ["<s>"], new ByteLevelBpeTrainerOptions { BosToken = "<bos>" }));
        Assert.Contains("<bos>", e.Message);
        e = Assert.Throws<SpeculatorsException>(() => ByteLevelBpeTrainer.TrainToJson(["x"], 300, ["<s>", "<s>"]));
        Assert.Contains("distinct", e.Message);
    }
}
