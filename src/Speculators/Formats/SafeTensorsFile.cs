using System.IO.MemoryMappedFiles;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Formats;

/// <summary>One tensor entry of a safetensors header. Offsets are relative to the data buffer.</summary>
public sealed record SafeTensorInfo(string Name, SafeTensorsDType DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
    public long NumElements => Shape.Aggregate(1L, (a, b) => a * b);
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>The parsed and validated header of a safetensors file.</summary>
public sealed class SafeTensorsHeader
{
    /// <summary>Upper bound on the JSON header size, as in the Rust crate (<c>MAX_HEADER_SIZE</c>).</summary>
    public const long MaxHeaderSize = 100_000_000;

    public required string Path { get; init; }
    /// <summary>Byte offset of the data buffer in the file (8 + header length).</summary>
    public required long DataStart { get; init; }
    /// <summary>The <c>__metadata__</c> map (empty when absent).</summary>
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    /// <summary>Tensors in data-offset order.</summary>
    public required IReadOnlyList<SafeTensorInfo> Tensors { get; init; }
    public required IReadOnlyDictionary<string, SafeTensorInfo> ByName { get; init; }

    /// <summary>Reads and validates only the header (no mapping, no data read).</summary>
    public static SafeTensorsHeader Read(string path)
    {
        using var fs = OpenShared(path);
        return Read(fs, path);
    }

    internal static FileStream OpenShared(string path)
    {
        try
        {
            return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1 << 16);
        }
        catch (FileNotFoundException)
        {
            throw new SpeculatorsException($"{path}: safetensors file not found.");
        }
        catch (DirectoryNotFoundException)
        {
            throw new SpeculatorsException($"{path}: safetensors file not found.");
        }
        catch (UnauthorizedAccessException e)
        {
            throw new SpeculatorsException($"{path}: cannot open safetensors file: {e.Message}");
        }
    }

    internal static SafeTensorsHeader Read(FileStream fs, string path)
    {
        long fileLength = fs.Length;
        if (fileLength < 8)
            throw new SpeculatorsException($"{path}: not a safetensors file: {fileLength} bytes, shorter than the 8-byte header length (truncated or empty file).");
        Span<byte> lenBytes = stackalloc byte[8];
        fs.ReadExactly(lenBytes);
        ulong n = BitConverter.ToUInt64(lenBytes);
        if (n > MaxHeaderSize)
            throw new SpeculatorsException($"{path}: corrupt safetensors file: header length {n} exceeds the 100,000,000-byte limit (not a safetensors file?).");
        if (8 + (long)n > fileLength)
            throw new SpeculatorsException($"{path}: truncated safetensors file: header claims {n} bytes but the file has only {fileLength - 8} after the length field.");
        var headerBytes = new byte[n];
        fs.ReadExactly(headerBytes);
        return Parse(headerBytes, path, fileLength);
    }

    static SafeTensorsHeader Parse(byte[] headerBytes, string path, long fileLength)
    {
        string text;
        try
        {
            text = new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(headerBytes);
        }
        catch (DecoderFallbackException)
        {
            throw new SpeculatorsException($"{path}: corrupt safetensors header: not valid UTF-8.");
        }
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text.TrimEnd(' ', '\t', '\n', '\r'));
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{path}: corrupt safetensors header: invalid JSON ({e.Message}).");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new SpeculatorsException($"{path}: corrupt safetensors header: expected a JSON object, found {doc.RootElement.ValueKind}.");
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var tensors = new List<SafeTensorInfo>();
            var byName = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind == JsonValueKind.Null) continue;
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new SpeculatorsException($"{path}: corrupt safetensors header: __metadata__ must be an object of strings, found {prop.Value.ValueKind}.");
                    foreach (var m in prop.Value.EnumerateObject())
                    {
                        if (m.Value.ValueKind != JsonValueKind.String)
                            throw new SpeculatorsException($"{path}: corrupt safetensors header: __metadata__[\"{m.Name}\"] must be a string, found {m.Value.ValueKind}.");
                        metadata[m.Name] = m.Value.GetString()!;
                    }
                    continue;
                }
                var info = ParseEntry(prop, path);
                if (!byName.TryAdd(info.Name, info))
                    throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{info.Name}' appears twice.");
                tensors.Add(info);
            }
            // After sorting by offsets: start at 0, no gaps, no overlaps, sizes consistent (as the Rust crate checks).
            tensors.Sort((a, b) => a.Begin != b.Begin ? a.Begin.CompareTo(b.Begin) : a.End.CompareTo(b.End));
            long expected = 0;
            foreach (var t in tensors)
            {
                if (t.Begin != expected)
                    throw new SpeculatorsException(
                        $"{path}: corrupt safetensors header: tensor '{t.Name}' data starts at {t.Begin}, expected {expected} " +
                        (t.Begin > expected ? "(gap between tensors)." : "(overlaps the previous tensor)."));
                long bits;
                try
                {
                    bits = checked(t.NumElements * t.DType.BitSize());
                }
                catch (OverflowException)
                {
                    throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{t.Name}' shape {t.ShapeText} overflows.");
                }
                if (bits % 8 != 0)
                    throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{t.Name}' ({t.DType.Name()} {t.ShapeText}) is not a whole number of bytes.");
                if (bits / 8 != t.ByteLength)
                    throw new SpeculatorsException(
                        $"{path}: corrupt safetensors header: tensor '{t.Name}' is {t.DType.Name()} {t.ShapeText} = {bits / 8} bytes but its data_offsets [{t.Begin}, {t.End}] span {t.ByteLength} bytes.");
                expected = t.End;
            }
            long dataStart = 8 + headerBytes.LongLength;
            if (dataStart + expected != fileLength)
                throw new SpeculatorsException(dataStart + expected > fileLength
                    ? $"{path}: truncated safetensors file: the header describes {expected} bytes of tensor data but only {fileLength - dataStart} are present."
                    : $"{path}: corrupt safetensors file: {fileLength - dataStart - expected} unexpected trailing bytes after the tensor data.");
            return new SafeTensorsHeader
            {
                Path = path, DataStart = dataStart, Metadata = metadata, Tensors = tensors, ByName = byName,
            };
        }
    }

    static SafeTensorInfo ParseEntry(JsonProperty prop, string path)
    {
        string name = prop.Name;
        var v = prop.Value;
        if (v.ValueKind != JsonValueKind.Object)
            throw new SpeculatorsException($"{path}: corrupt safetensors header: entry '{name}' must be an object with dtype, shape and data_offsets.");
        if (!v.TryGetProperty("dtype", out var dt) || dt.ValueKind != JsonValueKind.String)
            throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' has no string 'dtype'.");
        if (!SafeTensorsDTypes.TryParse(dt.GetString()!, out var dtype))
            throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' has unknown dtype '{dt.GetString()}'.");
        if (!v.TryGetProperty("shape", out var sh) || sh.ValueKind != JsonValueKind.Array)
            throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' has no 'shape' array.");
        var shape = new long[sh.GetArrayLength()];
        int i = 0;
        foreach (var d in sh.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out long x) || x < 0)
                throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' shape entries must be non-negative integers, found {d.GetRawText()}.");
            shape[i++] = x;
        }
        if (!v.TryGetProperty("data_offsets", out var off) || off.ValueKind != JsonValueKind.Array || off.GetArrayLength() != 2)
            throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' needs 'data_offsets' [begin, end].");
        var o = off.EnumerateArray().Select(e =>
            e.ValueKind == JsonValueKind.Number && e.TryGetInt64(out long x) && x >= 0 ? x
                : throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' data_offsets must be non-negative integers, found {e.GetRawText()}.")).ToArray();
        if (o[1] < o[0])
            throw new SpeculatorsException($"{path}: corrupt safetensors header: tensor '{name}' data_offsets [{o[0]}, {o[1]}] end before they begin.");
        return new SafeTensorInfo(name, dtype, shape, o[0], o[1]);
    }
}

