using Speculators.Attention;
using Speculators.Data;
using Speculators.HiddenStates;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>One loaded dataset row: its hidden states (T tokens) and the row's loss mask (at least T entries).</summary>
public sealed record Eagle3RowData(HiddenStateSample Sample, long[] LossMask)
{
    public int Row => Sample.Row;
}

/// <summary>
/// Per-sample Eagle-3 preprocessing and packing (speculators.md §3.1–3.3, §7.6):
/// <list type="number">
/// <item>train-split noise on the aux states, <c>g + (2·U[0,1) − 1)·noise_std</c>, drawn from a generator seeded by
/// <see cref="NoiseSeed"/>(seed, epoch, row) — a pure function of those three, whatever else is in the batch;</item>
/// <item>the one-token shift (<c>shift_batch</c>): <c>input_ids = x[1:]</c>, <c>hidden_states = g[:-1]</c>,
/// <c>verifier_last_hidden_states = y[1:]</c>, <c>loss_mask = l[1:T]</c>, positions 1..T−1;</item>
/// <item>packing back to back into a row of L positions (the last sample truncated; <see cref="MultipackCollation.Layout"/>
/// gives <c>document_ids</c> with −1 padding and per-document <c>position_ids</c> from 1, padding 0); empty rows are all
/// padding;</item>
/// <item>the block masks of every TTT step (<see cref="Eagle3MaskSet.Prepare"/>), so their O(L²/B²) construction runs
/// here, on the prefetch thread, not in the training step.</item>
/// </list>
/// </summary>
public sealed class Eagle3Collator
{
    public Eagle3Collator(int totalLength, ScalarType hiddenDtype, Device device, IReadOnlyList<int?> slidingWindows, int tttSteps,
        double noiseStd = 0.05, int blockSize = BlockMask.DefaultBlockSize, bool prepareMasks = true)
    {
        if (totalLength < 1) throw new SpeculatorsException($"--total-seq-len must be positive, found {totalLength}.");
        if (!(noiseStd >= 0) || double.IsInfinity(noiseStd)) throw new SpeculatorsException($"--noise-std must be a finite number >= 0, found {noiseStd}.");
        if (tttSteps < 1) throw new SpeculatorsException($"--ttt-steps must be at least 1, found {tttSteps}.");
        TotalLength = totalLength;
        HiddenDtype = hiddenDtype;
        Device = device;
        SlidingWindows = slidingWindows.Distinct().ToArray();
        TttSteps = tttSteps;
        NoiseStd = noiseStd;
        BlockSize = blockSize;
        PrepareMasks = prepareMasks;
    }

    /// <summary>L (<c>--total-seq-len</c>).</summary>
    public int TotalLength { get; }
    /// <summary>dtype of the packed hidden-state tensors.</summary>
    public ScalarType HiddenDtype { get; }
    public Device Device { get; }
    /// <summary>Distinct sliding windows of the draft layers (null = full attention).</summary>
    public IReadOnlyList<int?> SlidingWindows { get; }
    public int TttSteps { get; }
    public double NoiseStd { get; }
    public int BlockSize { get; }
    public bool PrepareMasks { get; }

    /// <summary>
    /// The generator seed of row <paramref name="row"/>'s noise in <paramref name="epoch"/> (SplitMix64 over the three
    /// values). Torch's CPU generator (mt19937) keeps 32 bits of it.
    /// </summary>
    public static ulong NoiseSeed(long seed, int epoch, int row)
    {
        ulong h = 0x9E3779B97F4A7C15UL;
        h = Mix(h ^ (ulong)seed);
        h = Mix(h ^ (ulong)(uint)epoch);
        h = Mix(h ^ (ulong)(uint)row);
        return h;
    }

