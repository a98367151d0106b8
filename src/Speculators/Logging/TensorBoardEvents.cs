using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text.Json;

namespace Speculators.Logging;

/// <summary>
/// TFRecord framing of TensorBoard event files: <c>u64 length | masked_crc32c(length) | data |
/// masked_crc32c(data)</c>, little-endian, CRC-32C (Castagnoli) masked as
/// <c>((c &gt;&gt; 15) | (c &lt;&lt; 17)) + 0xA282EAD8</c>.
/// </summary>
public static class TfRecord
{
    /// <summary>CRC-32C of <paramref name="data"/> (init and final xor 0xFFFFFFFF), using the CPU's crc32c instruction where present.</summary>
    public static uint Crc32C(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data.Slice(i, 8)));
        for (; i < data.Length; i++)
            crc = BitOperations.Crc32C(crc, data[i]);
        return ~crc;
    }

    /// <summary>TensorBoard's masked CRC.</summary>
    public static uint MaskedCrc32C(ReadOnlySpan<byte> data)
    {
        uint c = Crc32C(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xA282EAD8u);
    }

    /// <summary>One framed record.</summary>
    public static byte[] Frame(ReadOnlySpan<byte> data)
    {
        var record = new byte[8 + 4 + data.Length + 4];
        BinaryPrimitives.WriteUInt64LittleEndian(record.AsSpan(0, 8), (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8, 4), MaskedCrc32C(record.AsSpan(0, 8)));
        data.CopyTo(record.AsSpan(12));
        BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12 + data.Length, 4), MaskedCrc32C(data));
        return record;
    }
}

/// <summary>
/// Serialized <c>tensorboard.Event</c> messages (compat/proto/event.proto, summary.proto, tensor.proto,
/// plugins/hparams/plugin_data.proto) in the byte layout the Python writers produce.
/// </summary>
public static class TensorBoardEvents
{
    /// <summary>First event of every file: <c>Event{wall_time, file_version = "brain.Event:2"}</c>.</summary>
    public static byte[] FileVersion(double wallTime) =>
        new ProtoWriter().Double(1, wallTime).String(3, "brain.Event:2").ToArray();

    static ProtoWriter EventHeader(double wallTime, long step)
    {
        var w = new ProtoWriter().Double(1, wallTime);
        if (step != 0) w.Int64(2, step);  // proto3: a zero step is not written
        return w;
    }

    /// <summary>A legacy scalar (what torch's <c>add_scalar</c> writes): <c>summary{value{tag, simple_value (float32)}}</c>.</summary>
    public static byte[] Scalar(double wallTime, long step, string tag, double value) =>
        EventHeader(wallTime, step)
            .Message(5, s => s.Message(1, v => v.String(1, tag).Float(2, (float)value)))
            .ToArray();

    /// <summary>A text summary as torch's <c>add_text</c>: tag <c>{tag}/text_summary</c>, plugin <c>text</c>, DT_STRING [1].</summary>
    public static byte[] Text(double wallTime, long step, string tag, string text) =>
        EventHeader(wallTime, step)
            .Message(5, s => s.Message(1, v => v
                .String(1, tag + "/text_summary")
                .Message(8, t => t
                    .Int64(1, 7) // DT_STRING
                    .Message(2, shape => shape.Message(2, dim => dim.Int64(1, 1)))
                    .Bytes(8, System.Text.Encoding.UTF8.GetBytes(text)))
                .Message(9, meta => meta.Message(1, pd => pd.String(1, "text")))))
            .ToArray();

    /// <summary><c>Event{step, session_log{status = START}}</c>: tells the Python loader to discard older events at or after <paramref name="step"/> (resume).</summary>
    public static byte[] SessionStart(double wallTime, long step) =>
        EventHeader(wallTime, step).Message(7, log => log.Int64(1, 1)).ToArray();

    /// <summary>HParams tags of the hparams plugin.</summary>
    public const string ExperimentTag = "_hparams_/experiment",
        SessionStartTag = "_hparams_/session_start_info",
        SessionEndTag = "_hparams_/session_end_info";

    /// <summary>How a hyper-parameter value is written (google.protobuf.Value kind and hparams DataType).</summary>
    public enum HParamType { String = 1, Bool = 2, Float64 = 3 }