/// <summary>
/// A memory-mapped safetensors file (read-only). Tensors are copied out of the mapping on demand,
/// one key at a time, so a caller can load a subset of a checkpoint without reading the rest.
/// Every header rule of the Rust reference reader is enforced at open; violations throw
/// <see cref="SpeculatorsException"/> naming the file and the problem.
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    readonly MemoryMappedFile? _map;
    readonly MemoryMappedViewAccessor? _view;
    readonly byte* _base;
    bool _disposed;

    public string Path { get; }
    public SafeTensorsHeader Header { get; }
    public IReadOnlyDictionary<string, string> Metadata => Header.Metadata;
    /// <summary>Tensor names in data-offset order.</summary>
    public IEnumerable<string> Keys => Header.Tensors.Select(t => t.Name);
    public int Count => Header.Tensors.Count;

    static SafeTensorsFile()
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors I/O assumes a little-endian machine.");
    }

    SafeTensorsFile(string path)
    {
        Path = path;
        using var fs = SafeTensorsHeader.OpenShared(path);
        Header = SafeTensorsHeader.Read(fs, path);
        fs.Position = 0;
        // An empty data buffer cannot be mapped past the header; map the whole file, always ≥ 8 bytes.
        _map = MemoryMappedFile.CreateFromFile(fs, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _base = p + _view.PointerOffset;
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    public static SafeTensorsFile Open(string path) => new(path);

    public bool Contains(string key) => Header.ByName.ContainsKey(key);

    public SafeTensorInfo Info(string key) =>
        Header.ByName.TryGetValue(key, out var info) ? info
            : throw new SpeculatorsException($"{Path}: no tensor named '{key}' (the file has {Count} tensors{Sample()}).");

    string Sample() => Count == 0 ? "" : ", e.g. " + string.Join(", ", Keys.Take(3).Select(k => "'" + k + "'"));

    byte* DataPointer(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _base + Header.DataStart + info.Begin;
    }

    /// <summary>Copies <paramref name="count"/> raw bytes of tensor <paramref name="key"/> starting at <paramref name="offset"/>.</summary>
    public byte[] ReadBytes(string key, long offset = 0, int? count = null)
    {
        var info = Info(key);
        long n = count ?? checked((int)(info.ByteLength - offset));
        if (offset < 0 || n < 0 || offset + n > info.ByteLength)
            throw new ArgumentOutOfRangeException(nameof(offset), $"bytes [{offset}, {offset + n}) outside tensor '{key}' of {info.ByteLength} bytes");
        var result = new byte[n];
        fixed (byte* dst = result) Buffer.MemoryCopy(DataPointer(info) + offset, dst, n, n);
        return result;
    }

    /// <summary>
    /// Loads tensor <paramref name="key"/>, optionally converting to <paramref name="dtype"/> and moving to
    /// <paramref name="device"/>. The result is a fresh tensor owning its memory (not a view of the mapping).
    /// </summary>
    public Tensor Load(string key, ScalarType? dtype = null, Device? device = null)
    {
        var info = Info(key);
        var fileType = info.DType.ToTorch($"{Path}: tensor '{key}'");
        var cpu = torch.empty(info.Shape, fileType, torch.CPU);
        try
        {
            TensorMemory.CopyFrom(cpu, DataPointer(info), info.ByteLength);
            if ((dtype == null || dtype == fileType) && (device == null || device.type == DeviceType.CPU)) return cpu;
            var converted = cpu.to(dtype ?? fileType, device ?? torch.CPU);
            cpu.Dispose();
            return converted;
        }
        catch
        {
            cpu.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Copies tensor <paramref name="key"/> into <paramref name="destination"/> (any dtype and device; the
    /// shape must match exactly). Same dtype on CPU copies straight from the mapping.
    /// </summary>
    public void ReadInto(string key, Tensor destination, string? destinationName = null)
    {
        var info = Info(key);
        var destShape = destination.shape;
        if (!destShape.SequenceEqual(info.Shape))
            throw new SpeculatorsException(
                $"{Path}: tensor '{key}' has shape {info.ShapeText} but {destinationName ?? "the destination"} expects [{string.Join(", ", destShape)}].");
        var fileType = info.DType.ToTorch($"{Path}: tensor '{key}'");
        using var _ = torch.no_grad();
        if (destination.dtype == fileType && destination.device_type == DeviceType.CPU && destination.is_contiguous())
        {
            TensorMemory.CopyFrom(destination, DataPointer(info), info.ByteLength);
            return;
        }
        using var loaded = Load(key);
        destination.copy_(loaded);
    }

    /// <summary>Loads every tensor accepted by <paramref name="filter"/> (all when null).</summary>
    public Dictionary<string, Tensor> LoadAll(Func<string, bool>? filter = null, ScalarType? dtype = null, Device? device = null)
    {
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        try
        {
            foreach (var t in Header.Tensors)
                if (filter == null || filter(t.Name)) result[t.Name] = Load(t.Name, dtype, device);
            return result;
        }
        catch
        {
            foreach (var t in result.Values) t.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view != null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}

/// <summary>Raw access to the memory of contiguous CPU tensors, without the 2 GiB limit of spans.</summary>
internal static unsafe class TensorMemory
{
    /// <summary>Pointer to the first element of a contiguous CPU tensor (null for empty tensors).</summary>
    public static byte* Pointer(Tensor t)
    {
        if (t.device_type != DeviceType.CPU) throw new InvalidOperationException("tensor is not on the CPU");
        if (!t.is_contiguous()) throw new InvalidOperationException("tensor is not contiguous");
        if (t.numel() == 0) return null;
        // A one-element view starts at the tensor's data pointer; its span is tiny, so no int overflow.
        using var flat = t.view(-1);
        using var first = flat.narrow(0, 0, 1);
        fixed (byte* p = first.bytes) return p;
    }

    public static long ByteLength(Tensor t) => t.numel() * t.ElementSize;

    public static void CopyFrom(Tensor destination, byte* source, long byteLength)
    {
        long n = ByteLength(destination);
        if (n != byteLength) throw new InvalidOperationException($"size mismatch: tensor has {n} bytes, source {byteLength}");
        if (n == 0) return;
        Buffer.MemoryCopy(source, Pointer(destination), n, n);
    }

    /// <summary>Writes the bytes of a contiguous CPU tensor to <paramref name="stream"/> in chunks of at most 1 GiB.</summary>
    public static void WriteTo(Tensor t, Stream stream, int chunkBytes = 1 << 30)
    {
        long n = ByteLength(t);
        if (n == 0) return;
        byte* p = Pointer(t);
        for (long off = 0; off < n; off += chunkBytes)
        {
            int len = (int)Math.Min(chunkBytes, n - off);
            stream.Write(new ReadOnlySpan<byte>(p + off, len));
        }
    }
}
