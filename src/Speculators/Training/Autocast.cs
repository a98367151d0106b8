using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// Explicit mixed precision (TorchSharp has no <c>torch.autocast</c>): modules keep fp32 master
/// parameters, and inside an <see cref="Autocast"/> region the matmul-heavy ops cast their weights
/// and inputs to the compute dtype (bf16) with a differentiable cast, so gradients arrive in the fp32
/// masters directly and the optimizers update fp32 weights. As in torch's autocast, the cast of a
/// leaf parameter is cached for the region: a weight used by several TTT steps is cast once, and the
/// gradients of its uses are summed at that cast (in the compute dtype) before flowing to the master.
/// <code>
/// using (var amp = Autocast.Enter(ScalarType.BFloat16))
/// {
///     var y = Autocast.Linear(x, fc.weight, fc.bias);     // bf16 compute, fp32 grads in fc.weight.grad
/// }
/// </code>
/// Outside a region (or with a disabled one) the helpers compute in the tensors' own dtype, so the
/// same module code runs fp32 for tests and bf16 for training. Frozen tensors (embeddings, lm_head,
/// verifier norms) may be stored in bf16 from the start: casting them is a no-op.
/// Nothing here draws random numbers, so <c>--seed</c> determinism is unaffected.
/// <para>Why this design and not separate bf16 module copies with fp32 masters in the optimizer:
/// both cost one cast of every weight per step (before the forward here, after the optimizer step
/// there) and one fp32 conversion of every gradient; see <c>bench OptimPrecision</c>. This one needs no
/// copy-back step, no second parameter set, and state dicts stay fp32.</para>
/// </summary>
public sealed class Autocast : IDisposable
{
    [ThreadStatic] static Autocast? _current;

    readonly Autocast? _outer;
    readonly List<Tensor> _owned = new();
    // Keyed by the parameter object (modules hand out the same Parameter instance every forward).
    readonly Dictionary<Tensor, Tensor> _cache = new(ReferenceEqualityComparer.Instance);
    bool _disposed;

    Autocast(ScalarType dtype, bool enabled, Autocast? outer)
    {
        ComputeDtype = dtype;
        Enabled = enabled;
        _outer = outer;
    }

    /// <summary>The innermost region on this thread, or null.</summary>
    public static Autocast? Current => _current;

    /// <summary>The dtype casts go to (bf16 for CPU and GPU training; fp16 is refused on CPU by <see cref="Precision"/>).</summary>
    public ScalarType ComputeDtype { get; }

    public bool Enabled { get; }

    /// <summary>Opens a region on this thread (regions nest; the innermost wins).</summary>
    public static Autocast Enter(ScalarType computeDtype, bool enabled = true)
    {
        if (enabled && computeDtype is not (ScalarType.BFloat16 or ScalarType.Float16 or ScalarType.Float32))
            throw new ArgumentException($"autocast compute dtype must be bfloat16, float16 or float32, got {computeDtype}.", nameof(computeDtype));
        var region = new Autocast(computeDtype, enabled, _current);
        _current = region;
        return region;
    }

    /// <summary>
    /// <paramref name="t"/> in the compute dtype when a region is active and <paramref name="t"/> is a
    /// floating tensor of another dtype; otherwise <paramref name="t"/> itself. Leaf parameters
    /// (requires_grad, no grad_fn) are cast once per region.
    /// </summary>
    public static Tensor Cast(Tensor t)
    {
        var region = _current;
        if (region is null || !region.Enabled || !t.is_floating_point() || t.dtype == region.ComputeDtype) return t;
        return region.CastCore(t);
    }

    Tensor CastCore(Tensor t)
    {
        bool leafParam = t.requires_grad && t.is_leaf;
        if (!leafParam) return t.to(ComputeDtype);
        if (_cache.TryGetValue(t, out var cached) && !cached.IsInvalid) return cached;
        var cast = t.to(ComputeDtype).DetachFromDisposeScope();
        _cache[t] = cast;
        _owned.Add(cast);
        return cast;
    }

