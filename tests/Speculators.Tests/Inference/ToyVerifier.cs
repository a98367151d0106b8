using Speculators.Inference;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Inference;

/// <summary>
/// A verifier double whose next-token logits are a pure function of the whole prefix (a rolling hash), so any
/// bookkeeping slip of the decoder (a rejected draft left in the cache, a wrong length, a wrong position) changes
/// the outputs. Or, with <see cref="Markov"/>, logits = log P(· | previous token) for distribution tests.
/// Hidden states are a deterministic function of the prefix too. Enforces the context limit and records calls.
/// </summary>
public sealed class ToyVerifier : IVerifier
{
    public int VocabSize { get; }
    public int HiddenSize => 4;
    public int NumLayers => 6;
    public int MaxContextLength { get; }
    public Device Device => torch.CPU;
    public string Description => "toy verifier";
    /// <summary>Scale of the hashed logits (larger = peakier distributions).</summary>
    public double Scale { get; init; } = 3.0;
    public long Salt { get; init; }
    /// <summary>When set: logits[v] = log Markov[prev][v] (prev = the token at the position).</summary>
    public double[][]? Markov { get; init; }
    /// <summary>Every Extend, in order: the token counts per row and whether only the last logits were asked for (a prefill).</summary>
    public List<(int[] Counts, bool LastOnly)> ExtendCalls { get; } = new();

    public ToyVerifier(int vocabSize, int maxContext = 512)
    {
        VocabSize = vocabSize;
        MaxContextLength = maxContext;
    }

    public IVerifierSession StartSession(int batchSize, IReadOnlyList<int> captureLayerIds) => new Session(this, batchSize, captureLayerIds.Count);

    static ulong Mix(ulong z)
    {
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return z ^ (z >> 31);
    }

    static double Unit(ulong h) => (Mix(h) >> 11) * (1.0 / (1UL << 53));

    /// <summary>Logits after the prefix whose rolling hash is <paramref name="h"/> and last token <paramref name="last"/>.</summary>
    public float[] LogitsAt(ulong h, long last)
    {
        var l = new float[VocabSize];
        if (Markov != null)
        {
            for (int v = 0; v < VocabSize; v++) l[v] = (float)Math.Log(Markov[last][v]);
            return l;
        }
        for (int v = 0; v < VocabSize; v++)
        {
            // Box-Muller from two hashed uniforms.
            double u1 = Math.Max(Unit(h * 31 + (ulong)v * 2 + 1), 1e-12), u2 = Unit(h * 31 + (ulong)v * 2 + 2);
            l[v] = (float)(Scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return l;
    }

    public ulong Roll(ulong h, long token) => Mix(unchecked(h * 1_000_003UL + (ulong)token + 0x9E37UL + (ulong)Salt));

    /// <summary>Greedy continuation computed directly (the reference for tests).</summary>
    public List<long> GreedyReference(IReadOnlyList<long> prompt, int maxNew, long? eos)
    {
        ulong h = 0;
        foreach (var t in prompt) h = Roll(h, t);
        var outp = new List<long>();
        long last = prompt[^1];
        while (outp.Count < maxNew && prompt.Count + outp.Count < MaxContextLength)
        {
            var l = LogitsAt(h, last);
            long best = 0;
            for (int v = 1; v < l.Length; v++) if (l[v] > l[best]) best = v;
            outp.Add(best);
            if (eos == best) break;
            h = Roll(h, best);
            last = best;
        }
        return outp;
    }

    sealed class Session : IVerifierSession
    {
        readonly ToyVerifier _m;
        readonly List<long>[] _tokens;
        readonly List<ulong>[] _hashes;
        readonly int _aux;

        public Session(ToyVerifier m, int batch, int aux)
        {
            _m = m;
            _aux = aux;
            _tokens = Enumerable.Range(0, batch).Select(_ => new List<long>()).ToArray();
            _hashes = Enumerable.Range(0, batch).Select(_ => new List<ulong>()).ToArray();
        }

        public int BatchSize => _tokens.Length;
        public IReadOnlyList<long> Lengths => _tokens.Select(t => (long)t.Count).ToArray();

        public VerifierStep Extend(IReadOnlyList<IReadOnlyList<long>> tokens, bool lastOnly)
        {
            Assert.Equal(BatchSize, tokens.Count);
            var counts = tokens.Select(t => t.Count).ToArray();
            _m.ExtendCalls.Add((counts, lastOnly));
            int T = Math.Max(1, counts.Max());
            int outT = lastOnly ? 1 : T;
            int v = _m.VocabSize, a = Math.Max(1, _aux) * _m.HiddenSize;
            var logits = new float[BatchSize * outT * v];
            var hidden = new float[BatchSize * T * a];
            for (int b = 0; b < BatchSize; b++)
            {
                for (int t = 0; t < counts[b]; t++)
                {
                    long tok = tokens[b][t];
                    Assert.InRange(tok, 0, v - 1);
                    Assert.True(_tokens[b].Count < _m.MaxContextLength, $"row {b}: position {_tokens[b].Count} is past the context {_m.MaxContextLength}");
                    ulong h = _m.Roll(_hashes[b].Count == 0 ? 0 : _hashes[b][^1], tok);
                    _tokens[b].Add(tok);
                    _hashes[b].Add(h);
                    for (int j = 0; j < a; j++) hidden[(b * T + t) * a + j] = (float)Unit(h + (ulong)j);
                    if (lastOnly && t != counts[b] - 1) continue;
                    var l = _m.LogitsAt(h, tok);
                    Array.Copy(l, 0, logits, (b * outT + (lastOnly ? 0 : t)) * v, v);
                }
            }
            return new VerifierStep
            {
                Logits = torch.tensor(logits, [BatchSize, outT, v]),
                AuxHidden = _aux > 0 ? torch.tensor(hidden, [BatchSize, T, a]) : null,
                Counts = counts,
            };
        }

        public void Truncate(IReadOnlyList<long> lengths)
        {
            for (int b = 0; b < BatchSize; b++)
            {
                Assert.InRange(lengths[b], 0, _tokens[b].Count);
                _tokens[b].RemoveRange((int)lengths[b], _tokens[b].Count - (int)lengths[b]);
                _hashes[b].RemoveRange((int)lengths[b], _hashes[b].Count - (int)lengths[b]);
            }
        }

        public void Dispose() { }
    }
}
