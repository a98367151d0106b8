using System.Buffers.Binary;
using System.Text.Json;
using Speculators.Formats;
using Speculators.HiddenStates;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

public class HiddenStateFileTests
{
    static readonly HiddenStateSpec Bf16 = HiddenStateSpec.ForVerifier([1, 2], 4, 8, ScalarType.BFloat16, 16);

    static Tensor Random(long t, int layers = 3, int h = 8, ScalarType dtype = ScalarType.BFloat16) =>
        torch.randn(t, layers, h, generator: new Generator(7)).to(dtype);

    /// <summary>
    /// Parses a safetensors file with nothing but the format definition (u64 LE header length, JSON header,
    /// raw little-endian data), as any plain reader (Python's safetensors) would.
    /// </summary>
    static (JsonElement Header, byte[] Data) PlainRead(string path)
    {
        var bytes = File.ReadAllBytes(path);
        long n = (long)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = JsonDocument.Parse(bytes.AsMemory(8, (int)n)).RootElement.Clone();
        return (header, bytes[(int)(8 + n)..]);
    }

    [Fact]
    public void WrittenFileHasExactKeysShapesDtypesAndBytesForAPlainReader()
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        var hidden = Random(5);
        long[] ids = [3, 1, 4, 1, 5];
        string path = HiddenStateFile.PathFor(dir.Path, 12);
        Assert.EndsWith("hs_12.safetensors", path);
        HiddenStateFile.Write(path, hidden, ids, Bf16);
        Assert.False(File.Exists(path + ".tmp"));

