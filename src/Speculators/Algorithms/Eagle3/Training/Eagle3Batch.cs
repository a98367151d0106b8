using Speculators.Attention;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3.Training;

/// <summary>
/// One packed Eagle-3 row (speculators.md §3.3), every tensor shaped [1, L, …] and already shifted per sample (§3.2):
/// <c>input_ids</c> int64, <c>hidden_states</c> [1, L, A·T] (aux states, noise added for the train split),
/// <c>verifier_last_hidden_states</c> [1, L, T], <c>loss_mask</c> int64 0/1, per-document <c>position_ids</c> (from 1,
/// padding 0) and <c>document_ids</c> (0, 1, 2, … per sample, −1 padding). It also owns the block masks of the TTT
/// steps (<see cref="Masks"/>): they depend only on the document ids, so the collator builds them off the training
/// thread, and they must outlive the backward pass that used them — the trainer disposes the batch after the step.
/// </summary>
public sealed class Eagle3Batch : ITrainingBatch
{
    bool _disposed;

    public Eagle3Batch(Tensor inputIds, Tensor hiddenStates, Tensor verifierLastHiddenStates, Tensor lossMask, Tensor positionIds,
        Tensor documentIds, long[] documentIdArray, int[] rows, int[] sampleLengths, int skippedRows, int blockSize = BlockMask.DefaultBlockSize)
    {
        long l = inputIds.shape[^1];
        if (inputIds.dim() != 2 || inputIds.shape[0] != 1)
            throw new ArgumentException($"input_ids must be [1, L], got [{string.Join(", ", inputIds.shape)}].", nameof(inputIds));
        if (hiddenStates.dim() != 3 || hiddenStates.shape[0] != 1 || hiddenStates.shape[1] != l)
            throw new ArgumentException($"hidden_states must be [1, {l}, A·T], got [{string.Join(", ", hiddenStates.shape)}].", nameof(hiddenStates));
        if (verifierLastHiddenStates.dim() != 3 || verifierLastHiddenStates.shape[0] != 1 || verifierLastHiddenStates.shape[1] != l)
            throw new ArgumentException($"verifier_last_hidden_states must be [1, {l}, T], got [{string.Join(", ", verifierLastHiddenStates.shape)}].", nameof(verifierLastHiddenStates));
        foreach (var (t, name) in new[] { (lossMask, "loss_mask"), (positionIds, "position_ids"), (documentIds, "document_ids") })
            if (!t.shape.SequenceEqual(inputIds.shape))
                throw new ArgumentException($"{name} must be [1, {l}], got [{string.Join(", ", t.shape)}].");
        if (documentIdArray.Length != l) throw new ArgumentException($"document id array has {documentIdArray.Length} entries, expected {l}.", nameof(documentIdArray));
        InputIds = inputIds;
        HiddenStates = hiddenStates;
        VerifierLastHiddenStates = verifierLastHiddenStates;
        LossMask = lossMask;
        PositionIds = positionIds;
        DocumentIds = documentIds;
        DocumentIdArray = documentIdArray;
        Rows = rows;
        SampleLengths = sampleLengths;
        SkippedRows = skippedRows;
        Tokens = documentIdArray.LongCount(d => d >= 0);
        Masks = new Eagle3MaskSet(documentIdArray, blockSize, inputIds.device);
    }

    /// <summary>L, the packed row length.</summary>
    public int Length => (int)InputIds.shape[1];
    public Tensor InputIds { get; }
    public Tensor HiddenStates { get; }
    public Tensor VerifierLastHiddenStates { get; }
    public Tensor LossMask { get; }
    public Tensor PositionIds { get; }
    public Tensor DocumentIds { get; }
    /// <summary>The document ids on the host (mask construction).</summary>
    public long[] DocumentIdArray { get; }
    /// <summary>Dataset rows packed into this batch, in packing order (skipped rows excluded).</summary>
    public IReadOnlyList<int> Rows { get; }
    /// <summary>Shifted lengths placed per packed sample (trimmed to the row).</summary>
    public IReadOnlyList<int> SampleLengths { get; }
    /// <summary>Block masks of the TTT steps, per sliding window.</summary>
    public Eagle3MaskSet Masks { get; }

    public long Tokens { get; }
    public int Samples => Rows.Count;
    public int SkippedRows { get; }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        InputIds.Dispose();
        HiddenStates.Dispose();
        VerifierLastHiddenStates.Dispose();
        LossMask.Dispose();
        PositionIds.Dispose();
        DocumentIds.Dispose();
        Masks.Dispose();
    }
}

/// <summary>
/// The block masks of one packed row for every TTT step: step k attends over kv_len = (k+1)·L keys laid out
/// [step 0 | step 1 | … | step k] under <c>MaskMod.Eagle3(document_ids, window)</c> =
/// ((causal [∧ window]) ∧ same document) ∨ (kv mod L == q) (speculators.md §3.7). Step 0 is built with
/// <see cref="BlockMask.Create"/> (O(L²/B²) block classifications plus element evaluation of the undecided blocks),
/// each later step with <see cref="BlockMask.ExtendKv"/> (only the new keys are classified). One chain per distinct
/// sliding window (null = full attention). Thread-safe; built lazily or ahead with <see cref="Prepare"/>.
/// </summary>
public sealed class Eagle3MaskSet : IDisposable
{
    readonly long[] _documentIds;
    readonly int _blockSize;
    readonly Device _device;
    readonly Dictionary<long, List<BlockMask>> _chains = new();
    readonly object _gate = new();
    bool _disposed;

    public Eagle3MaskSet(long[] documentIds, int blockSize, Device device)
    {
        if (documentIds.Length == 0) throw new ArgumentException("a packed row needs at least one position.", nameof(documentIds));
        if (blockSize < 1) throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be positive.");
        _documentIds = documentIds;
        _blockSize = blockSize;
        _device = device;
    }

    public int Length => _documentIds.Length;

    /// <summary>The block mask of TTT step <paramref name="step"/> (kv_len = (step+1)·L) for layers with <paramref name="slidingWindow"/>.</summary>
    public BlockMask For(int? slidingWindow, int step)
    {
        if (step < 0) throw new ArgumentOutOfRangeException(nameof(step), step, "step must be >= 0.");
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            long key = slidingWindow ?? -1;
            if (!_chains.TryGetValue(key, out var chain))
            {
                var mod = MaskMod.Eagle3(_documentIds, slidingWindow);
                chain = [BlockMask.Create(mod, Length, Length, _blockSize, _blockSize, _device)];
                _chains[key] = chain;
            }
            while (chain.Count <= step) chain.Add(chain[^1].ExtendKv((long)(chain.Count + 1) * Length));
            return chain[step];
        }
    }

    /// <summary>Builds the masks (and their execution plans) of steps 0..<paramref name="steps"/>−1 for every window now.</summary>
    public void Prepare(IEnumerable<int?> slidingWindows, int steps)
    {
        foreach (var w in slidingWindows.Distinct())
            for (int k = 0; k < steps; k++) For(w, k).Prepare();
    }

    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var chain in _chains.Values)
                foreach (var m in chain) m.Dispose();
            _chains.Clear();
        }
    }
}
