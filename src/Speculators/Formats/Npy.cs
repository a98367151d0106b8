using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Speculators.Util;

namespace Speculators.Formats;

/// <summary>Element types we read and write in <c>.npy</c> files (numpy <c>dtype.str</c> in brackets).</summary>
public enum NpyDType
{
    /// <summary><c>|b1</c>: one byte, 0 or 1.</summary>
    Bool,
    /// <summary><c>|u1</c></summary>
    UInt8,
    /// <summary><c>|i1</c></summary>
    Int8,
    /// <summary><c>&lt;i4</c></summary>
    Int32,
    /// <summary><c>&lt;i8</c></summary>
    Int64,
    /// <summary><c>&lt;f4</c></summary>
    Float32,
    /// <summary><c>&lt;f8</c></summary>
    Float64,
}

/// <summary>
/// An array read from a <c>.npy</c> file: dtype, shape and the raw little-endian element bytes in
/// C order (Fortran-order files are rejected). Typed accessors convert where that is lossless.
/// </summary>
public sealed class NpyArray
{
    public NpyDType DType { get; }
    public long[] Shape { get; }
    /// <summary>Raw element bytes, little-endian, C order.</summary>
    public byte[] Data { get; }
    /// <summary>The file this array came from (for error messages), or null.</summary>
    public string? Source { get; }

    public NpyArray(NpyDType dtype, long[] shape, byte[] data, string? source = null)
    {
        long count = Npy.ElementCount(shape);
        if (count * Npy.ItemSize(dtype) != data.LongLength)
            throw new ArgumentException($"npy data has {data.LongLength} bytes; shape ({string.Join(", ", shape)}) of {dtype} needs {count * Npy.ItemSize(dtype)}.");
        DType = dtype;
        Shape = shape;
        Data = data;
        Source = source;
    }

    public long Length => Npy.ElementCount(Shape);
    string Name => Source ?? "npy array";

    /// <summary>Elements as int64; accepts any integer dtype and bool (0/1).</summary>
    public long[] ToInt64()
    {
        var result = new long[Length];
        switch (DType)
        {
            case NpyDType.Int64: MemoryMarshal.Cast<byte, long>(Data).CopyTo(result); break;
            case NpyDType.Int32: { var s = MemoryMarshal.Cast<byte, int>(Data); for (int i = 0; i < s.Length; i++) result[i] = s[i]; break; }
            case NpyDType.Int8: for (int i = 0; i < Data.Length; i++) result[i] = (sbyte)Data[i]; break;
            case NpyDType.UInt8 or NpyDType.Bool: for (int i = 0; i < Data.Length; i++) result[i] = Data[i]; break;
            default: throw new SpeculatorsException($"{Name}: expected an integer array, found dtype {Npy.Descr(DType)}.");
        }
        return result;
    }

    /// <summary>Elements as bool; only a <c>|b1</c> array is accepted.</summary>
    public bool[] ToBool()
    {
        if (DType != NpyDType.Bool) throw new SpeculatorsException($"{Name}: expected dtype bool (|b1), found {Npy.Descr(DType)}.");
        var result = new bool[Data.Length];
        for (int i = 0; i < Data.Length; i++)
        {
            if (Data[i] > 1) throw new SpeculatorsException($"{Name}: bool element {i} has byte value {Data[i]} (expected 0 or 1).");
            result[i] = Data[i] != 0;
        }
        return result;
    }

    public int[] ToInt32()
    {
        if (DType != NpyDType.Int32) throw new SpeculatorsException($"{Name}: expected dtype int32 (<i4), found {Npy.Descr(DType)}.");
        return MemoryMarshal.Cast<byte, int>(Data).ToArray();
    }

    public float[] ToFloat32()
    {
        if (DType != NpyDType.Float32) throw new SpeculatorsException($"{Name}: expected dtype float32 (<f4), found {Npy.Descr(DType)}.");
        return MemoryMarshal.Cast<byte, float>(Data).ToArray();
    }
}

