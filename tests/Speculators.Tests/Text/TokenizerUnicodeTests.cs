using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Speculators.Text;
using Speculators.Text.Unicode;

namespace Speculators.Tests.Text;

/// <summary>
/// Our UAX #15 implementation against goldens produced by Python's unicodedata
/// (TokenizerData/gen_unicode_normalization.py): every scalar value alone, in all four forms
/// (hashed), and random sequences that exercise canonical reordering, composition blocking,
/// Hangul and exclusions.
/// </summary>
public class TokenizerUnicodeTests
{
    static readonly string GoldenPath = Path.Combine(TestPaths.RepoRoot, "tests", "Speculators.Tests", "Text", "TokenizerData", "unicode_normalization.txt");

    static string Decode(string field) =>
        field == "-" ? "" : string.Concat(field.Split('.').Select(h => char.ConvertFromUtf32(Convert.ToInt32(h, 16))));

    [Fact]
    public void RandomSequencesMatchPython()
    {
        int cases = 0;
        foreach (var line in File.ReadLines(GoldenPath).Where(l => l.StartsWith("case ")))
        {
            var f = line.Split(' ');
            string input = Decode(f[1]);
            var forms = new[] { UnicodeForm.NFC, UnicodeForm.NFD, UnicodeForm.NFKC, UnicodeForm.NFKD };
            for (int k = 0; k < 4; k++)
            {
                string expected = Decode(f[2 + k]);
                Assert.True(expected == UnicodeNormalizer.Normalize(input, forms[k]), $"{forms[k]}({f[1]}) expected {f[2 + k]}");
                // Quick check never claims "normalized" for text that changes.
                if (UnicodeNormalizer.IsNormalizedQuick(input, forms[k])) Assert.Equal(input, expected);
            }
            cases++;
        }
        Assert.Equal(600, cases);
    }

    [Fact]
    public void EverySingleCodePointMatchesPython()
    {
        var hashes = File.ReadLines(GoldenPath).Where(l => l.StartsWith("hash ")).Select(l => l.Split(' ')).ToDictionary(p => p[1], p => p[2]);
        foreach (var form in new[] { UnicodeForm.NFC, UnicodeForm.NFD, UnicodeForm.NFKC, UnicodeForm.NFKD })
        {
            using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var sb = new StringBuilder();
            for (int cp = 0; cp < 0x110000; cp++)
            {
                if (cp is >= 0xD800 and <= 0xDFFF) continue;
                if (sb.Length > 0 || cp > 0) sb.Append('\n');
                sb.Append(UnicodeNormalizer.Normalize(char.ConvertFromUtf32(cp), form));
                if (sb.Length > 1 << 16) { sha.AppendData(Encoding.UTF8.GetBytes(sb.ToString())); sb.Clear(); }
            }
            sha.AppendData(Encoding.UTF8.GetBytes(sb.ToString()));
            Assert.Equal(hashes[form.ToString()], Convert.ToHexStringLower(sha.GetHashAndReset()));
        }
    }

    [Fact]
    public void AlignmentFollowsCompositionAndDecomposition()
    {
        // NFC: "e" + U+0301 → "é" covering [0,2); NFD: "é" → "e" + U+0301, both covering [0,1).
        var src = AlignedString.Identity("e\u0301x");
        var nfc = new AlignedString();
        UnicodeNormalizer.Normalize(src, UnicodeForm.NFC, nfc);
        Assert.Equal("\u00E9x", nfc.ToString());
        Assert.Equal([0, 2], nfc.Starts.ToArray());
        Assert.Equal([2, 3], nfc.Ends.ToArray());

        var nfd = new AlignedString();
        UnicodeNormalizer.Normalize(AlignedString.Identity("\u00E9\U0001D15E"), UnicodeForm.NFD, nfd);
        Assert.Equal("e\u0301\U0001D157\U0001D165", nfd.ToString());
        Assert.Equal([0, 0, 1, 1, 1, 1], nfd.Starts.ToArray());
        Assert.Equal([1, 1, 3, 3, 3, 3], nfd.Ends.ToArray());
    }

    [Fact]
    public void RegexStandInsKeepTheGeneralCategory()
    {
        // Supplementary code points are matched through BMP stand-ins of the same category.
        foreach (int cp in new[] { 0x20000, 0x1D400, 0x1D41A, 0x1D7CE, 0x1F600, 0x10400, 0x1D165, 0xE0001, 0x10FFFD, 0x1F1EB, 0x1D7D8 })
            Assert.Equal(CharUnicodeInfo.GetUnicodeCategory(cp), CharUnicodeInfo.GetUnicodeCategory(CodePointRegex.StandIn(cp)));

        var re = new CodePointRegex(@"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+", "test");
        var m = new List<(int, int)>();
        re.Matches("😀abc𠀀d 𝟎𝟏𝟐𝟑", m);
        // "😀abc𠀀d" is one piece (emoji prefix + letters incl. a supplementary one); the lone space matches
        // no alternative; then three mathematical digits, then the fourth ({1,3} counts code points).
        Assert.Equal([(0, 8), (9, 15), (15, 17)], m);
    }
}

/// <summary>The hand-written GPT-2 / Llama-3 / Qwen2 split matchers against the regex they replace (dense vs optimized).</summary>
public class TokenizerPreTokenizerTests
{
    [Theory]
    [InlineData(FastSplitPatterns.Gpt2)]
    [InlineData(FastSplitPatterns.Llama3)]
    [InlineData(FastSplitPatterns.Qwen2)]
    public void FastMatchersEqualTheRegex(string pattern)
    {
        var re = new CodePointRegex(pattern, "test");
        Assert.True(re.IsFast);
        string[] atoms = ["a", "Z", "é", "ß", "日", "𠀀", "𝐀", "1", "٣", "𝟎", "½", " ", "  ", "\t", "\n", "\r", "\r\n", "\u00A0", "\u3000", "\u2028",
                          "'", "'s", "'S", "'re", "'LL", "'ve", "'d", "'m", "'t", "'x", "ſ", "!", "?", ".", "...", "-", "_", "😀", "👍🏽", "\u0301", "\u200B", "\u0085", "\uFFFD"];
        var rng = new Random(3);
        var fast = new List<(int, int)>();
        var slow = new List<(int, int)>();
        for (int trial = 0; trial < 3000; trial++)
        {
            var sb = new System.Text.StringBuilder();
            int n = rng.Next(0, 25);
            for (int k = 0; k < n; k++) sb.Append(atoms[rng.Next(atoms.Length)]);
            string s = sb.ToString();
            fast.Clear(); slow.Clear();
            re.Matches(s, fast);
            re.RegexMatches(s, slow);
            Assert.True(slow.SequenceEqual(fast), $"{pattern}\non {System.Text.Json.JsonSerializer.Serialize(s)}\n regex: {string.Join(" ", slow)}\n fast:  {string.Join(" ", fast)}");
        }
        foreach (var text in TokenizerCorpus.All)
        {
            fast.Clear(); slow.Clear();
            re.Matches(text, fast);
            re.RegexMatches(text, slow);
            Assert.True(slow.SequenceEqual(fast), $"{pattern} differs on a corpus text {System.Text.Json.JsonSerializer.Serialize(text)}");
        }
    }
}
