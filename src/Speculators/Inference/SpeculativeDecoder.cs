using System.Diagnostics;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>
/// Batched decoding with an optional draft, as vLLM's engine does it for chain speculative decoding:
/// <list type="number">
/// <item>prefill: one verifier forward over every prompt (right-padded) gives the first token; the draft observes the prompt
/// (positions 0…L−1 with the next tokens x_1…x_L and the verifier's captured hidden states);</item>
/// <item>each step: the draft proposes k tokens per running sequence; one verifier forward over <c>[last token, d_1…d_k]</c>
/// gives k + 1 distributions; the rejection sampler accepts a prefix and emits 1…k+1 tokens; the verifier's cache is rolled
/// back past the accepted tokens; the draft observes the accepted positions;</item>
/// <item>a sequence stops at max-new-tokens, at the context limit, or at EOS — tokens after the stop inside an accepted run are
/// discarded, while the counters include them (vLLM's scheduler counts before it trims).</item>
/// </list>
/// Without a draft the same loop is plain greedy/sampled decoding (one token per step). Sequences of different lengths share
/// a batch of rows, each with its own cache length; a finished row sits out as an empty row until at least half the rows are
/// free, then the free rows are refilled with the next prompts in one prefill (continuous batching).
/// </summary>
public sealed class SpeculativeDecoder
{
    readonly IVerifier _verifier;
    readonly IDraftProposer? _draft;

    /// <param name="verifier">the target model</param>
    /// <param name="draft">the draft, or null for plain decoding</param>
    public SpeculativeDecoder(IVerifier verifier, IDraftProposer? draft = null)
    {
        _verifier = verifier;
        _draft = draft;
    }

    public IVerifier Verifier => _verifier;
    public IDraftProposer? Draft => _draft;

    /// <summary>Plain (non-speculative) generation: the API the quickstart's data regeneration calls.</summary>
    public static GenerationRun GeneratePlain(IVerifier verifier, IReadOnlyList<IReadOnlyList<long>> prompts, GenerationOptions options, Progress? progress = null) =>
        new SpeculativeDecoder(verifier).Generate(prompts, options, progress);

    /// <summary>Generates a completion for every prompt (token ids) in <see cref="GenerationOptions.BatchSize"/> rows (refilled as sequences finish).</summary>
    /// <param name="progress">advanced by the number of generated tokens, if given</param>
    public GenerationRun Generate(IReadOnlyList<IReadOnlyList<long>> prompts, GenerationOptions options, Progress? progress = null)
    {
        options.Validate();
        int maxContext = Math.Min(options.MaxContextLength ?? _verifier.MaxContextLength, _verifier.MaxContextLength);
        if (_verifier.VocabSize < 2) throw new SpeculatorsException($"the verifier's vocabulary has {_verifier.VocabSize} tokens; need at least 2.");
        CheckPrompts(prompts, _verifier.VocabSize, maxContext);
        int k = _draft == null ? 0 : options.NumSpeculativeTokens;
        var results = new GenerationResult[prompts.Count];
        var total = new SpecDecodingStats(k);
        var clock = new Clocks();
        long draftPassesBefore = _draft?.ForwardPasses ?? 0;
        var wall = Stopwatch.StartNew();
        if (prompts.Count > 0) RunPool(prompts, options, k, maxContext, results, total, clock, progress);
        wall.Stop();
        return new GenerationRun
        {
            Results = results,
            Stats = total,
            NumSpeculativeTokens = k,
            Timings = new GenerationTimings
            {
                TotalSeconds = wall.Elapsed.TotalSeconds,
                PrefillSeconds = clock.Prefill,
                VerifySeconds = clock.Verify,
                DraftSeconds = clock.Draft,
                DecodeSteps = clock.Steps,
                DraftForwardPasses = (_draft?.ForwardPasses ?? 0) - draftPassesBefore,
                GeneratedTokens = results.Sum(r => (long)r.Tokens.Length),
            },
        };
    }

    /// <summary>
    /// Checks prompts before any decoding: non-empty, ids inside the vocabulary, no longer than the context.
    /// Throws <see cref="SpeculatorsException"/> naming the first bad prompt.
    /// </summary>
    public static void CheckPrompts(IReadOnlyList<IReadOnlyList<long>> prompts, int vocabSize, int maxContext)
    {
        for (int i = 0; i < prompts.Count; i++) CheckPrompt(prompts[i], vocabSize, maxContext, $"prompt {i}");
    }

