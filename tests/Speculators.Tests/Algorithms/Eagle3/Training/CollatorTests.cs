using Speculators.Algorithms.Eagle3.Training;
using Speculators.HiddenStates;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>The per-sample shift (§3.2), packing (§3.3, §7.6) and train-split noise (a pure function of seed, epoch and row).</summary>
public class CollatorTests
{
    const int A = 3, H = 4;
    const double Small = 1e-3;   // keeps the encoded values small, so fp32 sums keep the noise's bits

    public CollatorTests() => E3TrainFixtures.SingleThreaded();

    /// <summary>
    /// A row of <paramref name="t"/> tokens whose states encode where they come from: aux layer a of token i holds
    /// 1000·row + 10·i + a in every channel, the last layer 1000·row + 10·i + 9; token ids 100·row + i; mask i mod 2.
    /// </summary>
    static Eagle3RowData Row(int row, int t, double scale = 1.0)
    {
        var hidden = torch.zeros([t, A + 1, H], ScalarType.Float32);
        for (int i = 0; i < t; i++)
        {
            for (int a = 0; a < A; a++) hidden[i, a].fill_(scale * (1000.0 * row + 10 * i + a));
            hidden[i, A].fill_(scale * (1000.0 * row + 10 * i + 9));
        }
        var ids = Enumerable.Range(0, t).Select(i => 100L * row + i).ToArray();
        var mask = Enumerable.Range(0, t).Select(i => (long)(i % 2)).ToArray();
        return new Eagle3RowData(new HiddenStateSample(row, ids, hidden, SampleOrigin.File), mask);
    }

    static Eagle3Collator Collator(int l, double noise = 0.0) =>
        new(l, ScalarType.Float32, torch.CPU, [null], tttSteps: 2, noiseStd: noise, blockSize: 4);

    [Fact]
    public void ShiftsEachSampleAndPacksThemWithDocumentsAndPositions()
    {
        using var scope = NewDisposeScope();
        var rows = new Eagle3RowData?[] { Row(1, 4), null, Row(2, 1), Row(3, 6) };
        // Shifted lengths 3, 0, 5 → 8 real positions in a row of 7: the last sample is truncated to 4.
        using var batch = Collator(7).Collate(rows, training: false, epoch: 0, seed: 1);
        Assert.Equal(1, batch.SkippedRows);
        Assert.Equal(3, batch.Samples);
        Assert.Equal(7, batch.Tokens);
        Assert.Equal([1, 2, 3], batch.Rows);
        Assert.Equal([3, 0, 4], batch.SampleLengths);
        Assert.Equal(new long[] { 101, 102, 103, 301, 302, 303, 304 }, batch.InputIds.reshape(-1).data<long>().ToArray());
        Assert.Equal(new long[] { 1, 0, 1, 1, 0, 1, 0 }, batch.LossMask.reshape(-1).data<long>().ToArray());
        Assert.Equal(new long[] { 1, 2, 3, 1, 2, 3, 4 }, batch.PositionIds.reshape(-1).data<long>().ToArray());
        Assert.Equal(new long[] { 0, 0, 0, 2, 2, 2, 2 }, batch.DocumentIds.reshape(-1).data<long>().ToArray());
        // hidden_states = g[:-1] (token i's aux states at index i), verifier_last = y[1:].
        var hs = batch.HiddenStates.reshape(7, A, H);
        var last = batch.VerifierLastHiddenStates.reshape(7, H);
        int[] srcRow = [1, 1, 1, 3, 3, 3, 3];
        int[] srcTok = [0, 1, 2, 0, 1, 2, 3];
        for (int p = 0; p < 7; p++)
        {
            for (int a = 0; a < A; a++) Assert.Equal(1000.0 * srcRow[p] + 10 * srcTok[p] + a, hs[p, a, 0].item<float>());
            Assert.Equal(1000.0 * srcRow[p] + 10 * (srcTok[p] + 1) + 9, last[p, 0].item<float>());
        }
    }

    [Fact]
    public void PadsAndHandlesEmptyBatches()
    {
        using var scope = NewDisposeScope();
        using var batch = Collator(10).Collate([Row(4, 3)], training: true, epoch: 2, seed: 3);
        Assert.Equal(new long[] { 0, 0, -1, -1, -1, -1, -1, -1, -1, -1 }, batch.DocumentIds.reshape(-1).data<long>().ToArray());
        Assert.Equal(new long[] { 1, 2, 0, 0, 0, 0, 0, 0, 0, 0 }, batch.PositionIds.reshape(-1).data<long>().ToArray());
        Assert.Equal(0, batch.HiddenStates.narrow(1, 2, 8).abs().sum().item<float>());
        Assert.Equal(0, batch.LossMask.narrow(1, 2, 8).sum().item<long>());

        using var empty = Collator(5).CollateEmpty(A * H, H, skipped: 2);
        Assert.Equal(2, empty.SkippedRows);
        Assert.Equal(0, empty.Tokens);
        Assert.True(empty.DocumentIds.eq(-1).all().item<bool>());
        Assert.Throws<SpeculatorsException>(() => Collator(5).Collate([null, null], false, 0, 0));
    }

