using System.Text;
using System.Text.Json;
using Speculators.Text;
using Speculators.Text.Unicode;

namespace Speculators.Tests.Text;

public class TokenizerOffsetTests
{
    public static TheoryData<string> Names => new(TokenizerFixtures.Names);

    /// <summary>
    /// What a token stands for in the original text: byte-level tokens are UTF-8 bytes; Llama-2
    /// tokens are SentencePiece pieces (▁ = space, &lt;0xXX&gt; = a byte). Added tokens are their content.
    /// </summary>
    static byte[] Surface(HfTokenizer tok, string name, int id)
    {
        string t = tok.IdToToken(id)!;
        if (tok.AddedTokens.Any(a => a.Id == id)) return Encoding.UTF8.GetBytes(t);
        if (name == "llama2")
        {
            if (t.Length == 6 && t.StartsWith("<0x")) return [Convert.ToByte(t.Substring(3, 2), 16)];
            return Encoding.UTF8.GetBytes(t.Replace('\u2581', ' '));
        }
        return t.Select(c => (byte)ByteLevelAlphabet.CharToByte(c)).ToArray();
    }

    /// <summary>
    /// Property: tokens that share an offset range together spell exactly that slice of the
    /// original text (partial-character tokens map to the whole character), and the distinct
    /// ranges tile the text from 0 to its end without gaps. Holds for NFC-stable text; Llama-2's
    /// prepended "▁" (an inserted space with no source character) is the one allowed extra.
    /// </summary>
    [Theory]
    [MemberData(nameof(Names))]
    public void OffsetSlicesSpellTheTokensAndTileTheText(string name)
    {
        var tok = TokenizerFixtures.Get(name);
        foreach (var text in TokenizerCorpus.All)
        {
            if (name == "qwen3" && UnicodeNormalizer.Normalize(text, UnicodeForm.NFC) != text) continue; // NFC changes the text (checked separately)
            if (HasLoneSurrogate(text)) continue;
            if (name == "llama2" && text.Contains('\u2581')) continue; // a literal ▁ would spell as a space in Surface()
            var enc = tok.Encode(text, addSpecialTokens: false);
            string ctx = JsonSerializer.Serialize(text.Length > 80 ? text[..80] : text);
            int covered = 0;
            for (int i = 0; i < enc.Ids.Length;)
            {
                var (s, e) = enc.Offsets[i];
                int j = i;
                var bytes = new List<byte>();
                // A group: consecutive tokens whose ranges overlap (pieces of the same character(s)).
                while (j < enc.Ids.Length && (j == i || enc.Offsets[j].Start < e))
                {
                    e = Math.Max(e, enc.Offsets[j].End);
                    bytes.AddRange(Surface(tok, name, enc.Ids[j++]));
                }
                Assert.True(s <= e && e <= text.Length, $"{name} {ctx}: bad range ({s},{e})");
                Assert.True(s == covered, $"{name} {ctx}: token {i} starts at {s}, expected {covered} (gap or overlap)");
                string slice = text[s..e];
                string spelled = Encoding.UTF8.GetString(bytes.ToArray());
                if (name == "llama2" && spelled == " " + slice) spelled = slice; // the prepended ▁
                Assert.True(spelled == slice, $"{name} {ctx}: tokens {i}..{j - 1} spell {JsonSerializer.Serialize(spelled)} but their offsets ({s},{e}) hold {JsonSerializer.Serialize(slice)}");
                covered = e;
                i = j;
            }
            Assert.True(covered == text.Length, $"{name} {ctx}: tokens cover up to {covered} of {text.Length}");
        }
    }

