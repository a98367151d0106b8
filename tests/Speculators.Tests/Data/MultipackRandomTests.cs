using System.Numerics;
using Speculators.Data;

namespace Speculators.Tests.Data;

/// <summary>Expected values printed by NumPy 1.24.2 (numpy.random.PCG64 / SeedSequence / default_rng).</summary>
public class MultipackRandomTests
{
    [Theory]
    [InlineData("0", new ulong[] { 11749869230777074271, 4976686463289251617, 755828109848996024, 304881062738325533 })]
    [InlineData("1", new ulong[] { 9441442522235856127, 17532960557476522086, 2659275481604167885, 17499493567006797778 })]
    [InlineData("42", new ulong[] { 14276969152011380360, 8095878257575067585, 15838336090824644132, 12864169557245331597 })]
    [InlineData("7", new ulong[] { 11530976094092348043, 16550673365885938325, 14308875409591826786, 4154339397315733314 })]
    [InlineData("4294967301", new ulong[] { 14281546376153053393, 8683300866460616067, 12836726618003871680, 15062460979414588022 })]
    [InlineData("12345678901234567890", new ulong[] { 77935276331132168, 12033622772062331548, 11213416055601313548, 18157223196524555682 })]
    public void RawDrawsMatchNumpyPcg64(string seed, ulong[] expected)
    {
        var rng = new NumpyRandom(BigInteger.Parse(seed));
        Assert.Equal(expected, Enumerable.Range(0, 4).Select(_ => rng.NextUInt64()).ToArray());
    }

    [Fact]
    public void SeedSequenceStateMatchesNumpy()
    {
        Assert.Equal(new ulong[] { 11465652750463011511, 15382171918060459190, 9018504550953525431, 3703499796004394495 },
            NumpyRandom.SeedSequenceState(42));
        Assert.Equal(new ulong[] { 17996766564426832300, 12826844651305701079, 10630945381835142969, 6839746111962626529 },
            NumpyRandom.SeedSequenceState(BigInteger.Parse("4294967301")));
    }

    [Theory]
    [InlineData(0, 10, new[] { 4, 6, 2, 7, 3, 5, 9, 0, 8, 1 })]
    [InlineData(1, 10, new[] { 8, 4, 7, 0, 1, 2, 5, 9, 6, 3 })]
    [InlineData(42, 20, new[] { 15, 9, 14, 7, 12, 10, 6, 19, 3, 0, 16, 5, 11, 18, 2, 4, 17, 1, 13, 8 })]
    [InlineData(5, 1, new[] { 0 })]
    [InlineData(3, 2, new[] { 1, 0 })]
    [InlineData(9, 37, new[] { 13, 18, 2, 35, 17, 15, 25, 21, 7, 34, 6, 9, 19, 29, 14, 3, 26, 20, 16, 36, 22, 28, 10, 23, 31, 8, 0, 12, 27, 5, 1, 24, 11, 4, 32, 30, 33 })]
    public void PermutationMatchesNumpy(long seed, int n, int[] expected) =>
        Assert.Equal(expected, new NumpyRandom(seed).Permutation(n));

    [Theory]
    [InlineData(0, 300, new[] { 36, 291, 128, 116, 266, 0, 107, 272, 210, 5 }, new[] { 176, 7, 69, 127, 78, 120, 29, 184, 289, 95 }, 6706207L, 0L)]
    [InlineData(2024, 70000, new[] { 34360, 36786, 43579, 2712, 35770, 32472, 20906, 60185 }, new[] { 24776, 30766, 11846, 42599, 60424, 58087, 16272, 51944 }, 947365133L, 1000000007L)]
    public void LongPermutationsMatchNumpy(long seed, int n, int[] head, int[] tail, long checksum, long modulus)
    {
        var p = new NumpyRandom(seed).Permutation(n);
        Assert.Equal(head, p.Take(head.Length).ToArray());
        Assert.Equal(tail, p.Skip(n - tail.Length).ToArray());
        // Σ i·p[i] (mod m when m > 0), as printed by NumPy
        long sum = 0;
        for (int i = 0; i < n; i++)
        {
            sum += (long)i * p[i];
            if (modulus > 0) sum %= modulus;
        }
        Assert.Equal(checksum, sum);
    }

    [Fact]
    public void PermutationOfAnArrayShufflesItsValues()
    {
        // numpy: default_rng(4).permutation([0, 2, 3, 4, 5, 6]) == [2, 3, 0, 6, 5, 4]
        Assert.Equal(new[] { 2, 3, 0, 6, 5, 4 }, new NumpyRandom(4).Permutation<int>(new[] { 0, 2, 3, 4, 5, 6 }));
    }

    [Fact]
    public void IntervalStaysInRangeAndCoversIt()
    {
        var rng = new NumpyRandom(123);
        var seen = new bool[6];
        for (int i = 0; i < 600; i++)
        {
            ulong v = rng.NextInterval(5);
            Assert.InRange(v, 0UL, 5UL);
            seen[v] = true;
        }
        Assert.All(seen, Assert.True);
        Assert.Equal(0UL, rng.NextInterval(0));
        Assert.InRange(rng.NextInterval(1UL << 40), 0UL, 1UL << 40);
    }
}
