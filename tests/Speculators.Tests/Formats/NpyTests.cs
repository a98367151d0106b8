using Speculators.Formats;

namespace Speculators.Tests.Formats;

public class NpyTests
{
    // Exact np.save output (numpy 1.24.2, Debian python3-numpy), hex.
    const string D2T_2_4_5 = "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a020000000000000004000000000000000500000000000000";
    const string T2D_FFT = "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000001";
    const string F32_2x3 = "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000c03f000000c00000000000004040000080400000a040";
    const string I32_7_M1 = "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a07000000ffffffff";
    const string BOOL_128256_HEADER = "934e554d5059010076007b276465736372273a20277c6231272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a20283132383235362c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a";
    const string I64_EMPTY = "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028302c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a";

    static byte[] Hex(string s) => Convert.FromHexString(s);

    [Fact]
    public void EncodesExactlyAsNumpy()
    {
        Assert.Equal(Hex(D2T_2_4_5), Npy.Encode(new long[] { 2, 4, 5 }));
        Assert.Equal(Hex(T2D_FFT), Npy.Encode(new[] { false, false, true }));
        Assert.Equal(Hex(I32_7_M1), Npy.Encode(new[] { 7, -1 }));
        Assert.Equal(Hex(I64_EMPTY), Npy.Encode(ReadOnlySpan<long>.Empty));
        var f32 = new float[] { 1.5f, -2f, 0f, 3f, 4f, 5f };
        Assert.Equal(Hex(F32_2x3), Npy.Encode(NpyDType.Float32, [2, 3], System.Runtime.InteropServices.MemoryMarshal.AsBytes(f32.AsSpan())));
        Assert.Equal(Hex(BOOL_128256_HEADER), Npy.Header(NpyDType.Bool, [128256]));
    }

    [Fact]
    public void HeaderFollowsTheFormatRules()
    {
        // Independent of the fixtures: magic, v1.0, data offset multiple of 64, ends with '\n',
        // and 21 - len(str(last dim)) growth spaces are included before padding.
        foreach (long n in new long[] { 0, 3, 99, 128256, 151936, 12345678901 })
        {
            byte[] h = Npy.Header(NpyDType.Int64, [n]);
            Assert.Equal(0, h.Length % 64);
            Assert.Equal((byte)'\n', h[^1]);
            Assert.Equal(h.Length - 10, BitConverter.ToUInt16(h, 8));
            string text = System.Text.Encoding.Latin1.GetString(h, 10, h.Length - 10);
            Assert.StartsWith($"{{'descr': '<i8', 'fortran_order': False, 'shape': ({n},), }}", text);
        }
    }

    [Fact]
    public void ReadsNumpyFilesAndRoundTrips()
    {
        var d2t = Npy.Decode(Hex(D2T_2_4_5));
        Assert.Equal(NpyDType.Int64, d2t.DType);
        Assert.Equal(new long[] { 3 }, d2t.Shape);
        Assert.Equal(new long[] { 2, 4, 5 }, d2t.ToInt64());
        Assert.Equal(new[] { false, false, true }, Npy.Decode(Hex(T2D_FFT)).ToBool());
        var f = Npy.Decode(Hex(F32_2x3));
        Assert.Equal(new long[] { 2, 3 }, f.Shape);
        Assert.Equal(new float[] { 1.5f, -2f, 0f, 3f, 4f, 5f }, f.ToFloat32());
        Assert.Equal(new[] { 7, -1 }, Npy.Decode(Hex(I32_7_M1)).ToInt32());

        using var dir = new TempDir();
        var values = Enumerable.Range(0, 1000).Select(i => (long)i * i - 5000).ToArray();
        Npy.Write(dir.File("a.npy"), values);
        Assert.Equal(values, Npy.Read(dir.File("a.npy")).ToInt64());
        Assert.False(File.Exists(dir.File("a.npy.tmp")));
    }

    [Fact]
    public void RejectsWhatNumpyRejects()
    {
        var good = Hex(D2T_2_4_5);
        var badMagic = (byte[])good.Clone(); badMagic[1] = (byte)'X';
        Assert.Contains("magic", Assert.Throws<SpeculatorsException>(() => Npy.Decode(badMagic, "x.npy")).Message);
        var truncated = good[..^8];
        var e = Assert.Throws<SpeculatorsException>(() => Npy.Decode(truncated, "x.npy"));
        Assert.Contains("x.npy", e.Message);
        Assert.Contains("truncated", e.Message);
        var badVersion = (byte[])good.Clone(); badVersion[6] = 9;
        Assert.Contains("version", Assert.Throws<SpeculatorsException>(() => Npy.Decode(badVersion)).Message);
        // Fortran order and object dtype.
        var fortran = System.Text.Encoding.Latin1.GetBytes(System.Text.Encoding.Latin1.GetString(good).Replace("False", "True "));
        Assert.Contains("Fortran", Assert.Throws<SpeculatorsException>(() => Npy.Decode(fortran)).Message);
        var obj = System.Text.Encoding.Latin1.GetBytes(System.Text.Encoding.Latin1.GetString(good).Replace("'<i8'", "'|O' "));
        Assert.Contains("|O", Assert.Throws<SpeculatorsException>(() => Npy.Decode(obj)).Message);
        // An int64 array is not a bool t2d.
        Assert.Throws<SpeculatorsException>(() => Npy.Decode(good).ToBool());
    }
}