    static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>
    /// The uniform noise of a row: fp32 [<paramref name="tokens"/>, <paramref name="width"/>] with entries
    /// (2·U[0,1) − 1)·<paramref name="std"/>, drawn on the CPU from <see cref="NoiseSeed"/>. Row r of the result is
    /// token r's noise, so a sample truncated by packing keeps the noise of its first tokens.
    /// </summary>
    public static Tensor Noise(long seed, int epoch, int row, long tokens, long width, double std)
    {
        using var gen = new torch.Generator(NoiseSeed(seed, epoch, row), torch.CPU);
        using var scope = NewDisposeScope();
        var u = torch.rand([tokens, width], ScalarType.Float32, torch.CPU, generator: gen);
        return u.mul(2.0).sub(1.0).mul(std).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Packs <paramref name="rows"/> (null entries are skipped rows) into one batch. <paramref name="training"/> adds noise
    /// (for <paramref name="epoch"/> and <paramref name="seed"/>); <paramref name="extraSkipped"/> counts rows dropped before.
    /// </summary>
    public Eagle3Batch Collate(IReadOnlyList<Eagle3RowData?> rows, bool training, int epoch, long seed, int extraSkipped = 0)
    {
        var present = rows.Where(r => r is not null).Select(r => r!).ToList();
        int skipped = rows.Count - present.Count + extraSkipped;
        long auxWidth = -1, hiddenSize = -1;
        foreach (var r in present)
        {
            var h = r.Sample.Hidden;
            if (h.dim() != 3 || h.shape[1] < 2)
                throw new SpeculatorsException($"row {r.Row}: hidden states must be [T, A+1, H] with at least one aux layer, got [{string.Join(", ", h.shape)}].");
            long a = (h.shape[1] - 1) * h.shape[2];
            if (auxWidth < 0) (auxWidth, hiddenSize) = (a, h.shape[2]);
            else if (a != auxWidth || h.shape[2] != hiddenSize)
                throw new SpeculatorsException($"row {r.Row}: hidden states [{string.Join(", ", h.shape)}] differ in layout from the other rows of the batch.");
            if (r.LossMask.Length < r.Sample.Length)
                throw new SpeculatorsException($"row {r.Row}: the loss mask has {r.LossMask.Length} entries but the hidden states cover {r.Sample.Length} tokens.");
        }
        if (auxWidth < 0)
            throw new SpeculatorsException("cannot collate a batch without rows to learn the hidden-state layout from; use CollateEmpty for an all-padding batch.");
        return Build(present, skipped, training, epoch, seed, auxWidth, hiddenSize);
    }

    /// <summary>An all-padding batch (every row of the request was skipped): zero loss, zero gradients.</summary>
    public Eagle3Batch CollateEmpty(long auxWidth, long hiddenSize, int skipped) =>
        Build([], skipped, training: false, epoch: 0, seed: 0, auxWidth, hiddenSize);

    Eagle3Batch Build(List<Eagle3RowData> present, int skipped, bool training, int epoch, long seed, long auxWidth, long hiddenSize)
    {
        int l = TotalLength;
        var shifted = present.Select(r => Math.Max(r.Sample.Length - 1, 0)).ToArray();
        var layout = MultipackCollation.Layout(shifted, l, firstPosition: 1);
        var ids = new long[l];
        var mask = new long[l];
        using var scope = NewDisposeScope();
        var hidden = torch.zeros([l, auxWidth], ScalarType.Float32);
        var last = torch.zeros([l, hiddenSize], ScalarType.Float32);
        var usedRows = new List<int>();
        var usedLengths = new List<int>();
        for (int i = 0; i < present.Count; i++)
        {
            var r = present[i];
            int n = layout.Lengths[i], off = layout.Offsets[i];
            usedRows.Add(r.Row);
            usedLengths.Add(n);
            if (n == 0) continue;
            var tokens = r.Sample.TokenIds;
            Array.Copy(tokens, 1, ids, off, n);
            Array.Copy(r.LossMask, 1, mask, off, n);
            using var inner = NewDisposeScope();
            var aux = r.Sample.AuxFlat().narrow(0, 0, n).to(ScalarType.Float32);
            if (training && NoiseStd > 0)
                aux = aux.add(Noise(seed, epoch, r.Row, r.Sample.Length, auxWidth, NoiseStd).narrow(0, 0, n));
            hidden.narrow(0, off, n).copy_(aux);
            last.narrow(0, off, n).copy_(r.Sample.LastLayer().narrow(0, 1, n));
        }
        var shape = new long[] { 1, l };
        var inputIds = torch.tensor(ids, shape, ScalarType.Int64).to(Device);
        var lossMask = torch.tensor(mask, shape, ScalarType.Int64).to(Device);
        var positions = layout.PositionIdsTensor(Device);
        var documents = layout.DocumentIdsTensor(Device);
        var hs = hidden.to(HiddenDtype, Device).view(1, l, auxWidth);
        var ls = last.to(HiddenDtype, Device).view(1, l, hiddenSize);
        foreach (var t in new[] { inputIds, lossMask, positions, documents, hs, ls }) t.DetachFromDisposeScope();
        var batch = new Eagle3Batch(inputIds, hs, ls, lossMask, positions, documents, layout.DocumentIds,
            usedRows.ToArray(), usedLengths.ToArray(), skipped, BlockSize);
        try
        {
            if (PrepareMasks) batch.Masks.Prepare(SlidingWindows, TttSteps);
        }
        catch
        {
            batch.Dispose();
            throw;
        }
        return batch;
    }
}
