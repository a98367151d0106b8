using System.Globalization;
using System.Text.Json.Nodes;
using Apache.Arrow;
using Apache.Arrow.Types;

namespace Speculators.Data;

/// <summary>Arrow values (one row of a record batch) as JSON nodes, for conversation rows stored in Arrow shards.</summary>
internal static class ArrowJson
{
    public static JsonObject Row(RecordBatch batch, int row)
    {
        var o = new JsonObject();
        for (int c = 0; c < batch.ColumnCount; c++)
            o[batch.Schema.GetFieldByIndex(c).Name] = Value(batch.Column(c), row);
        return o;
    }

    public static JsonNode? Value(IArrowArray array, int i)
    {
        if (array.IsNull(i)) return null;
        switch (array)
        {
            case StringArray s: return JsonValue.Create(s.GetString(i));
            case LargeStringArray ls: return JsonValue.Create(ls.GetString(i));
            case StringViewArray sv: return JsonValue.Create(sv.GetString(i));
            case BooleanArray b: return JsonValue.Create(b.GetValue(i) == true);
            case Int64Array a: return JsonValue.Create(a.Values[i]);
            case Int32Array a: return JsonValue.Create(a.Values[i]);
            case Int16Array a: return JsonValue.Create(a.Values[i]);
            case Int8Array a: return JsonValue.Create(a.Values[i]);
            case UInt64Array a: return JsonValue.Create(a.Values[i]);
            case UInt32Array a: return JsonValue.Create(a.Values[i]);
            case UInt16Array a: return JsonValue.Create(a.Values[i]);
            case UInt8Array a: return JsonValue.Create(a.Values[i]);
            case DoubleArray a: return Finite(a.Values[i]);
            case FloatArray a: return Finite(a.Values[i]);
            case BinaryArray bin when bin is not StringArray: return JsonValue.Create(Convert.ToBase64String(bin.GetBytes(i)));
            case ListArray l:
                {
                    var values = l.Values;
                    int start = l.ValueOffsets[i], end = l.ValueOffsets[i + 1];
                    var arr = new JsonArray();
                    for (int k = start; k < end; k++) arr.Add(Value(values, k));
                    return arr;
                }
            case LargeListArray ll:
                {
                    var values = ll.Values;
                    long start = ll.ValueOffsets[i], end = ll.ValueOffsets[i + 1];
                    var arr = new JsonArray();
                    for (long k = start; k < end; k++) arr.Add(Value(values, checked((int)k)));
                    return arr;
                }
            case FixedSizeListArray fl:
                {
                    int size = ((FixedSizeListType)fl.Data.DataType).ListSize;
                    var arr = new JsonArray();
                    for (int k = 0; k < size; k++) arr.Add(Value(fl.Values, (fl.Offset + i) * size + k));
                    return arr;
                }
            case StructArray st:
                {
                    var type = (StructType)st.Data.DataType;
                    var o = new JsonObject();
                    for (int f = 0; f < type.Fields.Count; f++)
                        o[type.Fields[f].Name] = Value(st.Fields[f], i);
                    return o;
                }
            case NullArray: return null;
            case Date32Array d: return d.GetDateOnly(i) is DateOnly day ? JsonValue.Create(day.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture)) : null;
            case TimestampArray ts: return ts.GetTimestamp(i) is DateTimeOffset t ? JsonValue.Create(t.ToString("o", CultureInfo.InvariantCulture)) : null;
            case DictionaryArray da: return Value(da.Dictionary, IndexOf(da.Indices, i));
            default: throw new NotSupportedException($"unsupported Arrow type {array.Data.DataType.Name} in a conversation row");
        }
    }

    static int IndexOf(IArrowArray indices, int i) => indices switch
    {
        Int8Array a => a.Values[i],
        Int16Array a => a.Values[i],
        Int32Array a => a.Values[i],
        Int64Array a => checked((int)a.Values[i]),
        UInt8Array a => a.Values[i],
        UInt16Array a => a.Values[i],
        UInt32Array a => checked((int)a.Values[i]),
        _ => throw new NotSupportedException($"unsupported dictionary index type {indices.Data.DataType.Name}"),
    };

    static JsonNode Finite(double d) =>
        double.IsFinite(d) ? JsonValue.Create(d) : JsonValue.Create(d.ToString(CultureInfo.InvariantCulture));
}
