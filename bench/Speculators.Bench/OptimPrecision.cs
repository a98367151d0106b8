using System.Diagnostics;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Bench;

/// <summary>
/// Training-infrastructure costs, each as a ratio against a baseline measured in the same run:
/// (1) mixed precision: fp32 masters with in-forward bf16 casts (<see cref="Autocast"/>, ours) vs
/// bf16 module copies with fp32 masters synced around the optimizer, both vs plain fp32, on a SwiGLU
/// MLP block forward+backward+AdamW step; (2) the chunked custom-autograd KL loss vs the eager
/// log_softmax/kl_div graph; (3) our AdamW step vs TorchSharp's built-in
/// AdamW, and one Muon step vs one AdamW step.
/// Usage: speculators-bench optim-precision [--tokens N] [--hidden H] [--vocab V] [--reps R] [--threads T]
/// </summary>
public sealed class OptimPrecision : IBenchmark
{
    public string Name => "optim-precision";
    public string Description => "mixed-precision designs, chunked vs eager loss, optimizer step costs (ratios)";

    public int Run(string[] args)
    {
        int tokens = Arg(args, "--tokens", 1024), hidden = Arg(args, "--hidden", 1024), vocab = Arg(args, "--vocab", 32000), reps = Arg(args, "--reps", 5);
        int threads = Arg(args, "--threads", 0);
        if (threads > 0) torch.set_num_threads(threads);
        int inter = hidden * 11 / 4;
        Console.WriteLine($"threads {torch.get_num_threads()}, tokens {tokens}, hidden {hidden}, intermediate {inter}, vocab {vocab}, best of {reps}");
        double peak = MatmulPeak.Measure(ScalarType.BFloat16, Math.Min(2048, Math.Max(hidden, 512)), reps);
        Console.WriteLine($"bf16 matmul peak: {peak:F1} GFLOP/s");

        // ---- (1) mixed precision ----
        double flops = 3 * 2.0 * tokens * hidden * inter * 3; // 3 matmuls, fwd + 2× bwd
        double tFp32 = MlpStep(tokens, hidden, inter, Mode.Fp32, reps);
        double tAuto = MlpStep(tokens, hidden, inter, Mode.Autocast, reps);
        double tCopy = MlpStep(tokens, hidden, inter, Mode.MasterCopy, reps);
        Console.WriteLine($"MLP fwd+bwd+AdamW  fp32 {tFp32 * 1e3:F1} ms | autocast (ours) {tAuto * 1e3:F1} ms = {tFp32 / tAuto:F2}x fp32, " +
                          $"{flops / tAuto / 1e9 / peak:P0} of bf16 peak | bf16 copies + fp32 masters {tCopy * 1e3:F1} ms = {tFp32 / tCopy:F2}x fp32; " +
                          $"autocast / master-copy time ratio {tAuto / tCopy:F2}");

        // ---- (2) loss ----
        double tChunked = LossStep(tokens, vocab, eager: false, reps);
        double tEager = LossStep(tokens, vocab, eager: true, reps);
        Console.WriteLine($"KL loss fwd+bwd [{tokens}, {vocab}] bf16 logits  chunked {tChunked * 1e3:F1} ms, eager {tEager * 1e3:F1} ms: " +
                          $"chunked/eager time {tChunked / tEager:F2} (eager keeps {2 * 4.0 * tokens * vocab / (1 << 20):F0} MiB of fp32 [N, Vd] activations for backward, chunked {8.0 * tokens / 1024:F0} KiB)");

        // ---- (3) optimizers ----
        var (ours, builtin, muonBf16, muonFp32) = OptimizerSteps(hidden, inter, reps);
        Console.WriteLine($"AdamW step on {3L * hidden * inter / 1e6:F1}M params  ours {ours * 1e3:F1} ms, TorchSharp AdamW {builtin * 1e3:F1} ms: ours/builtin {ours / builtin:F2}; " +
                          $"Muon step: bf16 Newton–Schulz {muonBf16 * 1e3:F1} ms = {muonBf16 / ours:F1}x AdamW, fp32 {muonFp32 * 1e3:F1} ms = {muonFp32 / ours:F1}x AdamW " +
                          $"(native bf16 on this CPU: {Precision.HasFastBf16(DeviceType.CPU)})");
        return 0;
    }