    /// <summary>Checks one prompt; <paramref name="name"/> starts the message (e.g. "prompt 3" or "file.jsonl:4").</summary>
    public static void CheckPrompt(IReadOnlyList<long> p, int vocabSize, int maxContext, string name)
    {
        if (p.Count == 0) throw new SpeculatorsException($"{name} is empty (0 tokens).");
        if (p.Count > maxContext)
            throw new SpeculatorsException(
                $"{name} has {p.Count} tokens, longer than the verifier's context of {maxContext} tokens (max_position_embeddings); shorten it or drop it.");
        for (int t = 0; t < p.Count; t++)
            if (p[t] < 0 || p[t] >= vocabSize)
                throw new SpeculatorsException($"{name} token {t} is id {p[t]}, outside the verifier's vocabulary [0, {vocabSize}).");
    }

    sealed class Clocks
    {
        public double Prefill, Verify, Draft;
        public long Steps;
    }

    sealed class Seq
    {
        public required int Index;
        public required List<long> Context;
        public required int PromptLength;
        public readonly List<long> Output = new();
        public readonly List<float> Gaps = new();
        public readonly List<float> Tops = new();
        public required Random Rng;
        public readonly SpecDecodingStats Stats = new();
        public FinishReason? Reason;
        public int Steps;
        public double Started;
        public double Seconds;
        public List<DecodeStep>? StepLog;
        public bool Running => Reason == null;
    }

