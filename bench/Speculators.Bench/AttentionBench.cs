using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Speculators.Attention;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Bench;

/// <summary>
/// Block-sparse <see cref="FlexAttention"/> against dense masked SDPA on the Eagle-3 training
/// pattern: one packed row of L tokens with several documents, 3 TTT steps (kv_len = (k+1)·L),
/// forward + backward per step. Every measurement runs in a fresh child process, which resets
/// its peak RSS (/proc/self/clear_refs) before each step and reports VmHWM − VmRSS as the
/// step's peak extra memory. Prints ours ÷ dense for time and memory.
/// </summary>
public sealed class AttentionBench : IBenchmark
{
    public string Name => "attention";
    public string Description => "flex (block-sparse) vs dense masked SDPA attention, fwd+bwd over TTT steps: time and peak memory";

    sealed class Options
    {
        public List<int> Lengths = [4096, 8192];
        public List<int> Blocks = [128];
        public int Heads = 32, KvHeads = 8, HeadDim = 64, Steps = 3, MeanDoc = 600, Seed = 0, Threads = 0, Reps = 1, MaxKvTokens = BlockMask.DefaultMaxKvTokensPerCall;
        public ScalarType Dtype = ScalarType.BFloat16;
        public string Impl = "both";          // flex | dense | both
        public bool Child, PerHead;
        public long? Window;
    }

