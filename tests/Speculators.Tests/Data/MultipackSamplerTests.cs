using System.Text.Json;
using Speculators.Data;

namespace Speculators.Tests.Data;

/// <summary>
/// Expected values come from NumPy 1.24.2 on the development machine (default_rng, PCG64, SeedSequence)
/// and from a Python transcription of the spec's sampler run with NumPy's permutation and argsort.
/// </summary>
public class MultipackSamplerTests
{
    // 60 distinct lengths (row 7 is longer than the 256-token budget and gets clipped).
    static readonly int[] Lengths =
    {
        89, 36, 43, 30, 285, 78, 108, 400, 180, 297, 210, 144, 184, 21, 106, 131, 79, 196, 215, 83, 88, 283, 72, 190, 10,
        237, 132, 156, 160, 238, 127, 69, 51, 294, 252, 249, 175, 284, 87, 82, 11, 120, 66, 137, 71, 63, 84, 42, 8, 201,
        208, 19, 148, 70, 123, 133, 195, 55, 28, 128,
    };

    [Theory]
    [InlineData(1, 0, "[[[27, 16], [20], [8, 42], [34], [51], [4], [52, 57], [10, 2], [44], [23, 24], [43], [11], [35], [30], [18], [54, 1, 3], [55], [17], [21], [36], [28, 0], [6, 19, 48], [26, 22], [37], [46, 32, 58], [25], [53], [9], [38, 47], [50, 13, 40], [12], [7], [39, 45], [59, 5], [49], [14], [29], [41], [56], [33], [15, 31]]]")]
    [InlineData(1, 1, "[[[58], [25], [44, 31, 24], [27, 16], [28, 3], [15, 6], [33], [23], [53], [35], [30, 14], [45], [9], [52, 20, 40], [0], [56], [7], [39, 22, 57], [17], [55, 19], [37], [4], [21], [29], [11, 47, 1], [43], [50, 48], [59], [26], [49], [34], [42, 2], [12], [10], [36, 5], [8, 32], [41, 46], [18], [54, 38, 13, 51]]]")]
    [InlineData(2, 0, "[[[27], [8, 42], [4], [44, 2], [23], [11], [18, 3], [55, 1], [21], [6, 0, 48], [37], [46, 53, 32, 58], [9], [12, 13, 40], [7], [59, 5], [29], [56], [15]], [[20, 16], [34], [52, 57, 51], [10], [43, 24], [35], [30, 54], [17], [36], [28, 19], [26, 22], [25], [38, 47], [50], [39, 45], [49], [41, 14], [33], [31]]]")]
    [InlineData(2, 1, "[[[25], [27, 16], [33], [53], [35], [52, 45, 40], [56], [39, 22, 57], [17], [37], [21], [43, 47], [50], [26], [34], [12], [8, 32], [41, 46], [54]], [[44, 31, 58, 24], [28, 3], [15, 6], [23], [30, 14], [9], [0, 20], [7], [55, 19], [4], [29], [11, 1], [59, 48], [49], [42, 2], [10], [36, 5], [18], [38, 13, 51]]]")]
    [InlineData(3, 0, "[[[8], [52, 57, 51], [23, 2], [35], [55, 54], [36], [37], [46, 53, 32, 58], [12], [7], [41, 14], [56]], [[27, 42], [4], [43, 44, 24], [11], [18, 3], [28, 0], [26, 22], [9], [38, 47, 13, 40], [59, 45], [29], [15, 31]], [[20, 16], [34], [10], [30], [17, 1], [21], [6, 19, 48], [25], [50], [39, 5], [49], [33]]]")]
    [InlineData(3, 1, "[[[25], [15, 6], [23], [9], [0, 39, 22], [17], [21], [43, 47, 48], [26], [34], [41, 46], [54]], [[27, 58, 24], [33], [14, 53], [52, 45, 40], [7], [55, 19], [4], [50], [59], [10, 2], [8, 32], [38, 13, 51]], [[16, 44, 31], [28, 3], [35], [30, 20], [56, 57], [37], [29], [11, 1], [49], [12, 42], [36, 5], [18]]]")]
    public void PlanMatchesPythonReference(int world, int epoch, string expectedJson)
    {
        var expected = JsonSerializer.Deserialize<int[][][]>(expectedJson)!;
        for (int rank = 0; rank < world; rank++)
        {
            var sampler = new MultipackSampler(Lengths, 256, world, rank, seed: 0);
            sampler.SetEpoch(epoch);
            var batches = sampler.Batches();
            Assert.Equal(expected[rank].Length, batches.Count);
            for (int s = 0; s < batches.Count; s++) Assert.Equal(expected[rank][s], batches[s]);
        }
    }

