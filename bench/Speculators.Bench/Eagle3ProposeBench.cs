using System.Diagnostics;
using System.Globalization;
using Speculators.Algorithms.Eagle3;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Eagle-3 draft speed: (a) the first pass over many verified slots (compute-bound) as achieved GFLOP/s ÷ the
/// matmul peak of the same dtype measured in the same run; (b) one proposer cycle (observe n new slots per
/// sequence, draft k tokens, batched) as milliseconds and as a multiple of the time its FLOPs take at peak.
/// float32 by default (<c>--dtype bf16</c> for machines with AVX-512 BF16; without it bf16 matmul is unusable).
/// </summary>
public sealed class Eagle3ProposeBench : IBenchmark
{
    public string Name => "eagle3-propose";
    public string Description => "Eagle-3 draft first pass GFLOP/s ÷ matmul peak, proposer cycle time (--hidden 1024 --batch 4 --slots 128 --k 3 --dtype fp32|bf16)";

    public int Run(string[] args)
    {
        int hidden = Arg(args, "--hidden", 1024), batch = Arg(args, "--batch", 4), slots = Arg(args, "--slots", 128), k = Arg(args, "--k", 3);
        int di = Array.IndexOf(args, "--dtype");
        var dtype = di >= 0 && di + 1 < args.Length && args[di + 1] is "bf16" or "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float32;
        int vocab = Arg(args, "--vocab", 32000), draftVocab = Arg(args, "--draft-vocab", 8000), reps = Arg(args, "--reps", 5);
        int heads = hidden / 128;
        var verifier = new DecoderConfig
        {
            VocabSize = vocab, HiddenSize = hidden, IntermediateSize = hidden * 11 / 4, NumLayers = 16, NumHeads = heads,
            NumKvHeads = Math.Max(1, heads / 4), HeadDim = 128, RmsNormEps = 1e-5, MaxPositionEmbeddings = 8192,
            Rope = new RopeConfig { HeadDim = 128, Theta = 500000, MaxPositionEmbeddings = 8192 },
        };
        var cfg = Eagle3Builder.CreateConfig(verifier, ["LlamaForCausalLM"], null, Eagle3DraftOptions.HeadDefaults, vocab);
        cfg.DraftVocabSize = draftVocab;
        using var scope = NewDisposeScope();
        using var draft = new Eagle3DraftModel(cfg, dtype, torch.CPU);
        draft.InitializeTrainable(1);
        using (torch.no_grad())
        {
            draft.embed_tokens.weight.normal_(0, 0.02);
            draft.lm_head.weight.normal_(0, 0.02);
        }
        double peak = MatmulPeak.Measure(dtype);
        int a = draft.NumAuxLayers * draft.AuxHiddenSize;
        var dc = draft.Decoder;
        long q = (long)dc.NumHeads * dc.HeadDim, kv = (long)dc.NumKvHeads * dc.HeadDim;
        // Matmul FLOPs per slot: fc, layer-0 q/k/v (2H in), o, MLP; attention scores over the context are added below.
        double perSlot = 2.0 * ((long)a * hidden + 2L * hidden * (q + 2 * kv) + q * hidden + 3L * hidden * dc.IntermediateSize);
        double lmHead = 2.0 * hidden * draftVocab;
        using var noGrad = torch.no_grad();

        // (a) first pass over batch × slots.
        var aux = torch.randn([batch, slots, a]).to(dtype);
        var ids = torch.randint(0, vocab, [batch, slots]);
        var pos = torch.arange(slots, ScalarType.Int64).unsqueeze(0).expand(batch, slots).contiguous();
        double Pass()
        {
            using var s = NewDisposeScope();
            var sw = Stopwatch.StartNew();
            using var backend = new SdpaAttentionBackend(null, null, batch, slots);
            var x = draft.RunLayers(draft.Embed(ids), draft.CombineAuxHidden(aux), pos, backend);
            draft.Head(x.narrow(1, slots - 1, 1));
            return sw.Elapsed.TotalSeconds;
        }
        Pass();
        double best = Enumerable.Range(0, reps).Min(_ => Pass());
        double attn = 2.0 * 2 * q * slots * (slots + 1) / 2.0; // QKᵀ and PV, causal
        double flops = batch * (slots * perSlot + attn + lmHead);
        double gflops = flops / best / 1e9;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"first pass {batch}×{slots} slots, H {hidden}: {best * 1e3:F1} ms, {gflops:F1} GFLOP/s = {gflops / peak:F2} × {dtype} matmul peak ({peak:F0} GFLOP/s, {torch.get_num_threads()} threads)"));

        // (b) proposer cycles: n = k+1 new slots per sequence (all drafts accepted), k drafted tokens.
        using var proposer = new Eagle3Proposer(draft, batch);
        var prompt = torch.randn([slots, a]).to(dtype);
        var promptIds = torch.randint(0, vocab, [slots]).data<long>().ToArray();
        for (int b = 0; b < batch; b++) proposer.Observe(b, prompt, promptIds, 0);
        proposer.Propose(k);
        int n = k + 1;
        var newAux = torch.randn([n, a]).to(dtype);
        var newIds = torch.randint(0, vocab, [n]).data<long>().ToArray();
        long position = slots;
        double Cycle()
        {
            var sw = Stopwatch.StartNew();
            for (int b = 0; b < batch; b++) proposer.Observe(b, newAux, newIds, position);
            proposer.Propose(k);
            position += n;
            return sw.Elapsed.TotalSeconds;
        }
        Cycle();
        double cycle = Enumerable.Range(0, reps).Min(_ => Cycle());
        double cycleFlops = batch * ((n + k - 1) * perSlot + k * lmHead);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"proposer cycle (batch {batch}, {n} new slots, k {k}): {cycle * 1e3:F1} ms = {cycle / (cycleFlops / (peak * 1e9)):F1} × the time of its matmul FLOPs at peak; {batch * k / cycle:F0} drafted tokens/s"));
        return 0;
    }

    static int Arg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
