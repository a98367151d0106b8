using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>One row to run: its dataset index and the tokens to feed (already truncated if the store truncates).</summary>
public readonly record struct GenerationRequest(int Row, long[] Tokens);

/// <summary>
/// Runs the verifier in-process to produce hidden states (offline <c>datagen</c> and online providers share it).
/// Rows are grouped by <see cref="TokenBudgetBatcher"/> and each group is one prefill: right-padded to the
/// longest row, with an attention mask, so several rows share the matmuls. Padding cannot reach valid
/// positions: attention is causal and the pad tokens sit after every valid token of their row (and the
/// mask excludes them as keys anyway), and positions count valid tokens only. Captures are the aux ids then
/// N; the lm_head is skipped.
/// <para>
/// Thread-safety: prefills are serialized by a lock (one forward at a time; libtorch's intra-op threads,
/// <c>torch.get_num_threads()</c>, parallelize inside it — this class never changes the thread count). Results
/// are CPU tensors in the spec dtype, detached from dispose scopes; callers own them.
/// </para>
/// </summary>
public sealed class HiddenStateGenerator : IDisposable
{
    readonly object _gate = new();
    readonly bool _ownsModel;
    long _tokensRun, _paddedTokensRun, _prefills;

    public CausalLM Model { get; }
    public HiddenStateSpec Spec { get; }
    /// <summary>Padded tokens per prefill (B × longest row).</summary>
    public long BatchTokens { get; }
    /// <summary>Valid tokens run so far.</summary>
    public long TokensRun => Interlocked.Read(ref _tokensRun);
    /// <summary>Tokens run including padding.</summary>
    public long PaddedTokensRun => Interlocked.Read(ref _paddedTokensRun);
    public long Prefills => Interlocked.Read(ref _prefills);

    /// <param name="model">the verifier (any device, any float dtype)</param>
    /// <param name="spec">capture ids (aux then N), hidden size and output dtype; checked against the model</param>
    /// <param name="batchTokens">token budget of one prefill, padding included</param>
    /// <param name="ownsModel">dispose <paramref name="model"/> with this generator</param>
    public HiddenStateGenerator(CausalLM model, HiddenStateSpec spec, long batchTokens = 16384, bool ownsModel = false)
    {
        if (spec.NumHiddenLayers != model.Config.NumLayers)
            throw new SpeculatorsException(
                $"the hidden-state layout ends with layer {spec.NumHiddenLayers}, but the verifier has {model.Config.NumLayers} layers.");
        if (spec.HiddenSize != model.Config.HiddenSize)
            throw new SpeculatorsException($"the hidden-state layout has hidden size {spec.HiddenSize}, but the verifier has {model.Config.HiddenSize}.");
        if (batchTokens < 1) throw new SpeculatorsException($"--batch-tokens must be positive, found {batchTokens}.");
        Model = model;
        Spec = spec;
        BatchTokens = batchTokens;
        _ownsModel = ownsModel;
    }

    /// <summary>
    /// Runs every request, batched by the token budget, yielding one array per prefill (samples in the order of
    /// that prefill, longest first). Lazy: a prefill runs when its batch is requested, so a caller can write
    /// files as they come and stop early.
    /// </summary>
    public IEnumerable<HiddenStateSample[]> GenerateBatches(IReadOnlyList<GenerationRequest> requests, CancellationToken cancellation = default)
    {
        var lengths = requests.Select(r => r.Tokens.Length).ToArray();
        foreach (var batch in TokenBudgetBatcher.Plan(lengths, BatchTokens))
        {
            cancellation.ThrowIfCancellationRequested();
            yield return RunBatch(batch.Select(i => requests[i]).ToList());
        }
    }

    /// <summary>Runs every request (batched) and returns the samples in request order.</summary>
    public HiddenStateSample[] Generate(IReadOnlyList<GenerationRequest> requests, CancellationToken cancellation = default)
    {
        var result = new HiddenStateSample[requests.Count];
        var position = new Dictionary<int, Queue<int>>();
        for (int i = 0; i < requests.Count; i++)
        {
            if (requests[i].Tokens.Length == 0)
                throw new SpeculatorsException($"row {requests[i].Row} has no tokens; nothing to run.");
            if (!position.TryGetValue(requests[i].Row, out var q)) position[requests[i].Row] = q = new Queue<int>();
            q.Enqueue(i);
        }
        try
        {
            foreach (var batch in GenerateBatches(requests, cancellation))
                foreach (var s in batch)
                    result[position[s.Row].Dequeue()] = s;
            return result;
        }
        catch
        {
            foreach (var s in result) s?.Dispose();
            throw;
        }
    }