    static int Arg(string[] args, string name, int fallback)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
    }

    enum Mode { Fp32, Autocast, MasterCopy }

    static double Best(int reps, Action step)
    {
        step(); // warm-up
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    static double MlpStep(int tokens, int hidden, int inter, Mode mode, int reps)
    {
        using var outer = NewDisposeScope();
        torch.manual_seed(0);
        var masters = new[]
        {
            (torch.randn(inter, hidden) * 0.02).requires_grad_(true),
            (torch.randn(inter, hidden) * 0.02).requires_grad_(true),
            (torch.randn(hidden, inter) * 0.02).requires_grad_(true),
        };
        // MasterCopy: the module holds bf16 parameters; masters live only in the optimizer.
        var copies = mode == Mode.MasterCopy
            ? masters.Select(m => m.detach().to(ScalarType.BFloat16).requires_grad_(true)).ToArray()
            : masters;
        using var opt = new AdamW(masters.Select((m, i) => new NamedParameter($"w{i}", m)), 1e-4);
        var x = torch.randn(tokens, hidden);
        var xb = x.to(ScalarType.BFloat16);
        return Best(reps, () =>
        {
            using var scope = NewDisposeScope();
            Tensor y;
            if (mode == Mode.Autocast)
            {
                using var amp = Autocast.Enter(ScalarType.BFloat16);
                var h = nn.functional.silu(Autocast.Linear(x, copies[0])) * Autocast.Linear(x, copies[1]);
                y = Autocast.Linear(h, copies[2]);
            }
            else
            {
                var input = mode == Mode.Fp32 ? x : xb;
                var h = nn.functional.silu(nn.functional.linear(input, copies[0])) * nn.functional.linear(input, copies[1]);
                y = nn.functional.linear(h, copies[2]);
            }
            y.to(ScalarType.Float32).square().mean().backward();
            if (mode == Mode.MasterCopy)
                for (int i = 0; i < 3; i++)
                {
                    masters[i].grad = copies[i].grad!.to(ScalarType.Float32);
                    copies[i].grad = null;
                }
            opt.Step();
            opt.ZeroGrad();
            if (mode == Mode.MasterCopy)
                using (torch.no_grad())
                    for (int i = 0; i < 3; i++) copies[i].copy_(masters[i]);
        });
    }

    static double LossStep(int tokens, int vocab, bool eager, int reps)
    {
        using var outer = NewDisposeScope();
        torch.manual_seed(1);
        var logits = torch.randn(1, tokens, vocab).to(ScalarType.BFloat16).requires_grad_(true);
        var targets = torch.randn(1, tokens, vocab).to(ScalarType.BFloat16);
        var mask = torch.ones(1, tokens, ScalarType.Int64);
        return Best(reps, () =>
        {
            using var scope = NewDisposeScope();
            Tensor loss;
            if (eager)
            {
                var logq = logits.log_softmax(-1, ScalarType.Float32);
                var p = targets.softmax(-1, ScalarType.Float32);
                var e = nn.functional.kl_div(logq, p, reduction: nn.Reduction.None).sum(-1);
                loss = DistillationLoss.MaskedMean(e, mask);
            }
            else
            {
                loss = DistillationLoss.MaskedMean(DistillationLoss.PerPosition(LossKind.KlDiv, logits, targets), mask);
            }
            loss.backward();
            logits.grad = null;
        });
    }

    static (double Ours, double Builtin, double MuonBf16, double MuonFp32) OptimizerSteps(int hidden, int inter, int reps)
    {
        using var outer = NewDisposeScope();
        torch.manual_seed(2);
        Tensor[] Make() => new[] { torch.randn(inter, hidden), torch.randn(inter, hidden), torch.randn(hidden, inter) }
            .Select(t => t.requires_grad_(true)).ToArray();
        void Grads(Tensor[] ps) { foreach (var p in ps) p.grad = torch.randn(p.shape); }

        var a = Make();
        Grads(a);
        using var ours = new AdamW(a.Select((p, i) => new NamedParameter($"w{i}", p)), 1e-4);
        double tOurs = Best(reps, () => { using var s = NewDisposeScope(); ours.Step(); });

        var b = Make();
        Grads(b);
        var builtin = torch.optim.AdamW(b.Select(p => new TorchSharp.Modules.Parameter(p, true)).ToArray(), 1e-4, 0.9, 0.999, 1e-8, 0.01);
        var bp = builtin.parameters().ToArray();
        foreach (var p in bp) p.grad = torch.randn(p.shape);
        double tBuiltin = Best(reps, () => { using var s = NewDisposeScope(); builtin.step(); });

        double MuonTime(ScalarType nsDtype)
        {
            var c = Make();
            Grads(c);
            using var muon = new Muon(new[] { new ParamGroup("Muon", c.Select((p, i) => new NamedParameter($"w{i}", p)), 1e-3, 0.1) },
                adjustment: MuonLrAdjustment.MatchRmsAdamW, nsDtype: nsDtype);
            return Best(reps, () => { using var s = NewDisposeScope(); muon.Step(); });
        }
        return (tOurs, tBuiltin, MuonTime(ScalarType.BFloat16), MuonTime(ScalarType.Float32));
    }
}
