using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// Chain drafting at inference, as vLLM's Eagle-3 proposer does it (vllm_and_eagle_formats.md §4.1), for
/// several sequences at once, with the draft's own KV cache (one slot per position).
/// <para>
/// Protocol per sequence: after the verifier has processed positions p..p+n−1 (the prompt at prefill, or
/// <c>[last, d1..da]</c> after a verification), call <see cref="Observe"/> with the verifier's aux states at
/// those positions and the token that follows each one (the next prompt / accepted token, and at the last
/// position the token the verifier just sampled). Then <see cref="Propose"/> drafts k tokens for every sequence
/// with a pending observation: the first pass writes draft KV entries for positions p..p+n−1 (slot t =
/// combined aux state at t + embedding of token t+1, position t), replacing any speculative entries there, and
/// samples at the last slot; then k−1 steps each feed the draft's own hidden state (post-norm when
/// <c>norm_output</c>, else pre-norm) and the embedding of its previous draft token at the next position.
/// Drafts are greedy (argmax over the draft vocabulary) and returned as target-vocabulary ids (via d2t).
/// </para>
/// </summary>
public sealed class Eagle3Proposer : IDisposable
{
    sealed class Pending
    {
        public required long Start;
        public required Tensor Hidden; // [n, H] combined aux states (fc output), draft dtype and device
        public required long[] Tokens; // [n]
        public long End => Start + Tokens.Length;
    }

    readonly Eagle3DraftModel _draft;
    readonly KvCache _cache;
    readonly long[] _verified;
    readonly Pending?[] _pending;

    /// <param name="draft">the draft (any dtype/device; inputs are moved to it)</param>
    /// <param name="batchSize">number of sequence slots</param>
    public Eagle3Proposer(Eagle3DraftModel draft, int batchSize)
    {
        if (batchSize <= 0) throw new ArgumentOutOfRangeException(nameof(batchSize), "must be positive");
        _draft = draft;
        _cache = new KvCache(batchSize);
        _verified = new long[batchSize];
        _pending = new Pending?[batchSize];
    }

    public Eagle3DraftModel Draft => _draft;
    public int BatchSize => _verified.Length;

    /// <summary>Positions of <paramref name="seq"/> whose draft KV entries come from verifier states (pending ones included).</summary>
    public long VerifiedLength(int seq) => _pending[CheckSeq(seq)]?.End ?? _verified[seq];

    /// <summary>Whether <paramref name="seq"/> has an observation waiting for the next <see cref="Propose"/>.</summary>
    public bool HasPending(int seq) => _pending[CheckSeq(seq)] != null;

    int CheckSeq(int seq) =>
        seq >= 0 && seq < BatchSize ? seq : throw new ArgumentOutOfRangeException(nameof(seq), $"sequence {seq} is outside [0, {BatchSize}).");

    /// <summary>
    /// Records newly verified positions <paramref name="startPosition"/>..+n−1 of <paramref name="seq"/>.
    /// </summary>
    /// <param name="seq">sequence slot</param>
    /// <param name="auxHidden">[n, A·T]: the verifier's aux states at those positions (ascending layer ids, concatenated)</param>
    /// <param name="nextTokens">n target ids: the token following each position (the last one is the newly sampled token)</param>
    /// <param name="startPosition">position of the first row; at most the verified length so far (no gap).
    /// Entries at and after it (speculative or older) are replaced.</param>
    public void Observe(int seq, Tensor auxHidden, ReadOnlySpan<long> nextTokens, long startPosition)
    {
        CheckSeq(seq);
        int n = nextTokens.Length;
        if (n == 0) throw new SpeculatorsException("Observe needs at least one newly verified position.");
        if (auxHidden.dim() != 2 || auxHidden.shape[0] != n)
            throw new SpeculatorsException(
                $"aux hidden states must be [{n}, {_draft.NumAuxLayers * _draft.AuxHiddenSize}] (one row per next token), got [{string.Join(", ", auxHidden.shape)}].");
        long verified = VerifiedLength(seq);
        if (startPosition < 0 || startPosition > verified)
            throw new SpeculatorsException(
                $"sequence {seq}: Observe at position {startPosition}, but only positions [0, {verified}) are known to the draft; observations must not leave a gap.");
        foreach (var t in nextTokens)
            if (t < 0 || t >= _draft.TargetVocabSize)
                throw new SpeculatorsException($"sequence {seq}: token id {t} is outside the target vocabulary [0, {_draft.TargetVocabSize}).");
        using var noGrad = torch.no_grad();
        var combined = _draft.CombineAuxHidden(auxHidden);
        var old = _pending[seq];
        if (old != null && startPosition >= old.Start)
        {
            int keep = (int)(startPosition - old.Start);
            using var kept = old.Hidden.narrow(0, 0, keep);
            var merged = torch.cat([kept, combined], 0).DetachFromDisposeScope();
            combined.Dispose();
            var tokens = old.Tokens.Take(keep).Concat(nextTokens.ToArray()).ToArray();
            old.Hidden.Dispose();
            _pending[seq] = new Pending { Start = old.Start, Hidden = merged, Tokens = tokens };
        }
        else
        {
            old?.Hidden.Dispose();
            if (startPosition < _verified[seq]) _verified[seq] = startPosition;
            _pending[seq] = new Pending { Start = startPosition, Hidden = combined.DetachFromDisposeScope(), Tokens = nextTokens.ToArray() };
        }
    }