    [Fact]
    public void NoiseIsAPureFunctionOfSeedEpochAndRow()
    {
        using var scope = NewDisposeScope();
        const double std = 0.05;
        var collator = Collator(32, std);
        Tensor NoiseOf(Eagle3Batch b, int row, int length)
        {
            int sample = b.Rows.ToList().IndexOf(row);
            int off = b.SampleLengths.Take(sample).Sum();
            var clean = Row(row, length + 1, Small).Sample.AuxFlat().narrow(0, 0, length);
            return b.HiddenStates[0].narrow(0, off, length).sub(clean);
        }
        // Row 7 first in one batch, after two other rows in another, and in the other order of arrival.
        using var b1 = collator.Collate([Row(7, 6, Small), Row(8, 9, Small)], training: true, epoch: 1, seed: 42);
        using var b2 = collator.Collate([Row(5, 4, Small), Row(9, 11, Small), Row(7, 6, Small)], training: true, epoch: 1, seed: 42);
        var n1 = NoiseOf(b1, 7, 5);
        var n2 = NoiseOf(b2, 7, 5);
        Assert.True(n1.eq(n2).all().item<bool>(), "row 7's noise depends on the batch it is in");
        Assert.True(n1.abs().max().item<float>() <= std + 1e-6);
        Assert.True(n1.abs().max().item<float>() > std / 2);
        // The value is the documented formula from the row's own generator.
        var expected = Eagle3Collator.Noise(42, 1, 7, 6, A * H, std).narrow(0, 0, 5);
        Assert.True(n1.allclose(expected, rtol: 0, atol: 1e-5));
        // Another epoch, seed or row gives other noise; validation batches get none.
        using var b3 = collator.Collate([Row(7, 6, Small)], training: true, epoch: 2, seed: 42);
        using var b4 = collator.Collate([Row(7, 6, Small)], training: true, epoch: 1, seed: 43);
        using var b5 = collator.Collate([Row(7, 6, Small)], training: false, epoch: 1, seed: 42);
        Assert.False(NoiseOf(b3, 7, 5).allclose(n1, rtol: 0, atol: 1e-3));
        Assert.False(NoiseOf(b4, 7, 5).allclose(n1, rtol: 0, atol: 1e-3));
        Assert.Equal(0, NoiseOf(b5, 7, 5).abs().max().item<float>());
        Assert.False(NoiseOf(b1, 8, 8).narrow(0, 0, 5).allclose(n1, rtol: 0, atol: 1e-3));
        // The verifier's last-layer states (targets) never get noise.
        var cleanLast = Row(7, 6, Small).Sample.LastLayer().narrow(0, 1, 5);
        Assert.True(b1.VerifierLastHiddenStates[0].narrow(0, 0, 5).eq(cleanLast).all().item<bool>());
        // Statistics of a larger draw: uniform on [-std, std).
        using var big = Eagle3Collator.Noise(1, 0, 0, 2000, 50, std);
        Assert.InRange(big.mean().item<float>(), -0.002, 0.002);
        Assert.InRange(big.pow(2).mean().sqrt().item<float>(), std / Math.Sqrt(3) * 0.98, std / Math.Sqrt(3) * 1.02);
    }

    [Fact]
    public void MasksArePreparedForEveryStepAndWindow()
    {
        using var scope = NewDisposeScope();
        var collator = new Eagle3Collator(9, ScalarType.Float32, torch.CPU, [null, 3, null], tttSteps: 3, blockSize: 4);
        Assert.Equal([null, 3], collator.SlidingWindows);
        using var batch = collator.Collate([Row(1, 5), Row(2, 6)], false, 0, 0);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(9L * (k + 1), batch.Masks.For(null, k).KvLen);
            Assert.Equal(9L * (k + 1), batch.Masks.For(3, k).KvLen);
        }
        using var reference = DenseMask(batch.DocumentIdArray, 3, 3);
        using var built = batch.Masks.For(3, 2).ToDense();
        Assert.True(built.eq(reference).all().item<bool>());
    }

    static Tensor DenseMask(long[] doc, int steps, int? window)
    {
        var m = DenseTttReference.Mask(doc, steps, window);
        int l = doc.Length;
        var flat = new bool[l * steps * l];
        for (int q = 0; q < l; q++) for (int kv = 0; kv < steps * l; kv++) flat[q * steps * l + kv] = m[q, kv];
        return torch.tensor(flat, [l, steps * l]);
    }
}