        var (header, data) = PlainRead(path);
        var tensorKeys = header.EnumerateObject().Select(p => p.Name).Where(k => k != "__metadata__").Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(new[] { "hidden_states", "token_ids" }, tensorKeys);
        var hs = header.GetProperty("hidden_states");
        var ti = header.GetProperty("token_ids");
        Assert.Equal("BF16", hs.GetProperty("dtype").GetString());
        Assert.Equal(new long[] { 5, 3, 8 }, hs.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));
        Assert.Equal("I64", ti.GetProperty("dtype").GetString());
        Assert.Equal(new long[] { 5 }, ti.GetProperty("shape").EnumerateArray().Select(e => e.GetInt64()));

        var tOff = ti.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var fromBytes = Enumerable.Range(0, 5).Select(i => BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(tOff[0] + 8 * i))).ToArray();
        Assert.Equal(ids, fromBytes);
        // bf16 = the upper 16 bits of an IEEE float32.
        var hOff = hs.GetProperty("data_offsets").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.Equal(5 * 3 * 8 * 2, hOff[1] - hOff[0]);
        var expected = hidden.to(ScalarType.Float32).flatten().data<float>().ToArray();
        for (int i = 0; i < expected.Length; i++)
        {
            ushort raw = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(hOff[0] + 2 * i));
            Assert.Equal(expected[i], BitConverter.Int32BitsToSingle(raw << 16));
        }

        var (sample, check) = HiddenStateFile.Read(path, 12, ids, Bf16);
        Assert.True(check.Ok, check.Message);
        using (sample)
        {
            Assert.Equal(12, sample!.Row);
            Assert.Equal(ids, sample.TokenIds);
            Assert.True(HsFixtures.Same(hidden, sample.Hidden));
            Assert.Equal(SampleOrigin.File, sample.Origin);
            using var aux = sample.AuxFlat();
            Assert.Equal(new long[] { 5, 16 }, aux.shape);
            Assert.True(HsFixtures.Same(aux.narrow(1, 8, 8), hidden.select(1, 1)));
            using var last = sample.LastLayer();
            Assert.True(HsFixtures.Same(last, hidden.select(1, 2)));
        }
    }

    [Fact]
    public void SampleOutlivesTheDisposeScopeItWasReadIn()
    {
        using var dir = new TempDir();
        string path = dir.File("hs_0.safetensors");
        using (NewDisposeScope()) HiddenStateFile.Write(path, Random(2), [1, 2], Bf16);
        HiddenStateSample? sample;
        using (NewDisposeScope()) sample = HiddenStateFile.Read(path, 0, [1, 2], Bf16).Sample;
        using (sample)
        {
            Assert.False(sample!.Hidden.IsInvalid);
            Assert.Equal(2 * 3 * 8, sample.Hidden.numel());
            Assert.True(sample.Hidden.isfinite().all().item<bool>());
        }
    }

    public static TheoryData<string, HiddenStateSkipReason> BadFiles() => new()
    {
        { "missing", HiddenStateSkipReason.Missing },
        { "truncated", HiddenStateSkipReason.Unreadable },
        { "garbage", HiddenStateSkipReason.Unreadable },
        { "no_token_ids", HiddenStateSkipReason.WrongKeys },
        { "float32", HiddenStateSkipReason.WrongDType },
        { "int32_ids", HiddenStateSkipReason.WrongDType },
        { "other_layers", HiddenStateSkipReason.WrongShape },
        { "other_hidden", HiddenStateSkipReason.WrongShape },
        { "shorter", HiddenStateSkipReason.TokenMismatch },
        { "other_ids", HiddenStateSkipReason.TokenMismatch },
        { "nan", HiddenStateSkipReason.NonFinite },
        { "inf", HiddenStateSkipReason.NonFinite },
    };

    [Theory]
    [MemberData(nameof(BadFiles))]
    public void InvalidFilesAreReportedWithPathAndReason(string kind, HiddenStateSkipReason reason)
    {
        using var dir = new TempDir();
        using var scope = NewDisposeScope();
        long[] ids = [10, 11, 12, 13];
        string path = dir.File("hs_3.safetensors");
        var good = Random(4);
        void Save(params (string Key, Tensor T)[] tensors) =>
            SafeTensorsWriter.Save(path, tensors.Select(x => KeyValuePair.Create(x.Key, x.T)));
        switch (kind)
        {
            case "missing": break;
            case "truncated":
                HiddenStateFile.Write(path, good, ids, Bf16);
                File.WriteAllBytes(path, File.ReadAllBytes(path)[..^10]);
                break;
            case "garbage": File.WriteAllText(path, "not a safetensors file at all"); break;
            case "no_token_ids": Save(("hidden_states", good)); break;
            case "float32": Save(("hidden_states", good.to(ScalarType.Float32)), ("token_ids", torch.tensor(ids))); break;
            case "int32_ids": Save(("hidden_states", good), ("token_ids", torch.tensor(ids).to(ScalarType.Int32))); break;
            case "other_layers": Save(("hidden_states", Random(4, layers: 4)), ("token_ids", torch.tensor(ids))); break;
            case "other_hidden": Save(("hidden_states", Random(4, h: 16)), ("token_ids", torch.tensor(ids))); break;
            case "shorter": HiddenStateFile.Write(path, Random(3), ids[..3], Bf16); break;
            case "other_ids": HiddenStateFile.Write(path, good, [10, 11, 99, 13], Bf16); break;
            case "nan":
            case "inf":
                var bad = good.clone();
                bad[2, 1, 5] = torch.tensor(kind == "nan" ? float.NaN : float.PositiveInfinity).to(ScalarType.BFloat16);
                HiddenStateFile.Write(path, bad, ids, Bf16);
                break;
        }
        var (sample, check) = HiddenStateFile.Read(path, 3, ids, Bf16);
        Assert.Null(sample);
        Assert.Equal(reason, check.Problem);
        Assert.StartsWith(path, check.Message);
        // The cheap check (header + token ids, no data) catches everything but NaN/Inf.
        var quick = HiddenStateFile.Check(path, ids, Bf16, checkFinite: false);
        Assert.Equal(reason == HiddenStateSkipReason.NonFinite ? null : reason, quick.Problem);
    }

    [Fact]
    public void TruncatingStoreExpectsThePrefixAndSkippingStoreExpectsNothing()
    {
        var longRow = Enumerable.Range(0, 20).Select(i => (long)i).ToArray();
        var skip = Bf16;
        var trunc = Bf16 with { TooLong = TooLongPolicy.Truncate };
        Assert.Null(skip.ExpectedTokens(longRow));
        Assert.Equal(longRow[..16], trunc.ExpectedTokens(longRow));
        var shortRow = longRow[..16];
        Assert.Same(shortRow, skip.ExpectedTokens(shortRow));
        Assert.Equal(0, skip.TokensFor(17));
        Assert.Equal(16, trunc.TokensFor(17));
        Assert.Equal(3, skip.TokensFor(3));
        Assert.Equal(3 * 8 * 2 + 8, Bf16.FileBytesPerToken);
    }

    [Fact]
    public void FileNamesParseAndStaleTemporariesOfOtherRanksAreKept()
    {
        Assert.True(HiddenStateFile.TryParseRow("/x/hs_42.safetensors", out long r));
        Assert.Equal(42, r);
        Assert.False(HiddenStateFile.TryParseRow("hs_-1.safetensors", out _));
        Assert.False(HiddenStateFile.TryParseRow("hs_.safetensors", out _));
        Assert.False(HiddenStateFile.TryParseRow("hs_4.safetensors.tmp", out _));
        Assert.False(HiddenStateFile.TryParseRow("metadata.json", out _));

        using var dir = new TempDir();
        foreach (int row in new[] { 1, 5, 9 }) File.WriteAllText(HiddenStateFile.TempPathFor(dir.Path, row), "partial");
        File.WriteAllText(HiddenStateFile.PathFor(dir.Path, 5), "final name, not touched");
        Assert.Equal(2, HiddenStateFile.DeleteStaleTemporaries(dir.Path, 0, 6));
        Assert.True(File.Exists(HiddenStateFile.TempPathFor(dir.Path, 9)));
        Assert.False(File.Exists(HiddenStateFile.TempPathFor(dir.Path, 1)));
        Assert.True(File.Exists(HiddenStateFile.PathFor(dir.Path, 5)));
    }
}
