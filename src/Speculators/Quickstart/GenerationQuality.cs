namespace Speculators.Quickstart;

/// <summary>
/// Checks that a generating model is not degenerate, so a looping target cannot inflate the
/// acceptance length of its draft (a loop is trivially predictable).
/// </summary>
public static class GenerationQuality
{
    /// <summary>
    /// Fraction of responses in which some token n-gram occurs at least
    /// <paramref name="minRepeats"/> times (a loop), or which hit the length limit without
    /// finishing (<paramref name="finished"/> false).
    /// </summary>
    public static double RepetitionRate(IReadOnlyList<IReadOnlyList<int>> responses, IReadOnlyList<bool> finished, int n = 4, int minRepeats = 3)
    {
        if (responses.Count != finished.Count) throw new ArgumentException("responses and finished flags differ in count");
        if (responses.Count == 0) return 0;
        int bad = 0;
        for (int i = 0; i < responses.Count; i++)
            if (!finished[i] || HasRepeatedNGram(responses[i], n, minRepeats)) bad++;
        return (double)bad / responses.Count;
    }

    /// <summary>True when some n-gram of <paramref name="tokens"/> occurs at least <paramref name="minRepeats"/> times.</summary>
    public static bool HasRepeatedNGram(IReadOnlyList<int> tokens, int n, int minRepeats)
    {
        if (n <= 0 || minRepeats < 2) throw new ArgumentOutOfRangeException(nameof(n));
        var counts = new Dictionary<(int, int, int, int, int, int, int, int), int>();
        if (n > 8) throw new ArgumentOutOfRangeException(nameof(n), "n-grams up to 8 tokens");
        for (int i = 0; i + n <= tokens.Count; i++)
        {
            int At(int k) => k < n ? tokens[i + k] : -1;
            var key = (At(0), At(1), At(2), At(3), At(4), At(5), At(6), At(7));
            int c = counts.TryGetValue(key, out var v) ? v + 1 : 1;
            if (c >= minRepeats) return true;
            counts[key] = c;
        }
        return false;
    }
}