/// <summary>
/// NumPy <c>.npy</c> reader/writer following <c>numpy/lib/_format_impl.py</c> (hf_formats.md §5):
/// magic <c>\x93NUMPY</c>, version 1.0 (2.0 only if the header exceeds 65,535 bytes), header dict
/// with keys in sorted order, 21 - len(repr(shape[-1])) spaces of growth room, space padding and a
/// newline so the data starts at a multiple of 64. Files we write are byte-identical to np.save.
/// </summary>
public static class Npy
{
    static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    const int ArrayAlign = 64;
    const int GrowthAxisMaxDigits = 21;
    const int MaxHeaderSize = 10_000;

    public static int ItemSize(NpyDType t) => t switch
    {
        NpyDType.Bool or NpyDType.UInt8 or NpyDType.Int8 => 1,
        NpyDType.Int32 or NpyDType.Float32 => 4,
        NpyDType.Int64 or NpyDType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    public static string Descr(NpyDType t) => t switch
    {
        NpyDType.Bool => "|b1",
        NpyDType.UInt8 => "|u1",
        NpyDType.Int8 => "|i1",
        NpyDType.Int32 => "<i4",
        NpyDType.Int64 => "<i8",
        NpyDType.Float32 => "<f4",
        NpyDType.Float64 => "<f8",
        _ => throw new ArgumentOutOfRangeException(nameof(t)),
    };

    static NpyDType? ParseDescr(string d) => d switch
    {
        "|b1" => NpyDType.Bool,
        "|u1" or "<u1" => NpyDType.UInt8,
        "|i1" or "<i1" => NpyDType.Int8,
        "<i4" => NpyDType.Int32,
        "<i8" => NpyDType.Int64,
        "<f4" => NpyDType.Float32,
        "<f8" => NpyDType.Float64,
        _ => null,
    };

    internal static long ElementCount(long[] shape)
    {
        long n = 1;
        foreach (var d in shape)
        {
            if (d < 0) throw new ArgumentException("negative dimension in shape");
            n = checked(n * d);
        }
        return n;
    }

    /// <summary>The header bytes numpy writes for this dtype and C-order shape (magic through the final newline).</summary>
    public static byte[] Header(NpyDType dtype, ReadOnlySpan<long> shape)
    {
        var sb = new StringBuilder();
        sb.Append("{'descr': '").Append(Descr(dtype)).Append("', 'fortran_order': False, 'shape': ");
        sb.Append(ShapeRepr(shape)).Append(", }");
        if (shape.Length > 0)
        {
            int lastDigits = shape[^1].ToString(CultureInfo.InvariantCulture).Length;
            sb.Append(' ', Math.Max(0, GrowthAxisMaxDigits - lastDigits));
        }
        string text = sb.ToString();
        // Version 1.0: 6 magic + 2 version + 2 length; 2.0: 4-byte length.
        int preamble = 10;
        int pad = ArrayAlign - ((preamble + text.Length + 1) % ArrayAlign);
        if (preamble + text.Length + 1 + pad > 65535 + preamble)
        {
            preamble = 12;
            pad = ArrayAlign - ((preamble + text.Length + 1) % ArrayAlign);
        }
        string full = text + new string(' ', pad) + "\n";
        byte[] headerText = Encoding.Latin1.GetBytes(full);
        var result = new byte[preamble + headerText.Length];
        Magic.CopyTo(result, 0);
        if (preamble == 10)
        {
            result[6] = 1; result[7] = 0;
            BinaryPrimitives.WriteUInt16LittleEndian(result.AsSpan(8), (ushort)headerText.Length);
        }
        else
        {
            result[6] = 2; result[7] = 0;
            BinaryPrimitives.WriteUInt32LittleEndian(result.AsSpan(8), (uint)headerText.Length);
        }
        headerText.CopyTo(result, preamble);
        return result;
    }

    static string ShapeRepr(ReadOnlySpan<long> shape)
    {
        if (shape.Length == 0) return "()";
        if (shape.Length == 1) return "(" + shape[0].ToString(CultureInfo.InvariantCulture) + ",)";
        var parts = new string[shape.Length];
        for (int i = 0; i < shape.Length; i++) parts[i] = shape[i].ToString(CultureInfo.InvariantCulture);
        return "(" + string.Join(", ", parts) + ")";
    }

    /// <summary>The complete file bytes of an array (what <c>np.save</c> writes).</summary>
    public static byte[] Encode(NpyDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data)
    {
        long expected = ElementCount(shape.ToArray()) * ItemSize(dtype);
        if (expected != data.Length)
            throw new ArgumentException($"npy data has {data.Length} bytes; the shape needs {expected}.");
        byte[] header = Header(dtype, shape);
        var result = new byte[header.Length + data.Length];
        header.CopyTo(result, 0);
        data.CopyTo(result.AsSpan(header.Length));
        return result;
    }

    public static byte[] Encode(ReadOnlySpan<long> values) =>
        Encode(NpyDType.Int64, [values.Length], MemoryMarshal.AsBytes(values));

    public static byte[] Encode(ReadOnlySpan<int> values) =>
        Encode(NpyDType.Int32, [values.Length], MemoryMarshal.AsBytes(values));

    public static byte[] Encode(ReadOnlySpan<float> values) =>
        Encode(NpyDType.Float32, [values.Length], MemoryMarshal.AsBytes(values));

    public static byte[] Encode(ReadOnlySpan<bool> values)
    {
        var bytes = new byte[values.Length];
        for (int i = 0; i < values.Length; i++) bytes[i] = values[i] ? (byte)1 : (byte)0;
        return Encode(NpyDType.Bool, [values.Length], bytes);
    }

    /// <summary>Writes a 1-D int64 array atomically.</summary>
    public static void Write(string path, ReadOnlySpan<long> values) => AtomicFile.WriteAllBytes(path, Encode(values));
    /// <summary>Writes a 1-D bool array atomically.</summary>
    public static void Write(string path, ReadOnlySpan<bool> values) => AtomicFile.WriteAllBytes(path, Encode(values));
    /// <summary>Writes a 1-D int32 array atomically.</summary>
    public static void Write(string path, ReadOnlySpan<int> values) => AtomicFile.WriteAllBytes(path, Encode(values));
    /// <summary>Writes a 1-D float32 array atomically.</summary>
    public static void Write(string path, ReadOnlySpan<float> values) => AtomicFile.WriteAllBytes(path, Encode(values));

    /// <summary>Writes any supported dtype and shape atomically.</summary>
    public static void Write(string path, NpyDType dtype, ReadOnlySpan<long> shape, ReadOnlySpan<byte> data) =>
        AtomicFile.WriteAllBytes(path, Encode(dtype, shape, data));

    public static NpyArray Read(string path)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: file not found (expected a NumPy .npy file).");
        byte[] bytes = File.ReadAllBytes(path);
        return Decode(bytes, path);
    }

