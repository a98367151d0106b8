using System.Diagnostics;
using System.Globalization;
using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Data;
using Speculators.Modeling;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Eagle-3 training throughput: one packed row of L tokens (random documents), the full training step (TTT forward with
/// block-sparse attention, loss, backward, AdamW) of a fresh draft; tokens/s and MFU = model FLOPs/s ÷ the bf16 and the
/// fp32 matmul peak measured in the same run. The verifier is only a config plus random embedding/lm_head/norm (no
/// other verifier weight is touched), the batch is synthetic.
/// </summary>
public sealed class Eagle3TrainBench : IBenchmark
{
    public string Name => "eagle3-train";
    public string Description => "Eagle-3 TTT training step: tokens/s and MFU vs the bf16/fp32 matmul peak (--hidden, --lengths, --dtype)";

    static string Arg(string[] args, string name, string fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : fallback;
    }

    public int Run(string[] args)
    {
        var hiddens = Arg(args, "--hidden", "1024").Split(',').Select(int.Parse).ToArray();
        var lengths = Arg(args, "--lengths", "2048,8192").Split(',').Select(int.Parse).ToArray();
        int vocab = int.Parse(Arg(args, "--vocab", "32000"), CultureInfo.InvariantCulture);
        int draftVocab = int.Parse(Arg(args, "--draft-vocab", "16000"), CultureInfo.InvariantCulture);
        int steps = int.Parse(Arg(args, "--ttt-steps", "3"), CultureInfo.InvariantCulture);
        int layers = int.Parse(Arg(args, "--layers", "1"), CultureInfo.InvariantCulture);
        int docLen = int.Parse(Arg(args, "--doc-len", "512"), CultureInfo.InvariantCulture);
        int iters = int.Parse(Arg(args, "--iters", "2"), CultureInfo.InvariantCulture);
        int threads = int.Parse(Arg(args, "--threads", "0"), CultureInfo.InvariantCulture);
        string dtypeText = Arg(args, "--dtype", "auto");
        if (threads > 0) torch.set_num_threads(threads);
        var dtype = dtypeText == "auto" ? Precision.DefaultComputeDtype(DeviceType.CPU) : Precision.ParseComputeDtype(dtypeText, DeviceType.CPU, "--dtype");

        Console.WriteLine($"{torch.get_num_threads()} threads; compute dtype {Precision.Name(dtype)} (native bf16: {Precision.HasFastBf16(DeviceType.CPU)}); " +
                          "the matmul peaks are measured right before and after each row (their mean is the baseline), because load on a shared machine drifts");
        // Warm the mask builder's code paths (JIT) so the first row's mask time is not a compile time.
        using (var warm = new Eagle3MaskSet(Enumerable.Range(0, 300).Select(i => (long)(i / 100)).ToArray(), 128, torch.CPU))
            warm.Prepare([null], steps);
        Console.WriteLine($"vocab {vocab}, draft vocab {draftVocab}, {layers} layer(s), {steps} TTT steps, documents ~{docLen} tokens, {iters} timed step(s) after 1 warm-up");
        Console.WriteLine();
        Console.WriteLine("| hidden | L | mask build (ms) | step (s) | tokens/s | model GFLOP/token | GFLOP/s | bf16 peak (GFLOP/s) | fp32 peak (GFLOP/s) | MFU vs bf16 peak | MFU vs fp32 peak |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (int h in hiddens)
            foreach (int l in lengths)
            {
                var (bf16Before, fp32Before) = Peaks();
                var (maskMs, seconds, flopsPerToken) = RunOne(h, l, vocab, draftVocab, steps, layers, docLen, iters, dtype);
                var (bf16After, fp32After) = Peaks();
                double peakBf16 = (bf16Before + bf16After) / 2, peakFp32 = (fp32Before + fp32After) / 2;
                double gflops = flopsPerToken * l / seconds / 1e9;
                Console.WriteLine($"| {h} | {l} | {maskMs:F0} | {seconds:F2} | {l / seconds:F0} | {flopsPerToken / 1e9:F3} | {gflops:F1} | " +
                                  $"{peakBf16:F1} | {peakFp32:F1} | {100 * gflops / peakBf16:F1}% | {100 * gflops / peakFp32:F1}% |");
            }
        return 0;
    }

    static (double Bf16, double Fp32) Peaks() => (MatmulPeak.Measure(ScalarType.BFloat16, 512, 3), MatmulPeak.Measure(ScalarType.Float32, 2048, 3));

    /// <summary>Mask build time (ms), the best step time (s) and the model FLOPs per token of one configuration.</summary>
    static (double MaskMs, double Seconds, double FlopsPerToken) RunOne(int hidden, int l, int vocab, int draftVocab, int steps, int layers, int docLen, int iters,
        ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        int headDim = 64, heads = hidden / headDim, kvHeads = Math.Max(1, heads / 4);
        int intermediate = (int)(hidden * 2.6875) / 64 * 64;   // Llama-like 8/3·H rounded
        var verifierConfig = new DecoderConfig
        {
            VocabSize = vocab, HiddenSize = hidden, IntermediateSize = intermediate, NumLayers = 8, NumHeads = heads, NumKvHeads = kvHeads,
            HeadDim = headDim, RmsNormEps = 1e-5, MaxPositionEmbeddings = 16384, Rope = new RopeConfig { HeadDim = headDim, Theta = 500000 },
        };
        using var verifier = CausalLM.Create(verifierConfig, ScalarType.Float32, torch.CPU);   // uninitialized; only 3 tensors are filled
        using (torch.no_grad())
        {
            verifier.model.embed_tokens.weight.normal_(0, 0.02);
            verifier.LmHeadWeight.normal_(0, 0.02);
            verifier.model.norm.weight.fill_(1.0);
        }
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        VocabMapping? mapping = null;
        if (draftVocab < vocab)
        {
            var t2d = new bool[vocab];
            var d2t = new long[draftVocab];
            for (int i = 0; i < draftVocab; i++)
            {
                long id = (long)i * vocab / draftVocab;
                t2d[id] = true;
                d2t[i] = id - i;
            }
            mapping = new VocabMapping(d2t, t2d, "bench mapping");
        }
        using var draft = Eagle3Builder.FromVerifier(vw, Eagle3DraftOptions.HeadDefaults with { NumLayers = layers, SpeculativeTokens = steps }, mapping, "bench", ScalarType.Float32);
        var ttt = new Eagle3TttOptions { Steps = steps };

        // Random documents of docLen/2 .. 3·docLen/2 tokens filling the row.
        var rng = new Random(1);
        var docs = new List<int>();
        for (int used = 0; used < l;)
        {
            int n = Math.Min(l - used, rng.Next(docLen / 2, docLen * 3 / 2 + 1));
            docs.Add(n);
            used += n;
        }
        var layout = MultipackCollation.Layout(docs, l, firstPosition: 1);
        int aux = draft.NumAuxLayers * hidden;
        var shape = new long[] { 1, l };
        var ids = torch.randint(0, vocab, shape, dtype: ScalarType.Int64);
        var mask = torch.ones(shape, ScalarType.Int64);
        var hs = torch.randn([1, l, aux]).to(dtype);
        var last = torch.randn([1, l, hidden]).to(dtype);
        foreach (var t in new[] { ids, mask, hs, last }) t.DetachFromDisposeScope();
        using var batch = new Eagle3Batch(ids, hs, last, mask, layout.PositionIdsTensor(), layout.DocumentIdsTensor(), layout.DocumentIds,
            Enumerable.Range(0, docs.Count).ToArray(), layout.Lengths, 0);
        var clock = Stopwatch.StartNew();
        batch.Masks.Prepare([null], steps);
        double maskMs = clock.Elapsed.TotalMilliseconds;

        var parameters = draft.TrainableParameters().Select(p => new NamedParameter(p.Name, p.Param)).ToList();
        using var optimizer = new AdamW(parameters, lr: 1e-4);
        double Step()
        {
            using var inner = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            using (Autocast.Enter(dtype, enabled: dtype != ScalarType.Float32))
            {
                using var result = Eagle3TttForward.Run(draft, batch, ttt);
                optimizer.ZeroGrad();
                result.Loss.backward();
            }
            optimizer.Step();
            return sw.Elapsed.TotalSeconds;
        }
        Step();
        double best = double.MaxValue;
        for (int i = 0; i < iters; i++) best = Math.Min(best, Step());
        double meanContext = Eagle3TrainingAlgorithm.MeanCausalContext(docs, null);
        double flopsPerToken = Eagle3TrainingAlgorithm.FlopsPerToken(draft.Decoder, draft.NumAuxLayers, draft.AuxHiddenSize, draft.DraftVocabSize, steps, meanContext);
        return (maskMs, best, flopsPerToken);
    }
}
