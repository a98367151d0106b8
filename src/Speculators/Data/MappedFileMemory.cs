using System.Buffers;
using System.IO.MemoryMappedFiles;

namespace Speculators.Data;

/// <summary>
/// A read-only memory-mapped file exposed as <see cref="Memory{T}"/> (up to 2 GiB), so Arrow
/// arrays can point straight into the page cache without copying. Dispose unmaps.
/// </summary>
internal sealed unsafe class MappedFileMemory : MemoryManager<byte>
{
    readonly MemoryMappedFile _file;
    readonly MemoryMappedViewAccessor _view;
    readonly byte* _pointer;
    readonly int _length;
    bool _released;

    public string Path { get; }
    public int Length => _length;

    public MappedFileMemory(string path)
    {
        Path = path;
        long size = new FileInfo(path).Length;
        if (size == 0) throw new SpeculatorsException($"{path}: the file is empty.");
        if (size > int.MaxValue) throw new ArgumentException($"{path}: {size} bytes is too large to map as one block.");
        _length = (int)size;
        _file = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _file.CreateViewAccessor(0, size, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _pointer = p + _view.PointerOffset;
        }
        catch
        {
            _view?.Dispose();
            _file.Dispose();
            throw;
        }
    }

    public override Span<byte> GetSpan()
    {
        ObjectDisposedException.ThrowIf(_released, this);
        return new Span<byte>(_pointer, _length);
    }

    public override MemoryHandle Pin(int elementIndex = 0)
    {
        ObjectDisposedException.ThrowIf(_released, this);
        if ((uint)elementIndex > (uint)_length) throw new ArgumentOutOfRangeException(nameof(elementIndex));
        return new MemoryHandle(_pointer + elementIndex);
    }

    public override void Unpin() { }

    protected override void Dispose(bool disposing)
    {
        if (_released) return;
        _released = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _file.Dispose();
    }
}
