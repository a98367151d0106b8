using System.Globalization;
using Speculators.Algorithms.Eagle3;
using Speculators.Inference;
using Speculators.Modeling;
using Speculators.Reporting;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Speculative vs plain decoding, with the theoretical ceiling τ / (1 + k·c_d/c_v) for the measured acceptance length τ and
/// draft/verifier cost ratio, so the engine's own overhead (and, on CPU, the cost of verifying k + 1 tokens) is visible.
/// <para>Default (synthetic) mode: a random verifier and a random Eagle-3 draft built from it. The draft's forward passes run
/// for their real cost, but its proposals are replaced by the verifier's own greedy continuation, each token corrupted with
/// probability q — a "trained pair" with a known acceptance profile (1 + Σ (1 − q)^i). With <c>--speculator</c> it evaluates
/// any checkpoint on a prompt file instead (the same library call as <c>speculators evaluate</c>).</para>
/// </summary>
public sealed class SpeculativeDecodingBench : IBenchmark
{
    public string Name => "speculative";
    public string Description => "speculative vs plain decoding: speedup against the τ/(1+k·c_d/c_v) ceiling (synthetic pair, or --speculator CKPT --prompts FILE)";

    static string Arg(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    static int IntArg(string[] a, string n, int d) => int.Parse(Arg(a, n, d.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
    static double DoubleArg(string[] a, string n, double d) => double.Parse(Arg(a, n, d.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);

    public int Run(string[] args)
    {
        if (args.Contains("--help"))
        {
            Console.WriteLine("""
                speculators-bench speculative [--k 3] [--max-new-tokens 64] [--prompts-count 4] [--corruption 0.2] [--dtype float32|bfloat16]
                                              [--hidden 256] [--layers 6] [--vocab 4096] [--threads N]
                speculators-bench speculative --speculator CKPT [--verifier M] --prompts FILE [--max-new-tokens N] [--limit N] [--dtype ...]
                """);
            return 0;
        }
        if (Arg(args, "--threads", "") is { Length: > 0 } th) torch.set_num_threads(int.Parse(th, CultureInfo.InvariantCulture));
        var dtype = Arg(args, "--dtype", "float32") is "bfloat16" or "bf16" ? ScalarType.BFloat16 : ScalarType.Float32;
        double peak = MatmulPeak.Measure(dtype, 1024);
        Console.WriteLine($"baseline: libtorch {dtype} matmul peak {peak:F0} GFLOP/s ({torch.get_num_threads()} threads)");
        return Arg(args, "--speculator", "") is { Length: > 0 } ckpt ? RunCheckpoint(args, ckpt, dtype) : RunSynthetic(args, dtype, peak);
    }

    static int RunCheckpoint(string[] args, string ckpt, ScalarType dtype)
    {
        var outcome = EvaluationRunner.Run(new EvaluationRequest
        {
            Speculator = ckpt,
            Verifier = Arg(args, "--verifier", "") is { Length: > 0 } v ? v : null,
            Prompts = Arg(args, "--prompts", "") is { Length: > 0 } pf ? pf : throw new SpeculatorsException("--speculator needs --prompts FILE."),
            MaxNewTokens = IntArg(args, "--max-new-tokens", 128),
            Limit = Arg(args, "--limit", "") is { Length: > 0 } l ? int.Parse(l, CultureInfo.InvariantCulture) : null,
            NumSpeculativeTokens = Arg(args, "--k", "") is { Length: > 0 } k ? int.Parse(k, CultureInfo.InvariantCulture) : null,
            VerifierDtype = dtype,
            Command = "speculators-bench speculative " + string.Join(" ", args),
        });
        Print(outcome.Result);
        return 0;
    }

    static int RunSynthetic(string[] args, ScalarType dtype, double peak)
    {
        int k = IntArg(args, "--k", 3), maxNew = IntArg(args, "--max-new-tokens", 64), count = IntArg(args, "--prompts-count", 4);
        int hidden = IntArg(args, "--hidden", 256), layers = IntArg(args, "--layers", 6), vocab = IntArg(args, "--vocab", 4096);
        double q = DoubleArg(args, "--corruption", 0.2);
        var options = new TinyModelOptions
        {
            NumLayers = layers, HiddenSize = hidden, IntermediateSize = 3 * hidden, NumHeads = Math.Max(1, hidden / 64), NumKvHeads = Math.Max(1, hidden / 128),
            VocabSize = vocab, MaxPositionEmbeddings = 4096, Seed = 1, InitStd = 0.05, WriteTokenizer = false,
        };
        using var model = TinyModelFactory.CreateInMemory(options, dtype);
        var verifier = new CausalLmVerifier(model);
        long parameters = model.parameters().Sum(p => p.numel());
        var rng = new Random(3);
        var prompts = Enumerable.Range(0, count)
            .Select(_ => (IReadOnlyList<long>)Enumerable.Range(0, rng.Next(32, 160)).Select(_ => (long)rng.Next(vocab)).ToArray()).ToArray();
        var gen = new GenerationOptions { MaxNewTokens = maxNew, NumSpeculativeTokens = k, IgnoreEos = true, BatchSize = 1 };
        Console.WriteLine($"verifier: {verifier.Description}, {parameters / 1e6:F1}M parameters; {count} prompts of 32–160 tokens, {maxNew} new tokens, k = {k}, batch 1");

        // The reference continuation the oracle follows (k extra tokens so the last step has full proposals).
        var reference = SpeculativeDecoder.GeneratePlain(verifier, prompts, gen with { MaxNewTokens = maxNew + k });
        using var weights = Eagle3VerifierWeights.FromModel(model);
        using var eagle = new Eagle3Draft(Eagle3Builder.FromVerifier(weights, Eagle3DraftOptions.HeadDefaults, null, "bench", dtype), ownsModel: true);
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(prompts, reference), vocab, corruption: q, seed: 4);
        using var pair = new CostMatchedDraft(eagle, oracle);
        Console.WriteLine($"draft: Eagle-3 ({eagle.Model.parameters().Sum(p => p.numel()) / 1e6:F1}M parameters incl. shared embedding) run for cost, proposing the verifier's greedy tokens corrupted with q = {q} (expected τ = {oracle.ExpectedAcceptanceLength(k):F3})");

        var prompt = new PromptSpec[count];
        for (int i = 0; i < count; i++) prompt[i] = new PromptSpec($"synthetic {i}", PromptKind.TokenIds, prompts[i].ToArray(), null, null, null);
        var result = SpeculativeEvaluation.Run(verifier, pair, prompt, null,
            new EvaluationSettings { NumSpeculativeTokens = k, MaxNewTokens = maxNew, IgnoreEos = true, BatchSize = 1 });
        Print(result);
        double flopsPerToken = 2.0 * parameters;
        double plainGflops = result.TokensPerSecondBaseline * flopsPerToken / 1e9;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"plain decoding: {plainGflops:F1} GFLOP/s = {100 * plainGflops / peak:F1}% of the matmul peak (batch-1 decoding is overhead/memory bound)"));

        // The random draft as it is (acceptance ≈ 0): what speculation costs when nothing is accepted.
        var floor = new SpeculativeDecoder(verifier, eagle).Generate(prompts, gen);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"untrained Eagle-3 draft (τ = {floor.Stats.MeanAcceptanceLength:F3}): {floor.Timings.TokensPerSecond:F1} tokens/s = {floor.Timings.TokensPerSecond / result.TokensPerSecondBaseline:F2}x plain"));
        return 0;
    }

    static void Print(EvaluationResult r)
    {
        Console.Write(EvaluationTable.Render(r));
        var b = r.Baseline;
        var s = r.Speculative;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"c_v (plain step) {1000 * r.VerifierStepSeconds:F2} ms; verify step (k+1 tokens) {1000 * s.SecondsPerVerifyStep:F2} ms = {r.VerifyCostRatio:F2}x; c_d (draft pass) {1000 * r.DraftForwardSeconds:F2} ms = {r.DraftCostRatio:F3}x"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"speculative time: verify {100 * s.VerifySeconds / s.TotalSeconds:F0}%, draft {100 * s.DraftSeconds / s.TotalSeconds:F0}%, prefill {100 * s.PrefillSeconds / s.TotalSeconds:F0}%, engine (sampling, bookkeeping) {100 * s.OtherSeconds / s.TotalSeconds:F0}%; " +
            $"plain: verify {100 * b.VerifySeconds / b.TotalSeconds:F0}%, prefill {100 * b.PrefillSeconds / b.TotalSeconds:F0}%, engine {100 * b.OtherSeconds / b.TotalSeconds:F0}%"));
        double ceilingWithVerify = r.VerifierStepSeconds > 0
            ? r.Stats.MeanAcceptanceLength * r.VerifierStepSeconds / (s.SecondsPerVerifyStep + r.NumSpeculativeTokens * r.DraftForwardSeconds) : 0;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"speedup {r.Speedup:F2}x of ceiling {r.TheoreticalSpeedup:F2}x ({100 * r.Speedup / r.TheoreticalSpeedup:F0}%); with the measured verify-step cost the ceiling is {ceilingWithVerify:F2}x ({100 * r.Speedup / ceilingWithVerify:F0}% reached: the rest is engine overhead)"));
    }

    /// <summary>Runs <paramref name="cost"/> (observe + propose, for its time) but returns <paramref name="answers"/>' proposals.</summary>
    sealed class CostMatchedDraft(IDraftProposer cost, IDraftProposer answers) : IDraftProposer
    {
        public string Name => $"{answers.Name} at {cost.Name} cost";
        public IReadOnlyList<int> VerifierLayerIds => cost.VerifierLayerIds;
        public int? DefaultNumSpeculativeTokens => cost.DefaultNumSpeculativeTokens;
        public long ForwardPasses => cost.ForwardPasses;

        public void Start(int batchSize)
        {
            cost.Start(batchSize);
            answers.Start(batchSize);
        }

        public void Observe(IReadOnlyList<DraftObservation> observations)
        {
            cost.Observe(observations);
            answers.Observe(observations);
        }

        public long[][] Propose(IReadOnlyList<int> sequences, int numTokens)
        {
            cost.Propose(sequences, numTokens);
            return answers.Propose(sequences, numTokens);
        }

        public void Dispose() { }
    }
}
