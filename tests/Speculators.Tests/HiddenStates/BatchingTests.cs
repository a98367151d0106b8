using Speculators.HiddenStates;

namespace Speculators.Tests.HiddenStates;

public class BatchingTests
{
    [Fact]
    public void RankSplitCoversEveryRowOnceWithTheFirstRanksTakingTheRemainder()
    {
        foreach (int total in new[] { 0, 1, 2, 7, 10, 11, 100, 101 })
            foreach (int w in new[] { 1, 2, 3, 4, 8, 13 })
            {
                var seen = new int[total];
                int expectedStart = 0;
                for (int r = 0; r < w; r++)
                {
                    var range = RowRange.ForRank(total, w, r);
                    Assert.Equal(expectedStart, range.Start);
                    // speculators: chunk = total // W, the first total % W ranks get one more.
                    Assert.Equal(total / w + (r < total % w ? 1 : 0), range.Count);
                    for (int i = range.Start; i < range.End; i++) seen[i]++;
                    expectedStart = range.End;
                }
                Assert.All(seen, c => Assert.Equal(1, c));
            }
        Assert.Equal(new RowRange(4, 3), RowRange.ForRank(10, 3, 1));
        Assert.Equal(new RowRange(7, 3), RowRange.ForRank(10, 3, 2));
        Assert.Contains("--rank", Assert.Throws<SpeculatorsException>(() => RowRange.ForRank(10, 2, 2)).Message);
        Assert.Contains("--world-size", Assert.Throws<SpeculatorsException>(() => RowRange.ForRank(10, 0, 0)).Message);
    }

    [Fact]
    public void BatchesRespectTheBudgetIncludingPaddingAndTakeLongestFirst()
    {
        int[] lengths = [7, 23, 3, 40, 23, 1, 16, 9, 31, 12, 5, 0, 100];
        foreach (long budget in new long[] { 1, 30, 64, 100, 128, 1000 })
        {
            var plan = TokenBudgetBatcher.Plan(lengths, budget);
            var all = plan.SelectMany(b => b).ToList();
            Assert.Equal(Enumerable.Range(0, lengths.Length).Where(i => lengths[i] > 0).Order(), all.Order());
            foreach (var b in plan)
            {
                long padded = TokenBudgetBatcher.PaddedTokens(lengths, b);
                Assert.True(b.Length == 1 || padded <= budget, $"budget {budget}: batch [{string.Join(",", b.Select(i => lengths[i]))}] pads to {padded}");
            }
            var order = all.Select(i => lengths[i]).ToList();
            Assert.Equal(order.OrderByDescending(x => x), order);
        }
        // 100 alone (over budget), then greedy: 40+31 pad to 80 ≤ 100, a third would make 120.
        var p = TokenBudgetBatcher.Plan(lengths, 100);
        Assert.Equal(new[] { 12 }, p[0]);
        Assert.Equal(new[] { 3, 8 }, p[1]);
        Assert.Equal(new[] { 1, 4, 6, 9 }, p[2]); // 23,23,16,12 → 4 × 23 = 92
        Assert.Throws<SpeculatorsException>(() => TokenBudgetBatcher.Plan(lengths, 0));
    }
}
