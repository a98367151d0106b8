using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>
/// Which dtype the verifier computes in. bf16 storage does not require bf16 arithmetic: on a CPU without native
/// bf16 instructions (no AVX512_BF16/AMX on x86, no BF16 on Arm) libtorch emulates bf16 matmuls about 50×
/// slower than fp32 (measured on an AVX2-only EPYC: 0.4 vs 20 GFLOP/s), so there the verifier runs in float32
/// and the states are rounded to bf16 once, when stored (which is also the more accurate result).
/// </summary>
public static class ComputeDType
{
    static readonly Lazy<bool> CpuBf16 = new(DetectCpuBf16);

    /// <summary>
    /// True when <paramref name="device"/> computes bf16 natively: CUDA devices (assumed Ampere or newer), or a CPU whose
    /// flags list <c>avx512_bf16</c>, <c>amx_bf16</c> or (Arm) <c>bf16</c>. <c>SPECULATORS_CPU_BF16=0|1</c> overrides the CPU probe.
    /// </summary>
    public static bool HasNativeBFloat16(Device device) => device.type == DeviceType.CUDA || CpuBf16.Value;

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

    static bool DetectCpuBf16()
    {
        string? env = Environment.GetEnvironmentVariable("SPECULATORS_CPU_BF16");
        if (env is "0" or "false") return false;
        if (env is "1" or "true") return true;
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return false;
        try
        {
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                if (!line.StartsWith("flags", StringComparison.Ordinal) && !line.StartsWith("Features", StringComparison.Ordinal)) continue;
                var flags = line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return flags.Contains("avx512_bf16") || flags.Contains("amx_bf16") || flags.Contains("bf16");
            }
        }
        catch (IOException)
        {
        }
        return false;
    }
}
