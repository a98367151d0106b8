namespace Speculators.Inference;

/// <summary>
/// A draft that knows the answer: it proposes the continuation of a reference sequence (prompt + the verifier's own
/// greedy output, from a plain decoding run) that the current context is a prefix of. With greedy verification every
/// proposal is accepted, so the mean acceptance length is k + 1 — the ceiling tests and benchmarks compare against.
/// <para>With <c>corruption</c> q &gt; 0 each proposed token is independently replaced by a different random id with
/// probability q, giving a known acceptance profile: per-position acceptance (1 − q)^(i+1) and mean acceptance length
/// 1 + Σ_{i=1..k} (1 − q)^i.</para>
/// Past the end of its reference (or when the context left it) it proposes <c>fallbackToken</c>.
/// </summary>
public sealed class OracleDraft : IDraftProposer
{
    readonly IReadOnlyList<IReadOnlyList<long>> _references;
    readonly double _corruption;
    readonly int _vocabSize;
    readonly long _fallback;
    readonly Random _rng;
    int[] _match = [];
    List<long>[] _context = [];

    /// <param name="references">full token sequences (prompt + continuation) to follow</param>
    /// <param name="vocabSize">target vocabulary size (for corrupted proposals)</param>
    /// <param name="corruption">probability of replacing each proposed token by a wrong one</param>
    /// <param name="seed">seed of the corruption draws</param>
    /// <param name="fallbackToken">proposed where no reference continues the context</param>
    public OracleDraft(IReadOnlyList<IReadOnlyList<long>> references, int vocabSize, double corruption = 0, long seed = 0, long fallbackToken = 0)
    {
        if (corruption < 0 || corruption > 1) throw new ArgumentOutOfRangeException(nameof(corruption), corruption, "must be in [0, 1]");
        if (vocabSize < 2) throw new ArgumentOutOfRangeException(nameof(vocabSize));
        _references = references;
        _corruption = corruption;
        _vocabSize = vocabSize;
        _fallback = fallbackToken;
        _rng = new Random(SpeculativeDecoder.SequenceSeed(seed, -7));
    }

    /// <summary>References built from a plain run: prompt i followed by result i's tokens.</summary>
    public static IReadOnlyList<IReadOnlyList<long>> ReferencesFrom(IReadOnlyList<IReadOnlyList<long>> prompts, GenerationRun plain) =>
        prompts.Select((p, i) => (IReadOnlyList<long>)p.Concat(plain.Results[i].Tokens).ToArray()).ToArray();

    public string Name => _corruption > 0 ? $"oracle(corruption={_corruption})" : "oracle";
    public IReadOnlyList<int> VerifierLayerIds => [];
    public int? DefaultNumSpeculativeTokens => null;
    public long ForwardPasses => 0;

    /// <summary>Expected mean acceptance length for k drafts under greedy verification: 1 + Σ_{i=1..k} (1 − q)^i.</summary>
    public double ExpectedAcceptanceLength(int k)
    {
        double sum = 1, p = 1;
        for (int i = 0; i < k; i++) sum += p *= 1 - _corruption;
        return sum;
    }

    public void Start(int batchSize)
    {
        _match = Enumerable.Repeat(-1, batchSize).ToArray();
        _context = Enumerable.Range(0, batchSize).Select(_ => new List<long>()).ToArray();
    }

    public void Observe(IReadOnlyList<DraftObservation> observations)
    {
        foreach (var o in observations)
        {
            var ctx = _context[o.Sequence];
            ctx.Clear();
            ctx.AddRange(o.Context);
            int m = _match[o.Sequence];
            if (m < 0 || !IsPrefix(ctx, _references[m]))
                _match[o.Sequence] = Enumerable.Range(0, _references.Count).FirstOrDefault(r => IsPrefix(ctx, _references[r]), -1);
        }
    }

    static bool IsPrefix(List<long> context, IReadOnlyList<long> reference)
    {
        if (context.Count > reference.Count) return false;
        for (int i = context.Count - 1; i >= 0; i--) // the tail differs first when it differs at all
            if (context[i] != reference[i]) return false;
        return true;
    }

    public long[][] Propose(IReadOnlyList<int> sequences, int numTokens)
    {
        var result = new long[sequences.Count][];
        for (int j = 0; j < sequences.Count; j++)
        {
            int s = sequences[j];
            var ctx = _context[s];
            var reference = _match[s] >= 0 ? _references[_match[s]] : null;
            var row = new long[numTokens];
            for (int i = 0; i < numTokens; i++)
            {
                int at = ctx.Count + i;
                long token = reference != null && at < reference.Count ? reference[at] : _fallback;
                if (_corruption > 0 && _rng.NextDouble() < _corruption)
                    token = (token + 1 + _rng.Next(_vocabSize - 1)) % _vocabSize;
                row[i] = token;
            }
            result[j] = row;
        }
        return result;
    }

    public void Dispose() { }
}

/// <summary>A draft that proposes uniformly random target ids: the floor (acceptance length ≈ 1 + k/V at temperature 0).</summary>
public sealed class RandomDraft : IDraftProposer
{
    readonly int _vocabSize;
    readonly Random _rng;

    public RandomDraft(int vocabSize, long seed = 0)
    {
        if (vocabSize < 1) throw new ArgumentOutOfRangeException(nameof(vocabSize));
        _vocabSize = vocabSize;
        _rng = new Random(SpeculativeDecoder.SequenceSeed(seed, -11));
    }

    public string Name => "random";
    public IReadOnlyList<int> VerifierLayerIds => [];
    public int? DefaultNumSpeculativeTokens => null;
    public long ForwardPasses => 0;
    public void Start(int batchSize) { }
    public void Observe(IReadOnlyList<DraftObservation> observations) { }

    public long[][] Propose(IReadOnlyList<int> sequences, int numTokens) =>
        sequences.Select(_ => Enumerable.Range(0, numTokens).Select(_ => (long)_rng.Next(_vocabSize)).ToArray()).ToArray();

    public void Dispose() { }
}