    /// <summary>Parses a whole <c>.npy</c> file. Rejects what <c>np.load(allow_pickle=False)</c> rejects.</summary>
    public static NpyArray Decode(ReadOnlySpan<byte> bytes, string? source = null)
    {
        string name = source ?? "npy data";
        if (bytes.Length < 10 || !bytes[..6].SequenceEqual(Magic))
            throw new SpeculatorsException($"{name}: not a NumPy .npy file (magic \\x93NUMPY missing).");
        byte major = bytes[6], minor = bytes[7];
        int preamble;
        long headerLen;
        if (major == 1 && minor == 0) { preamble = 10; headerLen = BinaryPrimitives.ReadUInt16LittleEndian(bytes[8..]); }
        else if ((major == 2 || major == 3) && minor == 0)
        {
            if (bytes.Length < 12) throw new SpeculatorsException($"{name}: truncated .npy header.");
            preamble = 12; headerLen = BinaryPrimitives.ReadUInt32LittleEndian(bytes[8..]);
        }
        else throw new SpeculatorsException($"{name}: unsupported .npy format version {major}.{minor} (expected 1.0, 2.0 or 3.0).");
        if (headerLen > MaxHeaderSize) throw new SpeculatorsException($"{name}: .npy header of {headerLen} bytes exceeds {MaxHeaderSize}.");
        if (preamble + headerLen > bytes.Length) throw new SpeculatorsException($"{name}: truncated .npy header.");
        var headerBytes = bytes.Slice(preamble, (int)headerLen);
        string header = major == 3 ? Encoding.UTF8.GetString(headerBytes) : Encoding.Latin1.GetString(headerBytes);
        var dict = ParseHeaderDict(header, name);
        if (dict.Count != 3 || !dict.ContainsKey("descr") || !dict.ContainsKey("fortran_order") || !dict.ContainsKey("shape"))
            throw new SpeculatorsException($"{name}: .npy header keys must be exactly descr, fortran_order, shape; found {string.Join(", ", dict.Keys)}.");
        string descrText = dict["descr"];
        if (descrText.Length < 2 || descrText[0] != '\'' || descrText[^1] != '\'')
            throw new SpeculatorsException($"{name}: .npy descr {descrText} is not a simple dtype string.");
        string descr = descrText[1..^1];
        var dtype = ParseDescr(descr)
            ?? throw new SpeculatorsException($"{name}: unsupported .npy dtype '{descr}' (supported: |b1, |u1, |i1, <i4, <i8, <f4, <f8).");
        string fortran = dict["fortran_order"];
        if (fortran == "True")
        {
            throw new SpeculatorsException($"{name}: Fortran-order .npy arrays are not supported; save a C-order array.");
        }
        if (fortran != "False") throw new SpeculatorsException($"{name}: .npy fortran_order is '{fortran}' (expected True or False).");
        long[] shape = ParseShape(dict["shape"], name);
        long count = ElementCount(shape);
        long need = count * ItemSize(dtype);
        long dataStart = preamble + headerLen;
        if (bytes.Length - dataStart < need)
            throw new SpeculatorsException($"{name}: .npy data truncated: shape ({string.Join(", ", shape)}) of {descr} needs {need} bytes, file has {bytes.Length - dataStart}.");
        return new NpyArray(dtype, shape, bytes.Slice((int)dataStart, (int)need).ToArray(), source);
    }

