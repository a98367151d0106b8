using System.Buffers.Binary;
using System.Text;

namespace Speculators.Logging;

/// <summary>
/// A minimal protocol-buffers encoder (varints, fixed32/64, length-delimited fields) for the few
/// messages our metric backends write. Callers write fields in field-number order and skip proto3
/// default values themselves, as the reference serializers do (fields inside a <c>oneof</c> are
/// always written).
/// </summary>
public sealed class ProtoWriter
{
    readonly MemoryStream _buffer = new();

    const int WireVarint = 0, WireFixed64 = 1, WireLengthDelimited = 2, WireFixed32 = 5;

    public int Length => (int)_buffer.Length;

    public byte[] ToArray() => _buffer.ToArray();

    void Tag(int field, int wire) => Varint(((ulong)field << 3) | (uint)wire);

    /// <summary>A raw base-128 varint.</summary>
    public void Varint(ulong value)
    {
        while (value >= 0x80)
        {
            _buffer.WriteByte((byte)(value | 0x80));
            value >>= 7;
        }
        _buffer.WriteByte((byte)value);
    }

    /// <summary>int64/int32/enum field (negative values take ten bytes, two's complement).</summary>
    public ProtoWriter Int64(int field, long value)
    {
        Tag(field, WireVarint);
        Varint(unchecked((ulong)value));
        return this;
    }

    public ProtoWriter Bool(int field, bool value)
    {
        Tag(field, WireVarint);
        Varint(value ? 1UL : 0UL);
        return this;
    }

    public ProtoWriter Double(int field, double value)
    {
        Tag(field, WireFixed64);
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteDoubleLittleEndian(b, value);
        _buffer.Write(b);
        return this;
    }

    public ProtoWriter Float(int field, float value)
    {
        Tag(field, WireFixed32);
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteSingleLittleEndian(b, value);
        _buffer.Write(b);
        return this;
    }

    public ProtoWriter Bytes(int field, ReadOnlySpan<byte> value)
    {
        Tag(field, WireLengthDelimited);
        Varint((ulong)value.Length);
        _buffer.Write(value);
        return this;
    }

    public ProtoWriter String(int field, string value) => Bytes(field, Encoding.UTF8.GetBytes(value));

    /// <summary>A nested message built by <paramref name="build"/> (written even when empty: message fields have presence).</summary>
    public ProtoWriter Message(int field, Action<ProtoWriter> build)
    {
        var inner = new ProtoWriter();
        build(inner);
        return Bytes(field, inner.ToArray());
    }
}
