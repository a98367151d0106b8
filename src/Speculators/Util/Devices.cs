using TorchSharp;

namespace Speculators.Util;

/// <summary>Device parsing shared by every verb (<c>--device cpu|cuda|cuda:N</c>).</summary>
public static class Devices
{
    public static torch.Device Parse(string? spec)
    {
        string s = string.IsNullOrWhiteSpace(spec) ? "cpu" : spec.Trim().ToLowerInvariant();
        if (s == "cpu") return torch.CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            if (!torch.cuda.is_available())
                throw new SpeculatorsException(
                    $"--device {spec}: CUDA is not available in this build. Rebuild with a CUDA libtorch " +
                    "package (-p:LibTorchPackage=libtorch-cuda-12.8-linux-x64, see README \"GPU builds\") or use --device cpu.");
            if (s == "cuda") return torch.CUDA;
            if (!int.TryParse(s.AsSpan(5), out int index) || index < 0 || index >= torch.cuda.device_count())
                throw new SpeculatorsException($"--device {spec}: expected cuda:N with N in [0, {torch.cuda.device_count()}).");
            return new torch.Device(DeviceType.CUDA, index);
        }
        throw new SpeculatorsException($"--device {spec}: expected cpu, cuda or cuda:N.");
    }
}
