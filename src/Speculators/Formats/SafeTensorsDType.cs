using TorchSharp;

namespace Speculators.Formats;

/// <summary>
/// The element types of the safetensors format, in the Rust crate's enum order (low → high).
/// The Python writer sorts tensors by this order descending (larger alignment first), then by name.
/// </summary>
public enum SafeTensorsDType
{
    BOOL, F4, F6_E2M3, F6_E3M2, U8, I8, F8_E5M2, F8_E4M3, F8_E8M0, F8_E4M3FNUZ, F8_E5M2FNUZ,
    I16, U16, F16, BF16, I32, U32, F32, C64, F64, I64, U64,
}

/// <summary>Names, bit sizes and the torch mapping of <see cref="SafeTensorsDType"/>.</summary>
public static class SafeTensorsDTypes
{
    static readonly Dictionary<string, SafeTensorsDType> ByName =
        Enum.GetValues<SafeTensorsDType>().ToDictionary(d => d.ToString(), d => d, StringComparer.Ordinal);

    /// <summary>The exact JSON name (e.g. "BF16").</summary>
    public static string Name(this SafeTensorsDType d) => d.ToString();

    public static bool TryParse(string name, out SafeTensorsDType dtype) => ByName.TryGetValue(name, out dtype);

    /// <summary>Size of one element in bits (4 and 6 for the sub-byte float types).</summary>
    public static int BitSize(this SafeTensorsDType d) => d switch
    {
        SafeTensorsDType.F4 => 4,
        SafeTensorsDType.F6_E2M3 or SafeTensorsDType.F6_E3M2 => 6,
        SafeTensorsDType.BOOL or SafeTensorsDType.U8 or SafeTensorsDType.I8 or SafeTensorsDType.F8_E5M2
            or SafeTensorsDType.F8_E4M3 or SafeTensorsDType.F8_E8M0 or SafeTensorsDType.F8_E4M3FNUZ
            or SafeTensorsDType.F8_E5M2FNUZ => 8,
        SafeTensorsDType.I16 or SafeTensorsDType.U16 or SafeTensorsDType.F16 or SafeTensorsDType.BF16 => 16,
        SafeTensorsDType.I32 or SafeTensorsDType.U32 or SafeTensorsDType.F32 => 32,
        _ => 64,
    };

    /// <summary>The dtypes we convert to and from torch tensors.</summary>
    public static readonly IReadOnlyList<SafeTensorsDType> TorchSupported =
    [
        SafeTensorsDType.F32, SafeTensorsDType.F16, SafeTensorsDType.BF16, SafeTensorsDType.F64, SafeTensorsDType.I64,
        SafeTensorsDType.I32, SafeTensorsDType.I16, SafeTensorsDType.I8, SafeTensorsDType.U8, SafeTensorsDType.BOOL,
    ];

    public static bool TryToTorch(this SafeTensorsDType d, out torch.ScalarType type)
    {
        switch (d)
        {
            case SafeTensorsDType.F32: type = torch.ScalarType.Float32; return true;
            case SafeTensorsDType.F16: type = torch.ScalarType.Float16; return true;
            case SafeTensorsDType.BF16: type = torch.ScalarType.BFloat16; return true;
            case SafeTensorsDType.F64: type = torch.ScalarType.Float64; return true;
            case SafeTensorsDType.I64: type = torch.ScalarType.Int64; return true;
            case SafeTensorsDType.I32: type = torch.ScalarType.Int32; return true;
            case SafeTensorsDType.I16: type = torch.ScalarType.Int16; return true;
            case SafeTensorsDType.I8: type = torch.ScalarType.Int8; return true;
            case SafeTensorsDType.U8: type = torch.ScalarType.Byte; return true;
            case SafeTensorsDType.BOOL: type = torch.ScalarType.Bool; return true;
            default: type = default; return false;
        }
    }

    public static torch.ScalarType ToTorch(this SafeTensorsDType d, string context) =>
        d.TryToTorch(out var t) ? t
            : throw new SpeculatorsException(
                $"{context}: dtype {d.Name()} cannot be loaded as a torch tensor here (supported: {string.Join(", ", TorchSupported.Select(x => x.Name()))}).");

    public static SafeTensorsDType FromTorch(torch.ScalarType t, string context) => t switch
    {
        torch.ScalarType.Float32 => SafeTensorsDType.F32,
        torch.ScalarType.Float16 => SafeTensorsDType.F16,
        torch.ScalarType.BFloat16 => SafeTensorsDType.BF16,
        torch.ScalarType.Float64 => SafeTensorsDType.F64,
        torch.ScalarType.Int64 => SafeTensorsDType.I64,
        torch.ScalarType.Int32 => SafeTensorsDType.I32,
        torch.ScalarType.Int16 => SafeTensorsDType.I16,
        torch.ScalarType.Int8 => SafeTensorsDType.I8,
        torch.ScalarType.Byte => SafeTensorsDType.U8,
        torch.ScalarType.Bool => SafeTensorsDType.BOOL,
        _ => throw new SpeculatorsException($"{context}: torch dtype {t} has no safetensors equivalent supported here."),
    };
}