    /// <summary><c>F.linear</c> in the compute dtype (input, weight and bias cast).</summary>
    public static Tensor Linear(Tensor input, Tensor weight, Tensor? bias = null) =>
        nn.functional.linear(Cast(input), Cast(weight), bias is null ? null : Cast(bias));

    /// <summary><c>mm</c> in the compute dtype.</summary>
    public static Tensor MatMul(Tensor a, Tensor b) => Cast(a).mm(Cast(b));

    /// <summary><c>bmm</c> in the compute dtype.</summary>
    public static Tensor BatchMatMul(Tensor a, Tensor b) => Cast(a).bmm(Cast(b));

    /// <summary>
    /// An op torch's autocast runs in fp32 (softmax, norms, losses): floating inputs of a lower
    /// precision are up-cast to fp32 when a region is active.
    /// </summary>
    public static Tensor Float32(Tensor t)
    {
        var region = _current;
        if (region is null || !region.Enabled || !t.is_floating_point() || t.dtype == ScalarType.Float32 || t.dtype == ScalarType.Float64) return t;
        return t.to(ScalarType.Float32);
    }

    public void Dispose()
    {
        if (_disposed) return;
        if (_current != this)
            throw new InvalidOperationException("Autocast regions must be disposed innermost first, on the thread that entered them.");
        _disposed = true;
        _current = _outer;
        // The autograd graph keeps its own references to the cast weights; these are only our handles.
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        _cache.Clear();
    }
}

/// <summary>Parsing and checks for the training compute dtype (<c>--hidden-states-dtype</c>).</summary>
public static class Precision
{
    /// <summary>Parses bfloat16/bf16, float32/fp32; float16 is accepted only for non-CPU devices (it is ~1000× slower than bf16 on CPU).</summary>
    public static ScalarType ParseComputeDtype(string text, DeviceType device, string source = "--hidden-states-dtype")
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "bfloat16":
            case "bf16":
                return ScalarType.BFloat16;
            case "float32":
            case "fp32":
            case "float":
                return ScalarType.Float32;
            case "float16":
            case "fp16":
            case "half":
                if (device == DeviceType.CPU)
                    throw new SpeculatorsException($"{source}: float16 is not supported on CPU (libtorch's fp16 matmul is about 1000× slower than bf16 there); use bfloat16.");
                throw new SpeculatorsException($"{source}: float16 needs a gradient scaler, which training does not use; use bfloat16.");
            default:
                throw new SpeculatorsException($"{source}: expected bfloat16 or float32, got '{text}'.");
        }
    }

    static readonly Lazy<bool> CpuBf16 = new(DetectCpuBf16);

    /// <summary>
    /// True when matmuls in bf16 run natively on <paramref name="device"/>: always on CUDA; on CPU only
    /// with AVX512-BF16 or AMX-BF16 (Linux <c>/proc/cpuinfo</c> flags). Without them libtorch emulates
    /// bf16 and is hundreds of times slower than fp32 (measured: 0.4 vs 200 GFLOP/s on an AVX2-only EPYC),
    /// so CPU training should compute in fp32 there.
    /// </summary>
    public static bool HasFastBf16(DeviceType device) => device != DeviceType.CPU || CpuBf16.Value;

    /// <summary>The compute dtype to default to on <paramref name="device"/>: bf16 where it is fast, else fp32.</summary>
    public static ScalarType DefaultComputeDtype(DeviceType device) => HasFastBf16(device) ? ScalarType.BFloat16 : ScalarType.Float32;

    static bool DetectCpuBf16()
    {
        try
        {
            if (!File.Exists("/proc/cpuinfo")) return false;
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal)) continue;
                var flags = line.Split(new[] { ' ', '\t', ':' }, StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return false;
    }

    /// <summary>The Python/HF name of a dtype (<c>bfloat16</c>, <c>float32</c>) for configs and logs.</summary>
    public static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        ScalarType.Float64 => "float64",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
