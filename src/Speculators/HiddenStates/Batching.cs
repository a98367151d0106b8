namespace Speculators.HiddenStates;

/// <summary>A contiguous range of prepared rows [Start, Start + Count).</summary>
public readonly record struct RowRange(int Start, int Count)
{
    public int End => Start + Count;

    /// <summary>
    /// The rows rank <paramref name="rank"/> of <paramref name="worldSize"/> handles out of the first
    /// <paramref name="total"/>, as speculators' data_generation_offline.py splits them (speculators.md §1.2):
    /// <c>chunk = total / W</c>; the first <c>total % W</c> ranks get one row more. Every row belongs to exactly one rank.
    /// </summary>
    public static RowRange ForRank(int total, int worldSize, int rank)
    {
        if (total < 0) throw new ArgumentOutOfRangeException(nameof(total));
        if (worldSize < 1) throw new SpeculatorsException($"--world-size must be at least 1, found {worldSize}.");
        if (rank < 0 || rank >= worldSize) throw new SpeculatorsException($"--rank must be in [0, {worldSize - 1}] for --world-size {worldSize}, found {rank}.");
        int chunk = total / worldSize, extra = total % worldSize;
        int start = rank * chunk + Math.Min(rank, extra);
        return new RowRange(start, chunk + (rank < extra ? 1 : 0));
    }

    public override string ToString() => Count == 0 ? "no rows" : $"rows {Start}..{End - 1}";
}

/// <summary>
/// Groups rows into verifier prefills under a token budget that counts padding: a batch of B rows padded to
/// the longest (L) costs B·L tokens, and B·L ≤ budget (a single row longer than the budget runs alone).
/// Rows are taken longest first, so each batch pads little and the first batch is the largest (an
/// out-of-memory shows at once, not hours in).
/// </summary>
public static class TokenBudgetBatcher
{
    /// <summary>
    /// Plans batches over <paramref name="lengths"/> (one entry per row, in tokens). Returns the positions into
    /// <paramref name="lengths"/> of each batch, longest rows first within and across batches; ties keep input order.
    /// Zero-length rows are not batched (there is nothing to run).
    /// </summary>
    public static List<int[]> Plan(IReadOnlyList<int> lengths, long budgetTokens)
    {
        if (budgetTokens < 1) throw new SpeculatorsException($"--batch-tokens must be positive, found {budgetTokens}.");
        var order = Enumerable.Range(0, lengths.Count).Where(i => lengths[i] > 0)
            .OrderByDescending(i => lengths[i]).ThenBy(i => i).ToArray();
        var batches = new List<int[]>();
        var current = new List<int>();
        long longest = 0;
        foreach (int i in order)
        {
            long len = lengths[i];
            long padTo = Math.Max(longest, len);
            if (current.Count > 0 && (current.Count + 1) * padTo > budgetTokens)
            {
                batches.Add(current.ToArray());
                current.Clear();
                padTo = len;
            }
            current.Add(i);
            longest = padTo;
        }
        if (current.Count > 0) batches.Add(current.ToArray());
        return batches;
    }

    /// <summary>Tokens a batch occupies with padding: count × longest.</summary>
    public static long PaddedTokens(IReadOnlyList<int> lengths, int[] batch) => batch.Length == 0 ? 0 : (long)batch.Length * batch.Max(i => lengths[i]);
}
