using System.Text;
using System.Text.Json;
using Speculators.Text;
using Speculators.Text.Unicode;

namespace Speculators.Tests.Text;

public class TokenizerDecodeTests
{
    public static TheoryData<string> Names => new(TokenizerFixtures.Names);

    static bool HasLoneSurrogate(string s) =>
        Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(s)) != s;

    [Theory]
    [MemberData(nameof(Names))]
    public void DecodeRoundTripsEncode(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        foreach (var text in TokenizerCorpus.All)
        {
            if (HasLoneSurrogate(text)) continue;
            // Llama-2 (legacy SentencePiece) puts a "▁" after every special token, which decodes to a space.
            if (name == "llama2" && (text.Contains("<s>") || text.Contains("</s>") || text.Contains("<unk>"))) continue;
            // ...and a literal "▁" in the input decodes to a space.
            if (name == "llama2" && text.Contains('\u2581')) continue;
            string expected = name == "qwen3" ? UnicodeNormalizer.Normalize(text, UnicodeForm.NFC) : text;
            string decoded = tok.Decode(tok.EncodeToIds(text, addSpecialTokens: false));
            Assert.True(expected == decoded, $"{name}: {JsonSerializer.Serialize(text)} decodes to {JsonSerializer.Serialize(decoded)}");
        }
    }

    [Theory]
    [MemberData(nameof(Names))]
    public void StreamingDecodeEmitsCompleteTextOnly(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        foreach (var text in TokenizerCorpus.All.Where(t => !HasLoneSurrogate(t) && !t.Contains('\uFFFD')).Take(220))
        {
            int[] ids = tok.EncodeToIds(text);
            foreach (bool skip in new[] { false, true })
            {
                var stream = tok.CreateStreamDecoder(skipSpecialTokens: skip);
                var sb = new StringBuilder();
                foreach (int id in ids)
                {
                    string? chunk = stream.Step(id);
                    if (chunk == null) continue;
                    Assert.False(chunk.Contains('\uFFFD'), $"{name}: chunk with a broken character in {JsonSerializer.Serialize(text)}");
                    sb.Append(chunk);
                }
                Assert.Equal("", stream.Flush());
                Assert.Equal(tok.Decode(ids, skip), sb.ToString());
            }
        }
    }

    [Fact]
    public void StreamingWaitsForTheRestOfASplitCharacter()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        // A rare CJK Extension B character is several byte-level tokens in Qwen's vocabulary.
        int[] ids = qwen.EncodeToIds("a\U0002A6A5");
        Assert.True(ids.Length >= 3, $"expected the character to be split into byte tokens, got {ids.Length} ids");
        var stream = qwen.CreateStreamDecoder();
        Assert.Equal("a", stream.Step(ids[0]));
        for (int i = 1; i < ids.Length - 1; i++) Assert.Null(stream.Step(ids[i]));
        Assert.Equal("\U0002A6A5", stream.Step(ids[^1]));

        // An unfinished character at the end of a stream is reported by Flush, not by Step.
        var cut = qwen.CreateStreamDecoder();
        Assert.Equal("a", cut.Step(ids[0]));
        Assert.Null(cut.Step(ids[1]));
        Assert.Equal("\uFFFD", cut.Flush());

        // Llama-2: byte-fallback pieces and the leading-space strip of the first token.
        var llama2 = TokenizerFixtures.Get("llama2");
        int[] l = llama2.EncodeToIds("Hi \U0001F916 there", addSpecialTokens: false);
        var ls = llama2.CreateStreamDecoder();
        var parts = l.Select(ls.Step).Where(c => c != null).ToList();
        Assert.Equal("Hi", parts[0]);
        Assert.Equal("Hi \U0001F916 there", string.Concat(parts));
    }

    [Fact]
    public void DecodeKeepsOrSkipsSpecialTokensAndIgnoresUnknownIds()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        string chat = "<|im_start|>user\nHi 😀<|im_end|>";
        int[] ids = qwen.EncodeToIds(chat);
        Assert.Equal(chat, qwen.Decode(ids));
        Assert.Equal("user\nHi 😀", qwen.Decode(ids, skipSpecialTokens: true));
        // <think> is an added token but not special: kept.
        Assert.Equal("<think>x", qwen.Decode(qwen.EncodeToIds("<think>x"), skipSpecialTokens: true));
        // Ids outside the vocabulary (e.g. padding rows of a larger lm_head) are skipped, as HF does.
        Assert.Equal("Hi", qwen.Decode([.. qwen.EncodeToIds("Hi"), 151_900, -1]));
    }
}
