using System.Text;
using System.Text.Json;
using Speculators.Formats;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Formats;

public class SafeTensorsTests
{
    static Dictionary<string, Tensor> AllDtypes()
    {
        var gen = new Generator(7, torch.CPU);
        var f = torch.randn([3, 5], generator: gen);
        return new Dictionary<string, Tensor>
        {
            ["f32"] = f,
            ["f64"] = torch.randn([2, 2, 2], ScalarType.Float64, generator: gen),
            ["f16"] = f.to(ScalarType.Float16),
            ["bf16"] = f.to(ScalarType.BFloat16),
            ["i64"] = torch.tensor(new long[] { -5, 0, long.MaxValue, long.MinValue }),
            ["i32"] = torch.tensor(new int[] { -7, 1, int.MaxValue }),
            ["i16"] = torch.tensor(new short[] { -3, 300 }),
            ["i8"] = torch.tensor(new sbyte[] { -128, 127, 0 }),
            ["u8"] = torch.tensor(new byte[] { 0, 200, 255 }),
            ["bool"] = torch.tensor(new bool[] { true, false, true, true }),
            ["scalar"] = torch.tensor(3.5f),
            ["empty"] = torch.zeros([0, 4]),
            ["transposed"] = torch.arange(12, ScalarType.Float32).view(3, 4).t(), // non-contiguous
        };
    }