    [Theory]
    [InlineData(2, "[[[6, 10, 4], [5, 9, 7]], [[1, 0, 3, 8], [11, 2]]]")]
    [InlineData(3, "[[[5, 0, 4]], [[6, 10, 7]], [[2, 1, 3, 8]]]")]
    public void EqualLengthsFollowNumpyStableArgsortReversed(int world, string expectedJson)
    {
        int[] ties = { 5, 5, 5, 3, 3, 8, 8, 2, 2, 2, 5, 8 };
        var expected = JsonSerializer.Deserialize<int[][][]>(expectedJson)!;
        for (int rank = 0; rank < world; rank++)
        {
            var batches = new MultipackSampler(ties, 16, world, rank, seed: 7).Batches();
            Assert.Equal(expected[rank], batches.ToArray());
        }
    }

    [Fact]
    public void PlanInvariantsHold()
    {
        var rnd = new Random(5);
        var lengths = Enumerable.Range(0, 500).Select(_ => rnd.Next(0, 700)).ToArray();
        const int max = 512, world = 4;
        var sampler = new MultipackSampler(lengths, max, world, 0, seed: 3);
        sampler.SetEpoch(2);
        var plan = sampler.Plan(2);
        var seen = new HashSet<int>();
        long tokens = 0;
        for (int s = 0; s < plan.StepCount; s++)
        {
            for (int r = 0; r < world; r++)
            {
                var batch = plan.Batch(s, r);
                int sum = batch.Sum(i => Math.Min(lengths[i], max));
                Assert.True(sum <= max, $"step {s} rank {r} holds {sum} tokens");
                foreach (var i in batch) Assert.True(seen.Add(i), $"row {i} used twice");
                tokens += sum;
                // largest first within a row
                var lens = batch.Select(i => Math.Min(lengths[i], max)).ToArray();
                Assert.Equal(lens.OrderByDescending(x => x).ToArray(), lens);
            }
        }
        Assert.Equal(lengths.Length, seen.Count + plan.LeftoverSamples);
        Assert.InRange(plan.LeftoverSamples, 0, world - 1);
        Assert.Equal(tokens, plan.Tokens);
        Assert.Equal((double)tokens / (plan.StepCount * (double)max * world), plan.Efficiency, 12);
        Assert.True(plan.Efficiency > 0.8, plan.ToString()); // uniform lengths pack densely
        // every rank's own sampler returns its row of the same global plan
        for (int r = 0; r < world; r++)
        {
            var own = new MultipackSampler(lengths, max, world, r, seed: 3);
            own.SetEpoch(2);
            Assert.Equal(plan.StepCount, own.Count);
            Assert.Equal(plan.RankBatches(r), own.Batches());
        }
    }

    [Fact]
    public void RotationCyclesWhichRankGetsTheLargestSample()
    {
        // All samples equal except one giant per step-sized group: with rotation the rank holding the
        // largest sample of a step changes from step to step.
        var rnd = new Random(11);
        var lengths = Enumerable.Range(0, 400).Select(_ => rnd.Next(1, 300)).ToArray();
        var plan = new MultipackSampler(lengths, 600, 3, 0, seed: 1).Plan(0);
        var holders = new List<int>();
        for (int s = 0; s < plan.StepCount; s++)
        {
            int best = -1, holder = -1;
            for (int r = 0; r < 3; r++)
            {
                var b = plan.Batch(s, r);
                if (b.Length > 0 && lengths[b[0]] > best) { best = lengths[b[0]]; holder = r; }
            }
            holders.Add(holder);
        }
        // LPT puts the largest sample in slot 0, which rank (0 + s) mod 3 takes at step s.
        for (int s = 0; s < holders.Count; s++) Assert.Equal(s % 3, holders[s]);
    }

