using System.Security.Cryptography;
using Speculators.Data.Preparation;

namespace Speculators.Tests.Data.Preparation;

/// <summary>Goldens printed by numpy 1.24.2 (Debian python3-numpy): <c>np.random.default_rng(seed).permutation(n)</c>.</summary>
public class NumpyShuffleTests
{
    [Theory]
    [InlineData(0L, new long[] { 4, 6, 2, 7, 3, 5, 9, 0, 8, 1 })]
    [InlineData(0L, new long[] { 3, 2, 5, 4, 0, 1 })]
    [InlineData(1L, new long[] { 5, 0, 1, 4, 2, 6, 3 })]
    [InlineData(42L, new long[] { 4, 2, 3, 1, 0 })]
    [InlineData(8589934597L, new long[] { 4, 2, 5, 6, 0, 3, 9, 8, 11, 1, 10, 7 })] // two 32-bit entropy words
    [InlineData(0L, new long[] { 0 })]
    [InlineData(0L, new long[] { 0, 1 })]
    [InlineData(123L, new long[] { 17, 11, 2, 7, 15, 4, 16, 10, 8, 19, 0, 18, 9, 12, 6, 1, 5, 14, 3, 13 })]
    public void PermutationEqualsNumpy(long seed, long[] expected)
    {
        Assert.Equal(expected, NumpyShuffle.Permutation(seed, expected.Length));
    }

    [Theory]
    [InlineData(0L, "4b0948101bcb0236130459390bc2237500ae33620978ea869176c43f21954cd5")]
    [InlineData(7L, "77b25ab0a1454ef1dab8dd03a8bb4fbf09af55d7fd94dd2abd58f6d3d77bfc1a")]
    public void LargePermutationEqualsNumpy(long seed, string sha256OfInt64LittleEndian)
    {
        var p = NumpyShuffle.Permutation(seed, 100_000);
        var bytes = new byte[p.Length * 8];
        Buffer.BlockCopy(p, 0, bytes, 0, bytes.Length);
        Assert.Equal(sha256OfInt64LittleEndian, Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant());
    }

    [Fact]
    public void Pcg64RawOutputsEqualNumpy()
    {
        // np.random.PCG64(seed).random_raw(k)
        var g = new NumpyShuffle.Pcg64(0);
        Assert.Equal([11749869230777074271UL, 4976686463289251617UL, 755828109848996024UL], new[] { g.Next64(), g.Next64(), g.Next64() });
        var h = new NumpyShuffle.Pcg64((1UL << 40) + 3);
        Assert.Equal([14271435802380633900UL, 18370326226487632705UL], new[] { h.Next64(), h.Next64() });
    }

    [Fact]
    public void EmptyAndNegative()
    {
        Assert.Empty(NumpyShuffle.Permutation(5, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => NumpyShuffle.Permutation(-1, 3));
    }
}