    [Fact]
    public void RoundTripsEveryDtypeWithMetadata()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var tensors = AllDtypes();
        string path = dir.File("all.safetensors");
        SafeTensorsWriter.Save(path, tensors, new Dictionary<string, string> { ["note"] = "héllo" });
        using var st = SafeTensorsFile.Open(path);
        Assert.Equal("pt", st.Metadata["format"]);
        Assert.Equal("héllo", st.Metadata["note"]);
        Assert.Equal(tensors.Keys.Order(), st.Keys.Order());
        foreach (var (name, t) in tensors)
        {
            var back = st.Load(name);
            Assert.Equal(t.dtype, back.dtype);
            Assert.Equal(t.shape, back.shape);
            Assert.True(t.eq(back).all().item<bool>(), name);
        }
        Assert.False(File.Exists(path + ".tmp"));
    }

    /// <summary>An independent check of what our writer produces, following the Rust crate's validation rules.</summary>
    [Fact]
    public void WriterOutputPassesStrictIndependentHeaderCheck()
    {
        using var scope = NewDisposeScope();
        var tensors = AllDtypes();
        byte[] bytes = SafeTensorsWriter.Serialize(tensors);
        ulong n = BitConverter.ToUInt64(bytes, 0);
        Assert.Equal(0UL, n % 8);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        string json = header.TrimEnd(' ');
        Assert.True(header[json.Length..].All(c => c == ' '), "header padding must be spaces");
        Assert.True(header.Length - json.Length < 8);
        Assert.DoesNotContain("\n", json); // compact like serde_json::to_string
        using var doc = JsonDocument.Parse(json);
        var props = doc.RootElement.EnumerateObject().ToList();
        Assert.Equal("__metadata__", props[0].Name);
        Assert.Equal("pt", props[0].Value.GetProperty("format").GetString());
        var order = new[] { "BOOL", "U8", "I8", "I16", "F16", "BF16", "I32", "F32", "F64", "I64" };
        long expectedBegin = 0;
        string? prevName = null;
        int prevRank = int.MaxValue;
        foreach (var p in props.Skip(1))
        {
            string dtype = p.Value.GetProperty("dtype").GetString()!;
            int rank = Array.IndexOf(order, dtype);
            Assert.True(rank >= 0, dtype);
            // Python's order: dtype descending, then name ascending.
            Assert.True(rank < prevRank || (rank == prevRank && string.CompareOrdinal(prevName, p.Name) < 0), $"{p.Name} out of order");
            var off = p.Value.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt64()).ToArray();
            Assert.Equal(expectedBegin, off[0]); // contiguous, no gaps
            long elems = p.Value.GetProperty("shape").EnumerateArray().Aggregate(1L, (a, e) => a * e.GetInt64());
            int size = dtype switch { "BOOL" or "U8" or "I8" => 1, "I16" or "F16" or "BF16" => 2, "I32" or "F32" => 4, _ => 8 };
            Assert.Equal(elems * size, off[1] - off[0]);
            Assert.Equal(0, off[0] % size); // wider dtypes first keeps every tensor aligned
            expectedBegin = off[1];
            prevName = p.Name;
            prevRank = rank;
        }
        Assert.Equal(8 + (long)n + expectedBegin, bytes.LongLength);
        // The transposed tensor was written in logical (row-major) order.
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("x.safetensors"), bytes);
        using var st = SafeTensorsFile.Open(dir.File("x.safetensors"));
        Assert.Equal(new float[] { 0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11 }, st.Load("transposed").data<float>().ToArray());
    }

    /// <summary>Bytes laid out exactly as Python's safetensors.torch.save_file writes them (hand-crafted).</summary>
    [Fact]
    public void ReadsFileLaidOutLikePythonSafetensors()
    {
        var data = new List<byte>();
        // Python order: F32, BF16, F16, I64 ... descending dtype; here: I64 "ids", F32 "a", BF16 "b", F16 "h", BOOL "m".
        data.AddRange(BitConverter.GetBytes(7L)); data.AddRange(BitConverter.GetBytes(-2L));            // ids [0,16)
        data.AddRange(BitConverter.GetBytes(1.5f)); data.AddRange(BitConverter.GetBytes(-0.25f));       // a [16,24)
        data.AddRange(new byte[] { 0xC0, 0x3F, 0x80, 0xBF });                                           // b: bf16 1.5, -1.0 [24,28)
        data.AddRange(BitConverter.GetBytes((Half)2.5));                                                // h [28,30)
        data.AddRange(new byte[] { 1, 0, 1 });                                                          // m [30,33)
        string json = "{\"__metadata__\":{\"format\":\"pt\"},\"ids\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}," +
                      "\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[16,24]},\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[24,28]}," +
                      "\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[28,30]},\"m\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[30,33]}}";
        while ((json.Length % 8) != 0) json += " ";
        var file = new List<byte>(BitConverter.GetBytes((ulong)json.Length));
        file.AddRange(Encoding.UTF8.GetBytes(json));
        file.AddRange(data);
        using var dir = new TempDir();
        File.WriteAllBytes(dir.File("py.safetensors"), file.ToArray());
        using var scope = NewDisposeScope();
        using var st = SafeTensorsFile.Open(dir.File("py.safetensors"));
        Assert.Equal(new long[] { 7, -2 }, st.Load("ids").data<long>().ToArray());
        Assert.Equal(new float[] { 1.5f, -0.25f }, st.Load("a").data<float>().ToArray());
        Assert.Equal(new long[] { 1, 2 }, st.Load("a").shape);
        Assert.Equal(new float[] { 1.5f, -1f }, st.Load("b").to(ScalarType.Float32).data<float>().ToArray());
        Assert.Equal(ScalarType.BFloat16, st.Load("b").dtype);
        var h = st.Load("h");
        Assert.Empty(h.shape);
        Assert.Equal(2.5f, h.to(ScalarType.Float32).item<float>());
        Assert.Equal(new[] { true, false, true }, st.Load("m").data<bool>().ToArray());
        // Selective, converting load.
        Assert.Equal(ScalarType.Float32, st.Load("b", ScalarType.Float32).dtype);
    }

    static string Corrupt(TempDir dir, byte[] bytes)
    {
        string p = dir.File("bad-" + Guid.NewGuid().ToString("N")[..6] + ".safetensors");
        File.WriteAllBytes(p, bytes);
        return p;
    }

    static byte[] Build(string json, int dataBytes)
    {
        while ((json.Length % 8) != 0) json += " ";
        var b = new List<byte>(BitConverter.GetBytes((ulong)json.Length));
        b.AddRange(Encoding.UTF8.GetBytes(json));
        b.AddRange(new byte[dataBytes]);
        return b.ToArray();
    }

    [Theory]
    [InlineData("short", "shorter than the 8-byte")]
    [InlineData("hugeheader", "exceeds")]
    [InlineData("headerpastend", "truncated")]
    [InlineData("badjson", "invalid JSON")]
    [InlineData("notutf8", "UTF-8")]
    [InlineData("truncateddata", "truncated")]
    [InlineData("trailing", "trailing bytes")]
    [InlineData("gap", "gap")]
    [InlineData("overlap", "overlaps")]
    [InlineData("sizemismatch", "span")]
    [InlineData("unknowndtype", "unknown dtype")]
    [InlineData("badmetadata", "__metadata__")]
    [InlineData("negshape", "non-negative")]
    public void CorruptFilesGiveErrorsNamingFileAndProblem(string kind, string expected)
    {
        using var dir = new TempDir();
        const string one = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
        byte[] bytes = kind switch
        {
            "short" => [1, 2, 3],
            "hugeheader" => [.. BitConverter.GetBytes(200_000_000UL), .. new byte[16]],
            "headerpastend" => [.. BitConverter.GetBytes(64UL), .. new byte[16]],
            "badjson" => Build("{\"a\": [", 0),
            "notutf8" => [.. BitConverter.GetBytes(8UL), 0xFF, 0xFE, 0xFD, 0x20, 0x20, 0x20, 0x20, 0x20],
            "truncateddata" => Build(one, 4),
            "trailing" => Build(one, 12),
            "gap" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12),
            "overlap" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8),
            "sizemismatch" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8),
            "unknowndtype" => Build("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
            "badmetadata" => Build("{\"__metadata__\":{\"format\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8),
            "negshape" => Build("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8),
            _ => throw new ArgumentException(kind),
        };
        string path = Corrupt(dir, bytes);
        var e = Assert.Throws<SpeculatorsException>(() => SafeTensorsFile.Open(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void MissingKeyAndMissingFileAreNamed()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        string path = dir.File("m.safetensors");
        SafeTensorsWriter.Save(path, [KeyValuePair.Create("x", torch.ones(2))]);
        using var st = SafeTensorsFile.Open(path);
        var e = Assert.Throws<SpeculatorsException>(() => st.Load("nope"));
        Assert.Contains("'nope'", e.Message);
        Assert.Contains(path, e.Message);
        var e2 = Assert.Throws<SpeculatorsException>(() => SafeTensorsFile.Open(dir.File("absent.safetensors")));
        Assert.Contains("absent.safetensors", e2.Message);
    }

    [Fact]
    public void ChunkedWritesProduceIdenticalBytes()
    {
        using var scope = NewDisposeScope();
        var tensors = AllDtypes();
        byte[] whole = SafeTensorsWriter.Serialize(tensors);
        int old = SafeTensorsWriter.ChunkBytes;
        try
        {
            SafeTensorsWriter.ChunkBytes = 5;
            Assert.Equal(whole, SafeTensorsWriter.Serialize(tensors));
        }
        finally
        {
            SafeTensorsWriter.ChunkBytes = old;
        }
    }

    /// <summary>Offsets past 2³¹ and 2³²: a sparse 3 GB tensor (no memory or disk is really used).</summary>
    [Fact]
    public void HandlesTensorsLargerThanTwoGigabytes()
    {
        using var dir = new TempDir();
        string path = dir.File("big.safetensors");
        const long big = 4_500_000_000;
        string json = $"{{\"__metadata__\":{{\"format\":\"pt\"}},\"small\":{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[{big},{big + 8}]}},\"x\":{{\"dtype\":\"U8\",\"shape\":[{big}],\"data_offsets\":[0,{big}]}}}}";
        while (json.Length % 8 != 0) json += " ";
        long dataStart = 8 + json.Length;
        using (var fs = new FileStream(path, FileMode.Create))
        {
            fs.Write(BitConverter.GetBytes((ulong)json.Length));
            fs.Write(Encoding.UTF8.GetBytes(json));
            fs.SetLength(dataStart + big + 8);
            fs.Position = dataStart + big - 3;
            fs.Write([9, 8, 7]);
            fs.Write(BitConverter.GetBytes(1.25f));
            fs.Write(BitConverter.GetBytes(-4f));
        }
        using var scope = NewDisposeScope();
        using var st = SafeTensorsFile.Open(path);
        var info = st.Info("x");
        Assert.Equal(big, info.NumElements);
        Assert.Equal(new byte[] { 9, 8, 7 }, st.ReadBytes("x", big - 3, 3));
        Assert.Equal(new float[] { 1.25f, -4f }, st.Load("small").data<float>().ToArray());
    }

    [Fact]
    public void ShardedCheckpointsRoundTripAndLoadByKey()
    {
        using var scope = NewDisposeScope();
        using var dir = new TempDir();
        var tensors = Enumerable.Range(0, 7).ToDictionary(i => $"layer.{i}.weight", i => torch.full([10, 10], (float)i));
        tensors["tiny"] = torch.ones(3);
        // A stale single file from an earlier save must disappear.
        SafeTensorsWriter.Save(dir.File("model.safetensors"), [KeyValuePair.Create("old", torch.ones(1))]);
        var files = SafeTensorsWriter.SaveSharded(dir.Path, tensors, maxShardBytes: 900);
        Assert.Contains("model.safetensors.index.json", files);
        Assert.False(File.Exists(dir.File("model.safetensors")));
        int shards = files.Count - 1;
        Assert.True(shards >= 4, $"expected several shards, got {shards}");
        Assert.Contains($"model-00001-of-{shards:D5}.safetensors", files);

        using var doc = JsonDocument.Parse(File.ReadAllText(dir.File("model.safetensors.index.json")));
        Assert.Equal(7 * 400 + 12, doc.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
        var map = doc.RootElement.GetProperty("weight_map").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString()!);
        Assert.Equal(tensors.Keys.Order(), map.Keys.Order());
        foreach (var f in map.Values.Distinct())
            Assert.True(new FileInfo(dir.File(f)).Length <= 900 + 1024);

        using var ckpt = SafeTensorsCheckpoint.Open(dir.Path);
        Assert.Equal(tensors.Keys.Order(), ckpt.Keys.Order());
        Assert.Equal(5f, ckpt.Load("layer.5.weight")[0, 0].item<float>());
        Assert.EndsWith(map["layer.5.weight"], ckpt.FileOf("layer.5.weight"));
        var dest = torch.zeros([10, 10], ScalarType.BFloat16);
        ckpt.ReadInto("layer.3.weight", dest);
        Assert.Equal(3f, dest[9, 9].to(ScalarType.Float32).item<float>());
        var e = Assert.Throws<SpeculatorsException>(() => ckpt.ReadInto("layer.3.weight", torch.zeros(5)));
        Assert.Contains("[10, 10]", e.Message);
        Assert.Contains("[5]", e.Message);

        // Re-saving small removes the shards and the index.
        SafeTensorsWriter.SaveSharded(dir.Path, tensors, maxShardBytes: 1 << 20);
        Assert.True(File.Exists(dir.File("model.safetensors")));
        Assert.Empty(Directory.GetFiles(dir.Path, "model-*-of-*.safetensors"));
        Assert.False(File.Exists(dir.File("model.safetensors.index.json")));
    }

    [Fact]
    public void ShardIndexNamingAMissingShardIsAnError()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            "{\"metadata\":{\"total_size\":4},\"weight_map\":{\"w\":\"model-00002-of-00002.safetensors\"}}");
        var e = Assert.Throws<SpeculatorsException>(() => SafeTensorsCheckpoint.Open(dir.Path));
        Assert.Contains("model-00002-of-00002.safetensors", e.Message);
        Assert.Contains("'w'", e.Message);
        File.WriteAllText(dir.File("other.bin"), "x");
        File.Delete(dir.File("model.safetensors.index.json"));
        var e2 = Assert.Throws<SpeculatorsException>(() => SafeTensorsCheckpoint.Open(dir.Path));
        Assert.Contains("other.bin", e2.Message);
    }
}