    /// <summary>
    /// Drafts <paramref name="k"/> tokens for every sequence with a pending observation, batched. Returns, per
    /// sequence slot, the k proposed target-vocabulary ids (empty for sequences without a pending observation).
    /// Afterwards the draft cache holds the verified positions plus k−1 speculative ones.
    /// </summary>
    public long[][] Propose(int k)
    {
        if (k < 1) throw new SpeculatorsException($"the number of speculative tokens must be at least 1, found {k}.");
        int batch = BatchSize;
        var result = new long[batch][];
        var active = Enumerable.Range(0, batch).Where(b => _pending[b] != null).ToArray();
        for (int b = 0; b < batch; b++) result[b] = [];
        if (active.Length == 0) return result;

        using var noGrad = torch.no_grad();
        using var scope = NewDisposeScope();
        var device = _draft.Device;
        // Drop the draft KV entries the observations replace.
        var lengths = _cache.Lengths.ToArray();
        foreach (var b in active) lengths[b] = Math.Min(lengths[b], _pending[b]!.Start);
        _cache.Truncate(lengths);

        // First pass: every pending slot of every active sequence, right-padded to the longest.
        int tMax = active.Max(b => _pending[b]!.Tokens.Length);
        int h = _draft.HiddenSize;
        var ids = new long[batch * tMax];
        var mask = new bool[batch * tMax];
        var pos = new long[batch * tMax];
        var hidden = torch.zeros([batch, tMax, h], _draft.DType, device);
        var lastIndex = new long[batch];
        for (int b = 0; b < batch; b++)
        {
            long start = _cache.Lengths[b];
            for (int t = 0; t < tMax; t++) pos[b * tMax + t] = start + t;
            var p = _pending[b];
            if (p == null) continue;
            for (int t = 0; t < p.Tokens.Length; t++)
            {
                ids[b * tMax + t] = p.Tokens[t];
                mask[b * tMax + t] = true;
            }
            using var dst = hidden[b].narrow(0, 0, p.Tokens.Length);
            dst.copy_(p.Hidden);
            lastIndex[b] = p.Tokens.Length - 1;
        }
        var (draftIds, nextHidden) = Step(
            torch.tensor(ids, [batch, tMax], device: device), hidden, torch.tensor(pos, [batch, tMax], device: device),
            torch.tensor(mask, [batch, tMax], device: device), torch.tensor(lastIndex, [batch, 1], device: device));
        var proposals = new List<long[]> { draftIds };
        for (int step = 1; step < k; step++)
        {
            var stepIds = new long[batch];
            var stepMask = new bool[batch];
            var stepPos = new long[batch];
            foreach (var b in active)
            {
                stepIds[b] = draftIds[b];
                stepMask[b] = true;
            }
            for (int b = 0; b < batch; b++) stepPos[b] = _cache.Lengths[b];
            (draftIds, nextHidden) = Step(
                torch.tensor(stepIds, [batch, 1], device: device), nextHidden, torch.tensor(stepPos, [batch, 1], device: device),
                torch.tensor(stepMask, [batch, 1], device: device), torch.zeros([batch, 1], ScalarType.Int64, device));
            proposals.Add(draftIds);
        }
        foreach (var b in active)
        {
            result[b] = proposals.Select(p => p[b]).ToArray();
            var p = _pending[b]!;
            _verified[b] = p.End;
            p.Hidden.Dispose();
            _pending[b] = null;
        }
        return result;
    }

    /// <summary>
    /// One draft forward over [B, T] slots (right-padded by <paramref name="mask"/>), appended to the cache; samples
    /// at <paramref name="sampleAt"/> [B, 1]. Returns the greedy target ids per row and the fed-back hidden [B, 1, H].
    /// </summary>
    (long[] TargetIds, Tensor NextHidden) Step(Tensor ids, Tensor hidden, Tensor positions, Tensor mask, Tensor sampleAt)
    {
        int batch = (int)ids.shape[0], tokens = (int)ids.shape[1];
        using var backend = new SdpaAttentionBackend(_cache, mask, batch, tokens);
        var embeds = _draft.Embed(ids);
        var x = _draft.RunLayers(embeds, hidden, positions, backend);
        _cache.Commit(backend.ValidNewTokens);
        var index = sampleAt.unsqueeze(-1).expand(batch, 1, _draft.HiddenSize);
        var last = x.gather(1, index);
        var (logits, next) = _draft.Head(last);
        var draftIds = logits.argmax(-1);
        var target = _draft.DraftToTarget(draftIds).reshape(-1).cpu();
        return (target.data<long>().ToArray(), next);
    }

    /// <summary>Forgets positions at and after <paramref name="length"/> of <paramref name="seq"/> (pending ones included).</summary>
    public void Rollback(int seq, long length)
    {
        CheckSeq(seq);
        if (length < 0) throw new SpeculatorsException($"sequence {seq}: cannot roll back to a negative length {length}.");
        var p = _pending[seq];
        if (p != null)
        {
            if (length <= p.Start)
            {
                p.Hidden.Dispose();
                _pending[seq] = null;
            }
            else if (length < p.End)
            {
                int keep = (int)(length - p.Start);
                using var view = p.Hidden.narrow(0, 0, keep);
                var kept = view.clone().DetachFromDisposeScope();
                p.Hidden.Dispose();
                _pending[seq] = new Pending { Start = p.Start, Hidden = kept, Tokens = p.Tokens.Take(keep).ToArray() };
            }
        }
        _verified[seq] = Math.Min(_verified[seq], length);
        var lengths = _cache.Lengths.ToArray();
        lengths[seq] = Math.Min(lengths[seq], length);
        _cache.Truncate(lengths);
    }

    /// <summary>Empties <paramref name="seq"/> (a new request in that slot).</summary>
    public void Reset(int seq) => Rollback(seq, 0);

    public void Dispose()
    {
        foreach (var p in _pending) p?.Hidden.Dispose();
        Array.Clear(_pending);
        _cache.Dispose();
    }
}