    public int Run(string[] args)
    {
        Options o;
        try { o = Parse(args); }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            Console.Error.WriteLine("usage: attention [--lengths 4096,8192] [--blocks 64,128] [--heads 32] [--kv-heads 8] [--head-dim 64] " +
                "[--steps 3] [--mean-doc 600] [--window N] [--dtype bf16|fp32] [--impl both|flex|dense] [--threads N] [--reps 1] [--max-kv-tokens 16384] [--seed 0]");
            return 1;
        }
        if (o.Threads > 0) torch.set_num_threads(o.Threads);
        return o.Child ? RunChild(o) : RunParent(o, args);
    }

    static Options Parse(string[] args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            List<int> Ints() => Next().Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToList();
            switch (args[i])
            {
                case "--lengths": o.Lengths = Ints(); break;
                case "--blocks": o.Blocks = Ints(); break;
                case "--heads": o.Heads = Ints()[0]; break;
                case "--kv-heads": o.KvHeads = Ints()[0]; break;
                case "--head-dim": o.HeadDim = Ints()[0]; break;
                case "--steps": o.Steps = Ints()[0]; break;
                case "--mean-doc": o.MeanDoc = Ints()[0]; break;
                case "--window": o.Window = Ints()[0]; break;
                case "--seed": o.Seed = Ints()[0]; break;
                case "--threads": o.Threads = Ints()[0]; break;
                case "--reps": o.Reps = Math.Max(1, Ints()[0]); break;
                case "--max-kv-tokens": o.MaxKvTokens = Ints()[0]; break;
                case "--dtype":
                    o.Dtype = Next() switch
                    {
                        "bf16" => ScalarType.BFloat16,
                        "fp32" => ScalarType.Float32,
                        var s => throw new ArgumentException($"--dtype {s}: expected bf16 or fp32"),
                    };
                    break;
                case "--impl": o.Impl = Next(); break;
                case "--child": o.Child = true; break;
                case "--per-head": o.PerHead = true; break;
                default: throw new ArgumentException($"unknown option {args[i]}");
            }
        }
        if (o.Heads % o.KvHeads != 0) throw new ArgumentException("--heads must be a multiple of --kv-heads");
        if (o.Impl is not ("both" or "flex" or "dense")) throw new ArgumentException("--impl: expected both, flex or dense");
        return o;
    }

    // ------------------------------------------------------------------ parent

    sealed record StepResult(string Impl, int L, int Block, int Step, long KvLen, double Seconds, double MaskSeconds, double PeakExtraMiB,
        double FloorMiB, string Note);

    int RunParent(Options o, string[] args)
    {
        string dt = o.Dtype == ScalarType.BFloat16 ? "bf16" : "fp32";
        Console.WriteLine($"attention bench: heads {o.Heads}/{o.KvHeads} kv, head_dim {o.HeadDim}, {dt}, {o.Steps} TTT steps, " +
            $"mean document {o.MeanDoc} tokens{(o.Window is long w ? $", window {w}" : "")}, {torch.get_num_threads()} threads, best of {o.Reps}, " +
            $"flex max kv tokens per call {o.MaxKvTokens}");
        Console.WriteLine($"cpu: {CpuModel()}; avx512_bf16: {(CpuFlags().Contains("avx512_bf16") ? "yes" : "no")}");
        Console.WriteLine($"baseline matmul: fp32 {MatmulPeak.Measure(ScalarType.Float32, 1024, 3):F0} GFLOP/s, " +
            $"bf16 {MatmulPeak.Measure(ScalarType.BFloat16, 512, 2):F1} GFLOP/s");
        var results = new List<StepResult>();
        foreach (var L in o.Lengths)
        {
            if (o.Impl is "both" or "flex")
                foreach (var b in o.Blocks) results.AddRange(Child(o, "flex", L, b, perHead: false));
            if (o.Impl is "both" or "dense")
            {
                var dense = Child(o, "dense", L, 0, perHead: false);
                results.AddRange(dense);
                if (dense.Any(r => r.Note.Length > 0))
                    results.AddRange(Child(o, "dense-per-head", L, 0, perHead: true));
            }
        }
        Console.WriteLine();
        Console.WriteLine("| impl | L | block | step | kv_len | fwd+bwd s | mask build s | peak extra MiB | of which attention-internal MiB | time ÷ dense | memory ÷ dense | internal memory ÷ dense | note |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        static double Internal(StepResult r) => r.PeakExtraMiB - r.FloorMiB;
        foreach (var r in results)
        {
            var d = results.FirstOrDefault(x => x.Impl.StartsWith("dense", StringComparison.Ordinal) && x.L == r.L && x.Step == r.Step && x.Note.Length == 0);
            string tr = d is null || r.Note.Length > 0 ? "–" : (r.Seconds / d.Seconds).ToString("F3", CultureInfo.InvariantCulture);
            string mr = d is null || r.Note.Length > 0 ? "–" : (r.PeakExtraMiB / d.PeakExtraMiB).ToString("F3", CultureInfo.InvariantCulture);
            string ir = d is null || r.Note.Length > 0 ? "–" : (Internal(r) / Internal(d)).ToString("F3", CultureInfo.InvariantCulture);
            Console.WriteLine($"| {r.Impl} | {r.L} | {(r.Block > 0 ? r.Block : "–")} | {r.Step} | {r.KvLen} | {r.Seconds:F2} | {r.MaskSeconds:F3} | " +
                $"{r.PeakExtraMiB:F0} | {Internal(r):F0} | {tr} | {mr} | {ir} | {r.Note} |");
        }
        foreach (var L in o.Lengths)
            foreach (var impl in results.Where(r => r.L == L).Select(r => (r.Impl, r.Block)).Distinct())
            {
                var mine = results.Where(r => r.L == L && r.Impl == impl.Impl && r.Block == impl.Block).ToList();
                if (mine.Any(r => r.Note.Length > 0)) continue;
                var dense = results.Where(r => r.L == L && r.Impl.StartsWith("dense", StringComparison.Ordinal) && r.Note.Length == 0)
                    .GroupBy(r => r.Impl).FirstOrDefault()?.ToList();
                string ratio = dense is null || dense.Count != mine.Count ? "" :
                    $"  time ÷ dense {mine.Sum(r => r.Seconds + r.MaskSeconds) / dense.Sum(r => r.Seconds + r.MaskSeconds):F3}, " +
                    $"peak memory ÷ dense {mine.Max(r => r.PeakExtraMiB) / dense.Max(r => r.PeakExtraMiB):F3}";
                Console.WriteLine($"L={L} {impl.Impl}{(impl.Block > 0 ? "/" + impl.Block : "")}: {mine.Sum(r => r.Seconds + r.MaskSeconds):F2} s over {mine.Count} steps " +
                    $"(incl. masks), max peak extra {mine.Max(r => r.PeakExtraMiB):F0} MiB{ratio}");
            }
        return 0;
    }

    List<StepResult> Child(Options o, string impl, int L, int block, bool perHead)
    {
        var exe = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Path.GetFileNameWithoutExtension(exe) == "dotnet") psi.ArgumentList.Add(typeof(AttentionBench).Assembly.Location);
        foreach (var a in new[] { Name, "--child", "--impl", impl.StartsWith("dense", StringComparison.Ordinal) ? "dense" : impl,
                     "--lengths", L.ToString(CultureInfo.InvariantCulture), "--blocks", Math.Max(block, 1).ToString(CultureInfo.InvariantCulture),
                     "--heads", o.Heads.ToString(CultureInfo.InvariantCulture), "--kv-heads", o.KvHeads.ToString(CultureInfo.InvariantCulture),
                     "--head-dim", o.HeadDim.ToString(CultureInfo.InvariantCulture), "--steps", o.Steps.ToString(CultureInfo.InvariantCulture),
                     "--mean-doc", o.MeanDoc.ToString(CultureInfo.InvariantCulture), "--seed", o.Seed.ToString(CultureInfo.InvariantCulture),
                     "--dtype", o.Dtype == ScalarType.BFloat16 ? "bf16" : "fp32", "--reps", o.Reps.ToString(CultureInfo.InvariantCulture),
                     "--max-kv-tokens", o.MaxKvTokens.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        if (o.Threads > 0) { psi.ArgumentList.Add("--threads"); psi.ArgumentList.Add(o.Threads.ToString(CultureInfo.InvariantCulture)); }
        if (o.Window is long w) { psi.ArgumentList.Add("--window"); psi.ArgumentList.Add(w.ToString(CultureInfo.InvariantCulture)); }
        if (perHead) psi.ArgumentList.Add("--per-head");
        // Large buffers always mmapped (no dynamic threshold): freed memory leaves the process, so
        // RSS follows live memory and peak-RSS deltas are comparable between runs.
        psi.Environment["MALLOC_MMAP_THRESHOLD_"] = "131072";
        Console.Error.WriteLine($"[bench] {impl} L={L}{(block > 0 ? $" block={block}" : "")} ...");
        using var p = Process.Start(psi)!;
        var stderrTask = p.StandardError.ReadToEndAsync();
        var results = new List<StepResult>();
        string? line;
        while ((line = p.StandardOutput.ReadLine()) != null)
        {
            if (!line.StartsWith('{')) { Console.Error.WriteLine("  " + line); continue; }
            var r = JsonSerializer.Deserialize<StepResult>(line)!;
            results.Add(r with { Impl = impl });
            Console.Error.WriteLine($"  step {r.Step}: {r.Seconds:F2} s, mask {r.MaskSeconds:F3} s, peak extra {r.PeakExtraMiB:F0} MiB");
        }
        p.WaitForExit();
        string err = stderrTask.Result;
        if (p.ExitCode != 0 || results.Count < o.Steps)
        {
            string why = p.ExitCode is 137 or -9 ? "killed (out of memory)" :
                err.Contains("out of memory", StringComparison.OrdinalIgnoreCase) || err.Contains("alloc", StringComparison.OrdinalIgnoreCase)
                    ? "out of memory" : $"failed (exit {p.ExitCode})";
            Console.Error.WriteLine($"  {impl} L={L}: {why}: {err.Split('\n').FirstOrDefault(s => s.Length > 0)}");
            results.Add(new StepResult(impl, L, block, results.Count, (results.Count + 1L) * L, 0, 0, 0, 0, why));
        }
        return results;
    }

    // ------------------------------------------------------------------ child

    int RunChild(Options o)
    {
        int L = o.Lengths[0], block = o.Blocks[0];
        var docs = PackDocuments(L, o.MeanDoc, o.Seed);
        var mod = MaskMod.Eagle3(docs, o.Window);
        Warmup(o);
        torch.manual_seed(o.Seed);
        var q = randn(1, o.Heads, L, o.HeadDim).to(o.Dtype).requires_grad_(true);
        BlockMask? last = null;              // the previous step's mask: each rep of a step extends it
        for (int step = 0; step < o.Steps; step++)
        {
            long kvLen = (step + 1L) * L;
            var k = randn(1, o.KvHeads, kvLen, o.HeadDim).to(o.Dtype).requires_grad_(true);
            var v = randn(1, o.KvHeads, kvLen, o.HeadDim).to(o.Dtype).requires_grad_(true);
            var w = randn(1, o.Heads, L, o.HeadDim).to(o.Dtype);
            double maskSeconds = double.MaxValue, seconds = double.MaxValue, peakExtra = 0;
            double floor = Floor(q, k, v, w);
            BlockMask? current = null;
            for (int rep = 0; rep < o.Reps; rep++)
            {
                GC.Collect();
                ResetPeak();
                long before = Status("VmRSS");
                var sw = Stopwatch.StartNew();
                using (var scope = NewDisposeScope())
                {
                    if (o.Impl == "flex")
                    {
                        current?.Dispose();
                        current = last is null ? BlockMask.Create(mod, L, kvLen, block, block, maxKvTokensPerCall: o.MaxKvTokens) : last.ExtendKv(kvLen);
                        current.Prepare();                        // the gather indices are part of building
                        maskSeconds = Math.Min(maskSeconds, sw.Elapsed.TotalSeconds);
                        sw.Restart();
                        var outp = FlexAttention.Forward(q, k, v, current);
                        (outp * w).sum().backward();
                        seconds = Math.Min(seconds, sw.Elapsed.TotalSeconds);
                    }
                    else
                    {
                        // The dense baseline gets its best form: an additive mask in the compute dtype
                        // (SDPA would otherwise convert a bool mask on every call).
                        var visible = mod.ToDense(L, kvLen);
                        var dense = zeros(L, kvLen, dtype: o.Dtype).masked_fill_(visible.logical_not(), double.NegativeInfinity);
                        visible.Dispose();
                        maskSeconds = Math.Min(maskSeconds, sw.Elapsed.TotalSeconds);
                        sw.Restart();
                        DenseSdpa(q, k, v, w, dense, o.PerHead);
                        seconds = Math.Min(seconds, sw.Elapsed.TotalSeconds);
                    }
                }
                peakExtra = Math.Max(peakExtra, (Status("VmHWM") - before) / 1024.0);
                q.grad?.zero_();
                k.grad?.zero_();
                v.grad?.zero_();
            }
            var r = new StepResult(o.Impl, L, o.Impl == "flex" ? block : 0, step, kvLen, seconds, maskSeconds, peakExtra, floor, "");
            Console.WriteLine(JsonSerializer.Serialize(r));
            if (current is not null) Console.WriteLine(current.ToString());
            last?.Dispose();
            last = current;
            k.Dispose(); v.Dispose(); w.Dispose();
        }
        last?.Dispose();
        return 0;
    }

    /// <summary>
    /// Peak extra memory of the same harness with attention replaced by an identity: what every
    /// implementation allocates anyway (output, out·w, its gradient, dq/dk/dv).
    /// </summary>
    static double Floor(Tensor q, Tensor k, Tensor v, Tensor w)
    {
        GC.Collect();
        ResetPeak();
        long before = Status("VmRSS");
        using (var scope = NewDisposeScope())
        {
            var outp = q * 1.0 + (k.sum() + v.sum()) * 0.0;
            (outp * w).sum().backward();
        }
        double mib = (Status("VmHWM") - before) / 1024.0;
        q.grad?.zero_();
        k.grad?.zero_();
        v.grad?.zero_();
        return mib;
    }

    /// <summary>Dense masked SDPA: K/V repeated to every query head (SDPA has no GQA), [L, kv_len] additive mask.</summary>
    static void DenseSdpa(Tensor q, Tensor k, Tensor v, Tensor w, Tensor dense, bool perHead)
    {
        long groups = q.shape[1] / k.shape[1];
        if (!perHead)
        {
            var o = F.scaled_dot_product_attention(q, k.repeat_interleave(groups, dim: 1), v.repeat_interleave(groups, dim: 1), attn_mask: dense);
            (o * w).sum().backward();
            return;
        }
        for (long h = 0; h < q.shape[1]; h++)
        {
            using var scope = NewDisposeScope();
            var o = F.scaled_dot_product_attention(q.narrow(1, h, 1), k.narrow(1, h / groups, 1), v.narrow(1, h / groups, 1), attn_mask: dense);
            (o * w.narrow(1, h, 1)).sum().backward();
        }
    }

    static void Warmup(Options o)
    {
        using var scope = NewDisposeScope();
        var docs = PackDocuments(300, 100, 1);
        using var bm = BlockMask.Create(MaskMod.Eagle3(docs), 300, 600, 64, 64);
        var q = randn(1, 2, 300, o.HeadDim).to(o.Dtype).requires_grad_(true);
        var k = randn(1, 1, 600, o.HeadDim).to(o.Dtype).requires_grad_(true);
        FlexAttention.Forward(q, k, k, bm).sum().backward();
        var d = MaskMod.Eagle3(docs).ToDense(300, 600);
        F.scaled_dot_product_attention(q, k.repeat_interleave(2, dim: 1), k.repeat_interleave(2, dim: 1), attn_mask: d).sum().backward();
    }

    /// <summary>Documents of length uniform in [mean/4, 7·mean/4] (fixed seed) until the row is full; ~3% padding at the end.</summary>
    static long[] PackDocuments(int L, int mean, int seed)
    {
        var rng = new Random(seed);
        var ids = new List<long>(L);
        int pad = L / 32, doc = 0;
        while (ids.Count < L - pad)
        {
            int len = Math.Min(rng.Next(Math.Max(1, mean / 4), mean * 7 / 4 + 1), L - pad - ids.Count);
            ids.AddRange(Enumerable.Repeat((long)doc++, len));
        }
        while (ids.Count < L) ids.Add(-1);
        return [.. ids];
    }

    static void ResetPeak()
    {
        try { File.WriteAllText("/proc/self/clear_refs", "5"); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    /// <summary>A kB field of /proc/self/status (VmRSS, VmHWM).</summary>
    static long Status(string field)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
        return 0;
    }

    static string CpuModel() =>
        File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':')[1].Trim() ?? "?" : "?";

    static string CpuFlags() =>
        File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) ?? "" : "";
}