    /// <summary>
    /// Decodes all prompts through <see cref="GenerationOptions.BatchSize"/> rows: rows whose sequence finished are refilled
    /// with the next prompts (their cache and draft state restart at position 0) once at least half the rows are free or none
    /// is running, so one long answer does not hold a whole batch and refill prefills are shared.
    /// </summary>
    void RunPool(IReadOnlyList<IReadOnlyList<long>> prompts, GenerationOptions o, int k, int maxContext,
        GenerationResult[] results, SpecDecodingStats total, Clocks clock, Progress? progress)
    {
        int b = Math.Min(o.BatchSize, prompts.Count);
        int refillAt = Math.Max(1, b / 2);
        var device = _verifier.Device;
        var layerIds = _draft?.VerifierLayerIds ?? [];
        var queue = new Queue<int>(Enumerable.Range(0, prompts.Count));
        var seqs = new Seq?[b];
        var poolClock = Stopwatch.StartNew();
        using var session = _verifier.StartSession(b, layerIds);
        _draft?.Start(b);

        void Finish(int row)
        {
            var s = seqs[row]!;
            results[s.Index] = new GenerationResult
            {
                Index = s.Index,
                PromptLength = s.PromptLength,
                Tokens = s.Output.ToArray(),
                FinishReason = s.Reason!.Value,
                TopLogitGaps = o.Greedy ? s.Gaps.ToArray() : null,
                TopLogits = o.Greedy ? s.Tops.ToArray() : null,
                Stats = s.Stats,
                DecodeSteps = s.Steps,
                Seconds = s.Seconds - s.Started,
                Steps = s.StepLog,
            };
            seqs[row] = null;
        }

        // Prefill of the free rows: the whole prompt, logits at its last token; the draft observes the prompt.
        void Refill()
        {
            using var scope = NewDisposeScope();
            var rows = Enumerable.Range(0, b).Where(i => seqs[i] == null).Take(queue.Count).ToArray();
            var lengths = session.Lengths.ToArray();
            var tokens = new IReadOnlyList<long>[b];
            for (int i = 0; i < b; i++) tokens[i] = Array.Empty<long>();
            foreach (int i in rows)
            {
                int index = queue.Dequeue();
                seqs[i] = new Seq
                {
                    Index = index,
                    Context = new List<long>(prompts[index]),
                    PromptLength = prompts[index].Count,
                    Rng = new Random(SequenceSeed(o.Seed, index)),
                    StepLog = o.RecordSteps ? new List<DecodeStep>() : null,
                    Started = poolClock.Elapsed.TotalSeconds,
                };
                lengths[i] = 0;
                tokens[i] = prompts[index];
            }
            session.Truncate(lengths);
            var sw = Stopwatch.StartNew();
            using var step = session.Extend(tokens, lastOnly: true);
            Sync(device);
            clock.Prefill += sw.Elapsed.TotalSeconds;
            var dist = Distributions.From(step.Logits, o);
            var observations = new List<DraftObservation>();
            foreach (int i in rows)
            {
                var s = seqs[i]!;
                long token = dist.Pick(i, 0, s.Rng, out float gap, out float top);
                Append(s, token, gap, top, o, maxContext, poolClock, progress);
                if (_draft != null && s.Running)
                    observations.Add(new DraftObservation(i, 0, s.Context.Skip(1).ToArray(),
                        step.AuxHidden?[i].narrow(0, 0, s.PromptLength), s.Context.ToArray()));
            }
            if (_draft != null && observations.Count > 0) TimeDraft(clock, device, () => _draft.Observe(observations));
            foreach (int i in rows)
                if (!seqs[i]!.Running) Finish(i);
        }

        bool AnyRunning() => seqs.Any(s => s != null);
        while (queue.Count > 0 && (!AnyRunning() || seqs.Count(s => s == null) >= refillAt))
            Refill();

        var empty = Array.Empty<long>();
        while (AnyRunning())
        {
            using var scope = NewDisposeScope();
            var running = Enumerable.Range(0, b).Where(i => seqs[i] != null).ToArray();
            var drafts = new long[b][];
            if (_draft != null)
            {
                var ks = running.Select(i => DraftsAllowed(k, maxContext, seqs[i]!.Context.Count)).ToArray();
                var ask = running.Where((_, j) => ks[j] > 0).ToArray();
                if (ask.Length > 0)
                {
                    int kMax = ks.Max();
                    long[][] proposed = [];
                    TimeDraft(clock, device, () => proposed = _draft.Propose(ask, kMax));
                    if (proposed.Length != ask.Length)
                        throw new InvalidOperationException($"draft '{_draft.Name}' returned {proposed.Length} proposals for {ask.Length} sequences.");
                    for (int j = 0; j < ask.Length; j++)
                    {
                        int need = DraftsAllowed(k, maxContext, seqs[ask[j]]!.Context.Count);
                        if (proposed[j].Length < need)
                            throw new InvalidOperationException($"draft '{_draft.Name}' proposed {proposed[j].Length} tokens; {need} were asked for.");
                        drafts[ask[j]] = proposed[j].Length == need ? proposed[j] : proposed[j][..need];
                    }
                }
            }
            var prevLen = session.Lengths.ToArray();
            var tokens = new IReadOnlyList<long>[b];
            for (int i = 0; i < b; i++)
            {
                var seq = seqs[i];
                if (seq == null) { tokens[i] = empty; continue; }
                var d = drafts[i] ?? empty;
                var row = new long[1 + d.Length];
                row[0] = seq.Context[^1];
                d.CopyTo(row, 1);
                tokens[i] = row;
                if (prevLen[i] != seq.Context.Count - 1)
                    throw new InvalidOperationException($"sequence {seq.Index}: the verifier cache holds {prevLen[i]} tokens, expected {seq.Context.Count - 1}.");
            }

            var sw = Stopwatch.StartNew();
            using var step = session.Extend(tokens, lastOnly: false);
            Sync(device);
            clock.Verify += sw.Elapsed.TotalSeconds;
            clock.Steps++;
            var dist = Distributions.From(step.Logits, o);
            var newLen = session.Lengths.ToArray();
            var observations = new List<DraftObservation>();
            foreach (int i in running)
            {
                var s = seqs[i]!;
                var d = drafts[i] ?? empty;
                var outcome = dist.Verify(i, d, s.Rng);
                s.Stats.Observe(d.Length, outcome.Accepted);
                total.Observe(d.Length, outcome.Accepted);
                s.Steps++;
                s.StepLog?.Add(new DecodeStep(d, outcome.Accepted, outcome.Emitted));
                for (int j = 0; j < outcome.Emitted.Length && s.Running; j++)
                {
                    float gap = 0, top = 0;
                    dist.Gap(i, j, out gap, out top);
                    Append(s, outcome.Emitted[j], gap, top, o, maxContext, poolClock, progress);
                }
                newLen[i] = prevLen[i] + 1 + outcome.Accepted;
                if (_draft != null && s.Running)
                    observations.Add(new DraftObservation(i, prevLen[i], outcome.Emitted,
                        step.AuxHidden?[i].narrow(0, 0, outcome.Accepted + 1), s.Context.ToArray()));
            }
            session.Truncate(newLen);
            if (_draft != null && observations.Count > 0) TimeDraft(clock, device, () => _draft.Observe(observations));
            foreach (int i in running)
                if (!seqs[i]!.Running) Finish(i);
            while (queue.Count > 0 && (!AnyRunning() || seqs.Count(x => x == null) >= refillAt))
                Refill();
        }

    }

