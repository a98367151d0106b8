using Speculators.Text;

namespace Speculators.Tests.Text;

/// <summary>The two merge loops (quadratic scan for short words, HF's heap for long ones) agree, and both reproduce HF.</summary>
public class BpeMergeTests
{
    [Fact]
    public void QuadraticAndHeapMergesAgreeOnRandomWords()
    {
        var qwen = TokenizerFixtures.Get("qwen3");
        var model = qwen.Model;
        var rng = new Random(11);
        // Byte-level symbols of common letters and bytes, so that many merges apply.
        int[] alphabet = "etaoinshrdlucmfwypvbgkqjxzETAOIN0123456789.,'-\u0120\u010A".Select(c => qwen.TokenToId(c.ToString())!.Value).ToArray();
        for (int trial = 0; trial < 400; trial++)
        {
            int n = rng.Next(2, trial < 300 ? 40 : 400);
            var word = new int[n];
            for (int i = 0; i < n; i++) word[i] = alphabet[rng.Next(alphabet.Length)];
            Assert.Equal(model.MergeForTest(word, useHeap: false), model.MergeForTest(word, useHeap: true));
        }
    }

    [Fact]
    public void LongWordsUseTheHeapAndStillMatchHuggingFace()
    {
        // Words longer than the quadratic threshold (no spaces) go through the heap path.
        string word = string.Concat(Enumerable.Range(0, 300).Select(i => (char)('a' + i * 7 % 26)));
        foreach (var name in TokenizerFixtures.Names)
            Assert.Equal(TokenizerFixtures.OracleIds(name, word), TokenizerFixtures.Get(name).EncodeToIds(word));
    }
}
