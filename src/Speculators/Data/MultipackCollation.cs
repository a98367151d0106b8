using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Data;

/// <summary>
/// Where each sample of a packed row lands: the per-sample lengths trimmed to the row (the last
/// sample is truncated when it overflows, later ones get length 0), <c>document_ids</c>
/// (0, 1, 2, … per sample, −1 for padding) and per-document <c>position_ids</c> (padding 0).
/// The algorithm's collator copies its per-sample tensors at <see cref="Offsets"/>.
/// </summary>
public sealed class PackedLayout
{
    internal PackedLayout(int totalLength, int[] lengths, int[] offsets, long[] documentIds, long[] positionIds)
    {
        TotalLength = totalLength;
        Lengths = lengths;
        Offsets = offsets;
        DocumentIds = documentIds;
        PositionIds = positionIds;
    }

    /// <summary>Row length L (<c>--total-seq-len</c>).</summary>
    public int TotalLength { get; }

    /// <summary>Per-sample token counts actually placed (trimmed to the row).</summary>
    public int[] Lengths { get; }

    /// <summary>Start of each sample in the row.</summary>
    public int[] Offsets { get; }

    /// <summary>[L]: sample index for every position, −1 for padding.</summary>
    public long[] DocumentIds { get; }

    /// <summary>[L]: position within the document (starting at the first position given), 0 for padding.</summary>
    public long[] PositionIds { get; }

    /// <summary>Positions holding real tokens.</summary>
    public int UsedTokens => Lengths.Sum();

    /// <summary><c>document_ids</c> as an int64 tensor [1, L].</summary>
    public Tensor DocumentIdsTensor(Device? device = null) => torch.tensor(DocumentIds, new long[] { 1, TotalLength }, ScalarType.Int64, device);

    /// <summary><c>position_ids</c> as an int64 tensor [1, L].</summary>
    public Tensor PositionIdsTensor(Device? device = null) => torch.tensor(PositionIds, new long[] { 1, TotalLength }, ScalarType.Int64, device);
}

/// <summary>Helpers for collating one packed row (the algorithm-specific collator builds the data tensors).</summary>
public static class MultipackCollation
{
    /// <summary>
    /// Lays out samples of <paramref name="lengths"/> tokens back to back in a row of
    /// <paramref name="totalLength"/> positions. Positions inside each document count up from
    /// <paramref name="firstPosition"/> (Eagle-3 after its one-token shift starts at 1, DFlash at 0).
    /// An empty list gives an all-padding row.
    /// </summary>
    public static PackedLayout Layout(IReadOnlyList<int> lengths, int totalLength, int firstPosition = 0)
    {
        ArgumentNullException.ThrowIfNull(lengths);
        if (totalLength < 1) throw new ArgumentOutOfRangeException(nameof(totalLength), $"row length must be positive, got {totalLength}.");
        var trimmed = new int[lengths.Count];
        var offsets = new int[lengths.Count];
        var doc = new long[totalLength];
        var pos = new long[totalLength];
        Array.Fill(doc, -1L);
        int at = 0;
        for (int i = 0; i < lengths.Count; i++)
        {
            if (lengths[i] < 0) throw new ArgumentException($"sample {i} has negative length {lengths[i]}.", nameof(lengths));
            int len = Math.Min(lengths[i], totalLength - at);
            trimmed[i] = len;
            offsets[i] = at;
            for (int j = 0; j < len; j++)
            {
                doc[at + j] = i;
                pos[at + j] = firstPosition + j;
            }
            at += len;
        }
        return new PackedLayout(totalLength, trimmed, offsets, doc, pos);
    }
}