    /// <summary>One prefill over <paramref name="rows"/> (right-padded to the longest). Samples in input order.</summary>
    public HiddenStateSample[] RunBatch(IReadOnlyList<GenerationRequest> rows)
    {
        if (rows.Count == 0) return [];
        int longest = rows.Max(r => r.Tokens.Length);
        if (longest == 0 || rows.Any(r => r.Tokens.Length == 0))
            throw new SpeculatorsException($"row {rows.First(r => r.Tokens.Length == 0).Row} has no tokens; nothing to run.");
        int b = rows.Count;
        bool padded = rows.Any(r => r.Tokens.Length != longest);
        var ids = new long[b * longest];
        var mask = padded ? new long[b * longest] : null;
        for (int r = 0; r < b; r++)
        {
            var t = rows[r].Tokens;
            Array.Copy(t, 0, ids, r * longest, t.Length);
            if (mask != null) Array.Fill(mask, 1L, r * longest, t.Length);
            // Padding repeats the row's last token: any in-vocabulary id works, it is masked out.
            if (t.Length < longest) Array.Fill(ids, t[^1], r * longest + t.Length, longest - t.Length);
        }

        var samples = new HiddenStateSample[b];
        lock (_gate)
        {
            using var scope = NewDisposeScope();
            var input = torch.tensor(ids, [b, longest], ScalarType.Int64, Model.Device);
            var attention = mask == null ? null : torch.tensor(mask, [b, longest], ScalarType.Int64, Model.Device);
            using var output = Model.Forward(input, attentionMask: attention, captureLayerIds: Spec.LayerIds.ToArray(), logits: LogitsSelection.None);
            var hidden = output.HiddenStates!; // [B, L, A+1, H], ids ascending = aux then N
            if (!output.CaptureLayerIds.SequenceEqual(Spec.LayerIds))
                throw new InvalidOperationException($"captured [{string.Join(", ", output.CaptureLayerIds)}], expected [{string.Join(", ", Spec.LayerIds)}]");
            var cpu = hidden.to(Spec.DType).cpu();
            try
            {
                for (int r = 0; r < b; r++)
                {
                    int len = rows[r].Tokens.Length;
                    // A compact copy per row, owned by the sample (not a view of the batch tensor).
                    var one = cpu[r].narrow(0, 0, len).clone();
                    samples[r] = new HiddenStateSample(rows[r].Row, rows[r].Tokens, one, SampleOrigin.Generated);
                }
            }
            catch
            {
                foreach (var s in samples) s?.Dispose();
                throw;
            }
        }
        Interlocked.Add(ref _tokensRun, rows.Sum(r => (long)r.Tokens.Length));
        Interlocked.Add(ref _paddedTokensRun, (long)b * longest);
        Interlocked.Increment(ref _prefills);
        return samples;
    }

    /// <summary>
    /// Matmul FLOPs of one prefill of <paramref name="tokens"/> tokens in one sequence up to layer N (no lm_head):
    /// 2·(q,k,v,o and MLP weights) per token plus causal attention 2·T·(heads·head_dim) per layer and token
    /// (QKᵀ and AV, each half of T² on average). For throughput figures.
    /// </summary>
    public static double PrefillFlops(DecoderConfig c, long tokens)
    {
        double qDim = (double)c.NumHeads * c.HeadDim, kvDim = (double)c.NumKvHeads * c.HeadDim;
        double weights = c.HiddenSize * (qDim + 2 * kvDim) + qDim * c.HiddenSize + 3.0 * c.HiddenSize * c.IntermediateSize;
        double perLayer = 2.0 * weights * tokens + 2.0 * qDim * tokens * tokens; // 2 matmuls × 2 FLOP × T²/2
        return perLayer * c.NumLayers;
    }

    public void Dispose()
    {
        if (_ownsModel) Model.Dispose();
    }
}