    /// <summary>
    /// Converts a configuration value: numbers → number, strings → string, booleans → bool (or number
    /// when <paramref name="boolAsNumber"/>, as torch's <c>add_hparams</c> does), null → skipped,
    /// anything else → its JSON text.
    /// </summary>
    public static (HParamType Type, object Value)? ConvertHParam(object? value, bool boolAsNumber)
    {
        switch (value)
        {
            case null:
                return null;
            case bool b:
                return boolAsNumber ? (HParamType.Float64, b ? 1.0 : 0.0) : (HParamType.Bool, b);
            case string s:
                return (HParamType.String, s);
            case double or float or decimal or int or long or short or byte or sbyte or uint or ulong or ushort:
                return (HParamType.Float64, Convert.ToDouble(value, CultureInfo.InvariantCulture));
            case Enum e:
                return (HParamType.String, e.ToString());
            case JsonElement je when je.ValueKind == JsonValueKind.String:
                return (HParamType.String, je.GetString()!);
            case JsonElement je when je.ValueKind == JsonValueKind.Number:
                return (HParamType.Float64, je.GetDouble());
            case JsonElement je when je.ValueKind is JsonValueKind.True or JsonValueKind.False:
                return ConvertHParam(je.GetBoolean(), boolAsNumber);
            case JsonElement je when je.ValueKind == JsonValueKind.Null:
                return null;
            default:
                return (HParamType.String, JsonSerializer.Serialize(value));
        }
    }

    static void WriteValue(ProtoWriter w, HParamType type, object value)
    {
        switch (type)
        {
            case HParamType.Float64: w.Double(2, (double)value); break;
            case HParamType.String: w.String(3, (string)value); break;
            case HParamType.Bool: w.Bool(4, (bool)value); break;
        }
    }

    static byte[] HParamsSummary(double wallTime, long step, string tag, Action<ProtoWriter> pluginData) =>
        EventHeader(wallTime, step)
            .Message(5, s => s.Message(1, v => v
                .String(1, tag)
                .Message(9, meta => meta.Message(1, pd => pd
                    .String(1, "hparams")
                    .Bytes(2, BuildBytes(pluginData))))))
            .ToArray();

    static byte[] BuildBytes(Action<ProtoWriter> build)
    {
        var w = new ProtoWriter();
        build(w);
        return w.ToArray();
    }

    /// <summary><c>_hparams_/session_start_info</c>: <c>HParamsPluginData{session_start_info{hparams map, start_time_secs}}</c>.</summary>
    public static byte[] SessionStartInfo(double wallTime, long step, IReadOnlyList<(string Name, HParamType Type, object Value)> hparams, double? startTimeSecs) =>
        HParamsSummary(wallTime, step, SessionStartTag, pd => pd.Message(3, ssi =>
        {
            foreach (var (name, type, value) in hparams)
                ssi.Message(1, entry => entry.String(1, name).Message(2, v => WriteValue(v, type, value)));
            if (startTimeSecs is double t && t != 0) ssi.Double(5, t);
        }));

    /// <summary><c>_hparams_/experiment</c> with one HParamInfo{name, type} per hyper-parameter and the given metric tags.</summary>
    public static byte[] Experiment(double wallTime, long step, IReadOnlyList<(string Name, HParamType Type, object Value)> hparams, IReadOnlyList<string> metricTags) =>
        HParamsSummary(wallTime, step, ExperimentTag, pd => pd.Message(2, exp =>
        {
            foreach (var (name, type, _) in hparams)
                exp.Message(4, info => info.String(1, name).Int64(4, (int)type));
            foreach (var tag in metricTags)
                exp.Message(5, mi => mi.Message(1, mn => mn.String(2, tag)));
        }));

    /// <summary><c>_hparams_/session_end_info</c>: status (SUCCESS 1, FAILURE 2, RUNNING 3, UNKNOWN 0) and end time.</summary>
    public static byte[] SessionEndInfo(double wallTime, long step, int status, double? endTimeSecs) =>
        HParamsSummary(wallTime, step, SessionEndTag, pd => pd.Message(4, sei =>
        {
            if (status != 0) sei.Int64(1, status);
            if (endTimeSecs is double t && t != 0) sei.Double(2, t);
        }));
}