    static bool HasLoneSurrogate(string s)
    {
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
            if (char.IsSurrogate(s[i])) return true;
        }
        return false;
    }

    [Fact]
    public void NfdInputMapsBackThroughNfc()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        // "Cafe" + combining acute: NFC makes "é"; the token holding it must cover both original units.
        string text = "Cafe\u0301 au lait";
        var enc = qwen.Encode(text, addSpecialTokens: false);
        Assert.Equal(qwen.EncodeToIds("Caf\u00E9 au lait", false), enc.Ids);
        var holder = enc.Offsets.Where(o => o.Start <= 4 && 4 < o.End).ToArray();
        Assert.NotEmpty(holder);
        Assert.All(holder, o => Assert.True(o.Start <= 3 && o.End >= 5, $"({o.Start},{o.End}) splits e + U+0301"));
        AssertTiles(enc, text.Length);

        // Decomposed Hangul jamo compose to one syllable, covering all three original units.
        string hangul = "x \u1100\u1161\u11A8 y";
        var h = qwen.Encode(hangul, addSpecialTokens: false);
        Assert.Equal(qwen.EncodeToIds("x \uAC01 y", false), h.Ids);
        Assert.All(h.Offsets.Where(o => o.Start <= 3 && 3 < o.End), o => Assert.True(o.Start <= 2 && o.End >= 5));
        AssertTiles(h, hangul.Length);

        // Singleton decomposition (Ångström sign → Å) and canonical reordering of marks.
        string mixed = "\u212B q\u0307\u0323 \u1E9B\u0323!";
        var m = qwen.Encode(mixed, addSpecialTokens: false);
        Assert.Equal(qwen.EncodeToIds("\u00C5 q\u0323\u0307 \u1E9B\u0323!", false), m.Ids);
        AssertTiles(m, mixed.Length);
        Assert.Equal(TokenizerFixtures.OracleIds("qwen3", mixed), m.Ids);
    }

    /// <summary>Distinct ranges are contiguous from 0 to the end (overlaps only between identical ranges or inside reordered marks).</summary>
    static void AssertTiles(EncodedText enc, int length)
    {
        var ranges = enc.Offsets.Distinct().OrderBy(o => o.Start).ToArray();
        Assert.Equal(0, ranges[0].Start);
        Assert.Equal(length, ranges.Max(r => r.End));
        for (int i = 1; i < ranges.Length; i++) Assert.True(ranges[i].Start <= ranges[i - 1].End, $"gap before ({ranges[i].Start},{ranges[i].End})");
    }

    [Fact]
    public void SpecialTokensInsideTextGetTheirOwnRange()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        string text = "<|im_start|>user\nHi<|im_end|>";
        var enc = qwen.Encode(text);
        Assert.Equal(151644, enc.Ids[0]);
        Assert.Equal((0, 12), enc.Offsets[0]);
        Assert.Equal(151645, enc.Ids[^1]);
        Assert.Equal((text.Length - 10, text.Length), enc.Offsets[^1]);

        var llama3 = TokenizerFixtures.Get("llama3_1");
        var l = llama3.Encode("<|begin_of_text|>Hi");
        Assert.Equal([128000, 128000, llama3.TokenToId("Hi")!.Value], l.Ids);
        Assert.Equal([(0, 0), (0, 17), (17, 19)], l.Offsets);
    }

    [Fact]
    public void Llama2PrependedMetaspaceHasNoSourceCharacter()
    {
        var llama2 = TokenizerFixtures.Get("llama2");
        var enc = llama2.Encode("Hello world", addSpecialTokens: true);
        Assert.Equal(TokenizerFixtures.OracleIds("llama2", "Hello world"), enc.Ids);
        Assert.Equal((0, 0), enc.Offsets[0]);           // <s> added by the post-processor
        Assert.Equal((0, 5), enc.Offsets[1]);           // "▁Hello": the ▁ was inserted, "Hello" is [0,5)
        Assert.Equal((5, 11), enc.Offsets[2]);          // "▁world" ← " world"

        // Byte fallback: every <0xXX> piece of an unknown character maps to the whole character.
        string text = "a\U0001F916b";
        var bf = llama2.Encode(text, addSpecialTokens: false);
        Assert.Equal(TokenizerFixtures.OracleIds("llama2", text)[1..], bf.Ids);
        var bytePieces = bf.Ids.Select((id, i) => (llama2.IdToToken(id)!, bf.Offsets[i])).Where(t => t.Item1.StartsWith("<0x")).ToArray();
        Assert.Equal(4, bytePieces.Length);
        Assert.All(bytePieces, t => Assert.Equal((1, 3), t.Item2));
    }
}