    /// <summary>Parses the Python literal dict of a .npy header into key → literal text.</summary>
    static Dictionary<string, string> ParseHeaderDict(string header, string name)
    {
        string s = header.Trim();
        if (s.Length < 2 || s[0] != '{' || s[^1] != '}') throw new SpeculatorsException($"{name}: .npy header is not a dict: {s}");
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        int i = 1;
        while (true)
        {
            while (i < s.Length && (s[i] == ' ' || s[i] == ',')) i++;
            if (i >= s.Length - 1) break;
            if (s[i] != '\'' && s[i] != '"') throw new SpeculatorsException($"{name}: cannot parse .npy header: {s}");
            char q = s[i];
            int end = s.IndexOf(q, i + 1);
            if (end < 0) throw new SpeculatorsException($"{name}: cannot parse .npy header: {s}");
            string key = s[(i + 1)..end];
            i = end + 1;
            while (i < s.Length && s[i] == ' ') i++;
            if (i >= s.Length || s[i] != ':') throw new SpeculatorsException($"{name}: cannot parse .npy header: {s}");
            i++;
            while (i < s.Length && s[i] == ' ') i++;
            int start = i;
            int depth = 0;
            char? inQuote = null;
            for (; i < s.Length - 1; i++)
            {
                char c = s[i];
                if (inQuote != null) { if (c == inQuote) inQuote = null; continue; }
                if (c == '\'' || c == '"') inQuote = c;
                else if (c == '(' || c == '[') depth++;
                else if (c == ')' || c == ']') depth--;
                else if (c == ',' && depth == 0) break;
            }
            result[key] = s[start..i].Trim();
        }
        return result;
    }

    static long[] ParseShape(string text, string name)
    {
        string t = text.Trim();
        if (t.Length < 2 || t[0] != '(' || t[^1] != ')') throw new SpeculatorsException($"{name}: .npy shape {text} is not a tuple.");
        var parts = t[1..^1].Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        var shape = new long[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            string p = parts[i].TrimEnd('L');
            if (!long.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out shape[i]))
                throw new SpeculatorsException($"{name}: .npy shape {text} has a non-integer dimension.");
        }
        return shape;
    }
}
