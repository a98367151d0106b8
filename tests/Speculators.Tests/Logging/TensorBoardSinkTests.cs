using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using Speculators.Logging;

namespace Speculators.Tests.Logging;

/// <summary>
/// Event files read back with a reader written here (table-driven CRC-32C, protobuf wire decoding)
/// and checked against the golden bytes of metric_backends.md.
/// </summary>
public class TensorBoardSinkTests
{
    // ---------- independent reader ----------

    static readonly uint[] CrcTable = BuildTable();

    static uint[] BuildTable()
    {
        var t = new uint[256];
        for (uint i = 0; i < 256; i++)
        {
            uint c = i;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }

    static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return ~c;
    }

    static uint Masked(ReadOnlySpan<byte> data)
    {
        uint c = Crc(data);
        return unchecked(((c >> 15) | (c << 17)) + 0xA282EAD8u);
    }

    static List<byte[]> ReadRecords(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var records = new List<byte[]>();
        int at = 0;
        while (at < bytes.Length)
        {
            Assert.True(at + 12 <= bytes.Length, "truncated header");
            ulong len = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(at, 8));
            Assert.Equal(Masked(bytes.AsSpan(at, 8)), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 8, 4)));
            var data = bytes.AsSpan(at + 12, (int)len).ToArray();
            Assert.Equal(Masked(data), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(at + 12 + (int)len, 4)));
            records.Add(data);
            at += 12 + (int)len + 4;
        }
        return records;
    }

    /// <summary>A decoded protobuf message: field number → values (ulong for varint/fixed, byte[] for length-delimited).</summary>
    sealed class Msg
    {
        public readonly List<(int Field, int Wire, ulong Num, byte[]? Bytes)> Fields = new();

        public static Msg Parse(ReadOnlySpan<byte> b)
        {
            var m = new Msg();
            int i = 0;
            ulong Varint(ReadOnlySpan<byte> s)
            {
                ulong v = 0;
                for (int shift = 0; ; shift += 7)
                {
                    byte x = s[i++];
                    v |= (ulong)(x & 0x7F) << shift;
                    if (x < 0x80) return v;
                }
            }
            while (i < b.Length)
            {
                ulong key = Varint(b);
                int field = (int)(key >> 3), wire = (int)(key & 7);
                switch (wire)
                {
                    case 0: m.Fields.Add((field, 0, Varint(b), null)); break;
                    case 1: m.Fields.Add((field, 1, BinaryPrimitives.ReadUInt64LittleEndian(b.Slice(i, 8)), null)); i += 8; break;
                    case 5: m.Fields.Add((field, 5, BinaryPrimitives.ReadUInt32LittleEndian(b.Slice(i, 4)), null)); i += 4; break;
                    case 2:
                        int len = (int)Varint(b);
                        m.Fields.Add((field, 2, 0, b.Slice(i, len).ToArray()));
                        i += len;
                        break;
                    default: throw new InvalidDataException($"wire type {wire}");
                }
            }
            return m;
        }

        public bool Has(int f) => Fields.Any(x => x.Field == f);
        public ulong Num(int f) => Fields.Single(x => x.Field == f).Num;
        public double Double(int f) => BitConverter.Int64BitsToDouble((long)Num(f));
        public float Float(int f) => BitConverter.Int32BitsToSingle((int)Num(f));
        public byte[] Bytes(int f) => Fields.Single(x => x.Field == f).Bytes!;
        public string Str(int f) => Encoding.UTF8.GetString(Bytes(f));
        public Msg Sub(int f) => Parse(Bytes(f));
        public IEnumerable<Msg> Subs(int f) => Fields.Where(x => x.Field == f).Select(x => Parse(x.Bytes!));
    }

    sealed record Event(double WallTime, long Step, string? FileVersion, Msg? Summary, Msg? SessionLog);

    static Event Decode(byte[] data)
    {
        var m = Msg.Parse(data);
        return new Event(m.Double(1), m.Has(2) ? (long)m.Num(2) : 0, m.Has(3) ? m.Str(3) : null, m.Has(5) ? m.Sub(5) : null, m.Has(7) ? m.Sub(7) : null);
    }

    static List<Event> ReadEvents(string path) => ReadRecords(path).Select(Decode).ToList();

    // ---------- tests ----------

    [Fact]
    public void CrcMatchesPublishedVectors()
    {
        Assert.Equal(0x8A9136AAu, TfRecord.Crc32C(new byte[32]));
        var v = new byte[] { 0x1A, 0x11 }.Concat(Encoding.ASCII.GetBytes("CRC test, one two")).ToArray();
        Assert.Equal(0x5794D08Au, TfRecord.MaskedCrc32C(v));
        var rnd = new Random(3);
        var blob = new byte[1001];
        rnd.NextBytes(blob);
        Assert.Equal(Crc(blob), TfRecord.Crc32C(blob));
    }

    [Fact]
    public void RecordsMatchGoldenBytes()
    {
        Assert.Equal(Convert.FromHexString("1800000000000000a37f4b2209000000000000f83f1a0d627261696e2e4576656e743a322a28646c"),
            TfRecord.Frame(TensorBoardEvents.FileVersion(1.5)));
        Assert.Equal(Convert.FromHexString("1a00000000000000129bd82d09000000000000f83f10032a0d0a0b0a046c6f7373150000803ed054b255"),
            TfRecord.Frame(TensorBoardEvents.Scalar(1.5, 3, "loss", 0.25)));
    }

    [Fact]
    public void ScalarsTextAndSessionHparamsReadBack()
    {
        using var dir = new TempDir();
        double clock = 1_760_000_000.25;
        var options = new TensorBoardOptions { Clock = () => clock += 0.5 };
        string path;
        using (var sink = new TensorBoardSink(dir.File("run1"), options))
        {
            path = sink.FilePath;
            sink.LogHyperparameters(new Dictionary<string, object?>
            {
                ["lr"] = 1e-4, ["epochs"] = 3, ["optimizer"] = "adamw", ["norm_output"] = true, ["skipped"] = null,
                ["layers"] = new[] { 2, 16, 29 },
            });
            sink.Log(new Dictionary<string, double> { ["train/loss"] = 2.5, ["train/full_acc_0"] = 0.125, ["lr"] = double.NaN }, 10);
            sink.Log(new Dictionary<string, double> { ["train/loss"] = 2.25 }, 20);
            sink.LogText("command", "speculators train --lr 1e-4 ✓", 0);
            sink.Finish(RunOutcome.Success);
        }

        var name = Path.GetFileName(path);
        Assert.Matches(new Regex(@"^events\.out\.tfevents\.\d{10}\..+\.\d+\.\d+$"), name);
        Assert.Equal("1760000000", name.Split('.')[3]);
        Assert.Equal(Environment.ProcessId.ToString(), name.Split('.')[^2]);

        var events = ReadEvents(path);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        Assert.Equal(1_760_000_000.75, events[0].WallTime);
        for (int i = 1; i < events.Count; i++) Assert.True(events[i].WallTime >= events[i - 1].WallTime);

        var scalars = events.Where(e => e.Summary != null)
            .Select(e => (e.Step, V: e.Summary!.Sub(1)))
            .Where(x => x.V.Has(2))
            .Select(x => (x.Step, Tag: x.V.Str(1), Value: x.V.Float(2)))
            .ToList();
        Assert.Equal(new[] { (10L, "train/loss", 2.5f), (10L, "train/full_acc_0", 0.125f) }, scalars.Take(2));
        Assert.True(float.IsNaN(scalars[2].Value));
        Assert.Equal((20L, "train/loss", 2.25f), scalars[3]);

        var text = events.Select(e => e.Summary?.Sub(1)).Single(v => v != null && v.Str(1) == "command/text_summary")!;
        Assert.Equal("text", text.Sub(9).Sub(1).Str(1));
        var tensor = text.Sub(8);
        Assert.Equal(7UL, tensor.Num(1)); // DT_STRING
        Assert.Equal(1UL, tensor.Sub(2).Sub(2).Num(1));
        Assert.Equal("speculators train --lr 1e-4 ✓", tensor.Str(8));

        var plugin = events.Select(e => e.Summary?.Sub(1)).Where(v => v != null && v.Str(1).StartsWith("_hparams_/")).ToList();
        Assert.Equal(new[] { "_hparams_/session_start_info", "_hparams_/session_end_info" }, plugin.Select(v => v!.Str(1)));
        var ssiData = plugin[0]!.Sub(9).Sub(1);
        Assert.Equal("hparams", ssiData.Str(1));
        var ssi = Msg.Parse(ssiData.Bytes(2)).Sub(3);
        var hp = ssi.Subs(1).ToDictionary(e => e.Str(1), e => e.Sub(2));
        Assert.Equal(new[] { "lr", "epochs", "optimizer", "norm_output", "layers" }, hp.Keys);
        Assert.Equal(1e-4, hp["lr"].Double(2));
        Assert.Equal(3.0, hp["epochs"].Double(2));
        Assert.Equal("adamw", hp["optimizer"].Str(3));
        Assert.Equal(1UL, hp["norm_output"].Num(4));          // bool_value
        Assert.Equal("[2,16,29]", hp["layers"].Str(3));          // JSON text
        Assert.True(ssi.Has(5));                                 // start_time_secs
        var sei = Msg.Parse(plugin[1]!.Sub(9).Sub(1).Bytes(2)).Sub(4);
        Assert.Equal(1UL, sei.Num(1));                           // STATUS_SUCCESS
    }

    [Fact]
    public void TorchStyleHparamsGoToASecondFileLikeAddHparams()
    {
        using var dir = new TempDir();
        using var sink = new TensorBoardSink(dir.Path, new TensorBoardOptions { HParams = HParamsStyle.TorchAddHparams, Clock = () => 100.0 });
        sink.LogHyperparameters(new Dictionary<string, object?> { ["lr"] = 0.5, ["dry_run"] = false, ["name"] = "x" });
        var extra = Assert.Single(sink.ExtraFiles);
        Assert.NotEqual(sink.FilePath, extra);
        Assert.Equal(Path.GetDirectoryName(sink.FilePath), Path.GetDirectoryName(extra));

        var events = ReadEvents(extra);
        Assert.Equal("brain.Event:2", events[0].FileVersion);
        var values = events.Skip(1).Select(e => e.Summary!.Sub(1)).ToList();
        Assert.Equal(new[] { "_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info" }, values.Select(v => v.Str(1)));
        Assert.All(events, e => Assert.Equal(0, e.Step));
        var contents = values.Select(v => Msg.Parse(v.Sub(9).Sub(1).Bytes(2))).ToList();
        var infos = contents[0].Sub(2).Subs(4).Select(i => (i.Str(1), i.Num(4))).ToList();
        Assert.Equal(new[] { ("lr", 3UL), ("dry_run", 3UL), ("name", 1UL) }, infos);   // bool as FLOAT64, as torch
        Assert.False(contents[0].Sub(2).Has(5));                                          // no metric_infos
        var hp = contents[1].Sub(3).Subs(1).ToDictionary(e => e.Str(1), e => e.Sub(2));
        Assert.Equal(0.0, hp["dry_run"].Double(2));
        Assert.False(contents[1].Sub(3).Has(5));
        Assert.Equal(1UL, contents[2].Sub(4).Num(1));
        // The main file holds no hparams in this style.
        Assert.Single(ReadEvents(sink.FilePath));
    }

    [Fact]
    public void ResumeMarkerAndUnknownOutcome()
    {
        using var dir = new TempDir();
        string path;
        using (var sink = new TensorBoardSink(dir.Path, new TensorBoardOptions { ResumeStep = 40 }))
        {
            path = sink.FilePath;
            sink.LogHyperparameters(new Dictionary<string, object?> { ["a"] = 1 });
        } // disposed without Finish: session ends with status UNKNOWN
        var events = ReadEvents(path);
        Assert.Equal(40, events[1].Step);
        Assert.Equal(1UL, events[1].SessionLog!.Num(1));   // START
        var sei = Msg.Parse(events[^1].Summary!.Sub(1).Sub(9).Sub(1).Bytes(2)).Sub(4);
        Assert.False(sei.Has(1));                           // status 0 is not written (proto3)
        Assert.True(sei.Has(2));
        Assert.True(Math.Abs(events[0].WallTime - (DateTime.UtcNow - DateTime.UnixEpoch).TotalSeconds) < 60, "wall time is Unix seconds");
    }

    [Fact]
    public void CompositeAndConsoleSinks()
    {
        var sw = new StringWriter();
        using var dir = new TempDir();
        using var tb = new TensorBoardSink(dir.Path);
        using var sink = new CompositeSink(new ConsoleSink(sw, k => !k.StartsWith("profile/")), tb);
        sink.Log(new Dictionary<string, double> { ["train/loss"] = 2.34567, ["profile/step_ms"] = 12, ["lr"] = 1e-4, ["train/full_acc_0"] = 0.5 }, 7);
        sink.LogText("note", "hello", 7);
        sink.Finish(RunOutcome.Success);
        var lines = sw.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("step 7 | train/loss 2.346 | lr 1.00e-04 | train/full_acc_0 0.5", lines[0]);
        Assert.Equal("step 7 | note: hello", lines[1]);
        Assert.Equal(4 + 1 + 1, ReadEvents(tb.FilePath).Count);  // version + 4 scalars + text
        Assert.Equal("nan", ConsoleSink.Format(double.NaN));
        Assert.Equal("120", ConsoleSink.Format(120));
    }
}