    [Fact]
    public void ResumeSkipsCompletedStepsAndEpochsDiffer()
    {
        var lengths = Enumerable.Range(1, 200).Select(i => (i * 37) % 150 + 1).ToArray();
        var sampler = new MultipackSampler(lengths, 256, 2, 1, seed: 9);
        sampler.SetEpoch(3);
        var all = sampler.Batches();
        Assert.Equal(all.Skip(5).ToList(), sampler.Iterate(5).ToList());
        Assert.Empty(sampler.Iterate(all.Count));
        var ex = Assert.Throws<SpeculatorsException>(() => sampler.Iterate(all.Count + 1).ToList());
        Assert.Contains("completed steps", ex.Message);
        sampler.SetEpoch(4);
        Assert.NotEqual(all[0], sampler.Batches()[0]);
        // deterministic: a fresh sampler gives the same epoch-3 plan
        var again = new MultipackSampler(lengths, 256, 2, 1, seed: 9);
        again.SetEpoch(3);
        Assert.Equal(all, again.Batches());
    }

    [Fact]
    public void LongSamplesAreDroppedWithoutTruncation()
    {
        int[] lengths = { 10, 300, 20, 30, 500, 40 };
        var keep = new MultipackSampler(lengths, 256, 1, 0, truncateLongSamples: false);
        Assert.Equal(2, keep.LongSampleCount);
        var used = keep.Batches().SelectMany(b => b).ToHashSet();
        Assert.DoesNotContain(1, used);
        Assert.DoesNotContain(4, used);
        Assert.Equal(2, keep.Plan(0).ExcludedSamples);
        var clip = new MultipackSampler(lengths, 256, 1, 0);
        Assert.Equal(6, clip.Batches().Sum(b => b.Length));
        Assert.Equal(256, clip.PackedLength(4));
    }

    [Fact]
    public void FewerSamplesThanRanksGiveNoSteps()
    {
        var s = new MultipackSampler(new[] { 5, 6 }, 64, 3, 2);
        Assert.Equal(0, s.Count);
        Assert.Equal(2, s.Plan(0).LeftoverSamples);
        Assert.Equal(0.0, s.Plan(0).Efficiency);
    }

    [Fact]
    public void RejectsBadArguments()
    {
        Assert.Throws<SpeculatorsException>(() => new MultipackSampler(new[] { 1 }, 0));
        Assert.Throws<SpeculatorsException>(() => new MultipackSampler(new[] { -1 }, 8));
        Assert.Throws<ArgumentOutOfRangeException>(() => new MultipackSampler(new[] { 1 }, 8, 2, 2));
    }

    [Fact]
    public void LayoutBuildsDocumentAndPositionIds()
    {
        var layout = MultipackCollation.Layout(new[] { 3, 2, 4 }, 8, firstPosition: 1);
        Assert.Equal(new[] { 3, 2, 3 }, layout.Lengths);
        Assert.Equal(new[] { 0, 3, 5 }, layout.Offsets);
        Assert.Equal(new long[] { 0, 0, 0, 1, 1, 2, 2, 2 }, layout.DocumentIds);
        Assert.Equal(new long[] { 1, 2, 3, 1, 2, 1, 2, 3 }, layout.PositionIds);
        Assert.Equal(8, layout.UsedTokens);

        var padded = MultipackCollation.Layout(new[] { 2 }, 5);
        Assert.Equal(new long[] { 0, 0, -1, -1, -1 }, padded.DocumentIds);
        Assert.Equal(new long[] { 0, 1, 0, 0, 0 }, padded.PositionIds);
        using var t = padded.DocumentIdsTensor();
        Assert.Equal(new long[] { 1, 5 }, t.shape);
        Assert.Equal(padded.DocumentIds, t.data<long>().ToArray());

        var empty = MultipackCollation.Layout(Array.Empty<int>(), 4);
        Assert.All(empty.DocumentIds, d => Assert.Equal(-1, d));
        // a sample after the row is full gets length 0
        Assert.Equal(new[] { 4, 0 }, MultipackCollation.Layout(new[] { 6, 2 }, 4).Lengths);
    }
}