    /// <summary>
    /// Drafts a sequence of <paramref name="committed"/> tokens may verify: vLLM's scheduler feeds at most
    /// <c>max_model_len − 1 − num_computed_tokens</c> tokens, so that even the bonus token of a fully accepted run
    /// still fits the context; with <c>num_computed = committed − 1</c> that leaves <c>max_model_len − 1 − committed</c> drafts.
    /// </summary>
    internal static int DraftsAllowed(int k, int maxContext, int committed) => Math.Max(0, Math.Min(k, maxContext - 1 - committed));

    /// <summary>Appends one token and applies vLLM's stop rules in its order: length limits, then EOS.</summary>
    static void Append(Seq s, long token, float gap, float top, GenerationOptions o, int maxContext, Stopwatch clock, Progress? progress)
    {
        s.Output.Add(token);
        s.Context.Add(token);
        s.Gaps.Add(gap);
        s.Tops.Add(top);
        progress?.Advance();
        if (s.Output.Count >= o.MaxNewTokens) s.Reason = FinishReason.Length;
        else if (s.Context.Count >= maxContext) s.Reason = FinishReason.ContextLength;
        else if (!o.IgnoreEos && o.EosTokenIds.Contains(token)) s.Reason = FinishReason.Stop;
        if (s.Reason != null) s.Seconds = clock.Elapsed.TotalSeconds;
    }

    void TimeDraft(Clocks clock, Device device, Action action)
    {
        var sw = Stopwatch.StartNew();
        action();
        Sync(device);
        clock.Draft += sw.Elapsed.TotalSeconds;
    }

    static void Sync(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }

    /// <summary>The generator seed of sequence <paramref name="index"/> for a call seeded with <paramref name="seed"/> (SplitMix64).</summary>
    public static int SequenceSeed(long seed, int index)
    {
        ulong z = unchecked((ulong)seed + 0x9E3779B97F4A7C15UL * (ulong)(index + 1));
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        z ^= z >> 31;
        return (int)(z & 0x7FFFFFFF);
    }

    /// <summary>
    /// The verifier's next-token distributions of one forward, copied to the host in the form the decoding
    /// mode needs: greedy → top-2 ids and logits per position; sampling → probabilities softmax(logits / T) in fp32.
    /// </summary>
    sealed class Distributions
    {
        long[]? _top2Ids;      // [B, T, 2]
        float[]? _top2Values;  // [B, T, 2]
        float[]? _probs;       // [B, T, V]
        int _t, _v;

        public static Distributions From(Tensor logits, GenerationOptions o)
        {
            using var scope = NewDisposeScope();
            var d = new Distributions { _t = (int)logits.shape[1], _v = (int)logits.shape[2] };
            var f = logits.to(ScalarType.Float32);
            if (o.Greedy)
            {
                var (values, ids) = f.topk(2, dim: -1);
                d._top2Values = values.cpu().data<float>().ToArray();
                d._top2Ids = ids.to(ScalarType.Int64).cpu().data<long>().ToArray();
            }
            else
            {
                d._probs = f.div(o.Temperature).softmax(-1).cpu().data<float>().ToArray();
            }
            return d;
        }

        /// <summary>The token at position <paramref name="t"/> of row <paramref name="row"/> (no drafts: prefill or plain decoding).</summary>
        public long Pick(int row, int t, Random rng, out float gap, out float top)
        {
            Gap(row, t, out gap, out top);
            if (_top2Ids != null) return _top2Ids[((long)row * _t + t) * 2];
            return RejectionSampler.SampleCategorical(_probs.AsSpan((int)(((long)row * _t + t) * _v), _v), rng);
        }

        public void Gap(int row, int t, out float gap, out float top)
        {
            if (_top2Values == null) { gap = 0; top = 0; return; }
            long at = ((long)row * _t + t) * 2;
            top = _top2Values[at];
            gap = _top2Values[at] - _top2Values[at + 1];
        }

        public VerifyOutcome Verify(int row, long[] drafts, Random rng)
        {
            int n = drafts.Length + 1;
            if (_top2Ids != null)
            {
                var argmax = new long[n];
                for (int t = 0; t < n; t++) argmax[t] = _top2Ids[((long)row * _t + t) * 2];
                return RejectionSampler.Greedy(drafts, argmax);
            }
            return RejectionSampler.Random(drafts, _probs.AsSpan((int)((long)row * _t * _v), n * _v), _v, rng);
        }
    }
}
