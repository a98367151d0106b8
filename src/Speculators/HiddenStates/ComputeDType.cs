using Speculators.Training;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>
/// Which dtype the verifier computes in. bf16 storage does not require bf16 arithmetic: on a CPU without native
/// bf16 instructions (no AVX512_BF16/AMX) libtorch emulates bf16 matmuls far slower than fp32 (measured on an
/// AVX2-only EPYC: ~0.5 vs ~20 GFLOP/s under load, bench/RESULTS.md), so there the verifier runs in float32
/// and the states are rounded to bf16 once, when stored (which is also the more accurate result). The hardware probe
/// is <see cref="Precision.HasFastBf16"/>, shared with training.
/// </summary>
public static class ComputeDType
{
    /// <summary>True when <paramref name="device"/> computes bf16 matmuls natively.</summary>
    public static bool HasNativeBFloat16(Device device) => Precision.HasFastBf16(device.type);

    /// <summary>
    /// The compute dtype for a run storing <paramref name="storeDType"/>: <paramref name="requested"/> when given, else the
    /// store dtype when the device computes it natively, else float32.
    /// </summary>
    public static ScalarType Resolve(ScalarType storeDType, ScalarType? requested, Device device)
    {
        if (requested is ScalarType r)
        {
            if (r is not (ScalarType.BFloat16 or ScalarType.Float32))
                throw new SpeculatorsException($"--compute-dtype must be bfloat16 or float32, found {HiddenStateSpec.DTypeName(r)}.");
            return r;
        }
        return storeDType == ScalarType.BFloat16 && !HasNativeBFloat16(device) ? ScalarType.Float32 : storeDType;
    }
}
