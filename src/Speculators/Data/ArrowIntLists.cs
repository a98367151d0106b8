using Apache.Arrow;
using Apache.Arrow.Types;

namespace Speculators.Data;

/// <summary>
/// Reads rows of a <c>list&lt;int*&gt;</c> / <c>large_list&lt;int*&gt;</c> Arrow column as int64
/// (datasets writes <c>list&lt;int64&gt;</c>; other integer widths and bool children are widened).
/// </summary>
internal static class ArrowIntLists
{
    /// <summary>True when <paramref name="type"/> is a (large) list of integers or bools.</summary>
    public static bool IsIntList(IArrowType type, out string childType)
    {
        IArrowType? child = type switch
        {
            ListType l => l.ValueDataType,
            LargeListType ll => ll.ValueDataType,
            _ => null,
        };
        childType = child?.Name ?? type.Name;
        return child is Int64Type or Int32Type or Int16Type or Int8Type or UInt8Type or UInt16Type or UInt32Type or BooleanType;
    }

    /// <summary>(start, end) of row <paramref name="row"/> in the child array; null when the row is null.</summary>
    public static (long Start, long End)? Range(IArrowArray column, int row)
    {
        switch (column)
        {
            case ListArray l:
                if (l.IsNull(row)) return null;
                var o = l.ValueOffsets;
                return (o[row], o[row + 1]);
            case LargeListArray ll:
                if (ll.IsNull(row)) return null;
                var lo = ll.ValueOffsets;
                return (lo[row], lo[row + 1]);
            default:
                throw new InvalidOperationException($"column is {column.Data.DataType.Name}, not a list");
        }
    }

    public static int Length(IArrowArray column, int row)
    {
        var r = Range(column, row);
        return r == null ? -1 : checked((int)(r.Value.End - r.Value.Start));
    }

    public static IArrowArray Values(IArrowArray column) => column switch
    {
        ListArray l => l.Values,
        LargeListArray ll => ll.Values,
        _ => throw new InvalidOperationException($"column is {column.Data.DataType.Name}, not a list"),
    };

    /// <summary>Copies child values [start, start + dest.Length) into <paramref name="dest"/> as int64.</summary>
    public static bool CopyValues(IArrowArray values, long start, Span<long> dest)
    {
        int s = checked((int)start);
        int n = dest.Length;
        if (values.NullCount > 0)
            for (int i = 0; i < n; i++) if (values.IsNull(s + i)) return false;
        switch (values)
        {
            case Int64Array a: a.Values.Slice(s, n).CopyTo(dest); break;
            case Int32Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case Int16Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case Int8Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case UInt8Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case UInt16Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case UInt32Array a: { var v = a.Values.Slice(s, n); for (int i = 0; i < n; i++) dest[i] = v[i]; break; }
            case BooleanArray a: for (int i = 0; i < n; i++) dest[i] = a.GetValue(s + i) == true ? 1 : 0; break;
            default: throw new InvalidOperationException($"unsupported list child type {values.Data.DataType.Name}");
        }
        return true;
    }
}
