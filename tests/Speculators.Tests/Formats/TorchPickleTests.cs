using System.IO.Compression;
using Speculators.Formats;
using Speculators.Tests.Data;

namespace Speculators.Tests.Formats;

public class TorchPickleTests
{
    static List<KeyValuePair<long, long>> Items(params (long K, long V)[] kv) => kv.Select(x => new KeyValuePair<long, long>(x.K, x.V)).ToList();

    [Fact]
    public void PickleBytesMatchCPythonProtocol2()
    {
        // hf_formats.md §4.3 example.
        Assert.Equal(Convert.FromHexString("80027D7100284B054B034D2C014A701101008A0505000080008A06000000000001752E"),
            TorchPickle.PickleIntDict(Items((5, 3), (300, 70000), (2147483653, 1099511627776))));
        // pickle.dumps(d, protocol=2) from CPython 3.11 for every integer opcode boundary and sign.
        Assert.Equal(Convert.FromHexString("80027d7100284affffffff8a060000000000ff4bff4d00014dffff4a000001004affffff7f4a000000808a08ffffffffffffff7f8a080000000000000080752e"),
            TorchPickle.PickleIntDict(Items((-1, -(1L << 40)), (255, 256), (65535, 65536), (int.MaxValue, int.MinValue), (long.MaxValue, long.MinValue))));
        Assert.Equal(Convert.FromHexString("80027d71002e"), TorchPickle.PickleIntDict(Items()));
        Assert.Equal(Convert.FromHexString("80027d71004b014b02732e"), TorchPickle.PickleIntDict(Items((1, 2))));
    }

    [Fact]
    public void BatchesOf1000LikeCPython()
    {
        var thousand = Enumerable.Range(0, 1000).Select(i => new KeyValuePair<long, long>(i, 1)).ToList();
        byte[] a = TorchPickle.PickleIntDict(thousand);
        // ... K\x01 SETITEMS, then an empty MARK SETITEMS, STOP.
        Assert.Equal(Convert.FromHexString("4b017528752e"), a[^6..]);
        var more = Enumerable.Range(0, 1001).Select(i => new KeyValuePair<long, long>(i, 1)).ToList();
        byte[] b = TorchPickle.PickleIntDict(more);
        Assert.Equal(Convert.FromHexString("284de8034b01752e"), b[^8..]);
        Assert.Equal(more, TorchPickle.UnpickleIntDict(b, "t"));
        Assert.Equal(thousand, TorchPickle.UnpickleIntDict(a, "t"));
    }

    [Fact]
    public void ZipLayoutIsWhatTorchLoadNeeds()
    {
        using var dir = new TempDir();
        string path = dir.File("token_freq.pt");
        var items = Items((5, 3), (300, 70000), (2147483653, 1099511627776));
        TorchPickle.SaveIntDict(path, items);
        byte[] bytes = File.ReadAllBytes(path);
        Assert.Equal("PK\x03\x04"u8.ToArray(), bytes[..4]);
        using var zip = ZipFile.OpenRead(path);
        Assert.Equal(new[] { "token_freq/data.pkl", "token_freq/.format_version", "token_freq/.storage_alignment", "token_freq/byteorder", "token_freq/version" },
            zip.Entries.Select(e => e.FullName).ToArray());
        foreach (var e in zip.Entries) Assert.Equal(e.Length, e.CompressedLength); // stored
        string Text(string name) { using var r = new StreamReader(zip.GetEntry(name)!.Open()); return r.ReadToEnd(); }
        Assert.Equal("3\n", Text("token_freq/version"));
        Assert.Equal("little", Text("token_freq/byteorder"));
        using (var s = zip.GetEntry("token_freq/data.pkl")!.Open())
        using (var ms = new MemoryStream())
        {
            s.CopyTo(ms);
            Assert.Equal(TorchPickle.PickleIntDict(items), ms.ToArray());
        }
        Assert.Null(zip.GetEntry("token_freq/constants.pkl"));
        Assert.Equal(items, TorchPickle.LoadIntDict(path));
    }

    [Fact]
    public void ReadsFilesWrittenByPythonTorch()
    {
        // torch 1.13.1: torch.save({7: 50, 5: 50, 2: 10, 9: 1}, "py_token_freq.pt")
        Assert.Equal(Items((7, 50), (5, 50), (2, 10), (9, 1)), TorchPickle.LoadIntDict(DataFixtures.Path("py_token_freq.pt")));
        // {i: i*1000 for i in range(1003)} | {2**40: 3, 70000: 2**33}
        var expected = Enumerable.Range(0, 1003).Select(i => new KeyValuePair<long, long>(i, i * 1000L)).ToList();
        expected.Add(new(1L << 40, 3));
        expected.Add(new(70000, 1L << 33));
        Assert.Equal(expected, TorchPickle.LoadIntDict(DataFixtures.Path("py_big.pt")));
        // collections.Counter({3: 4, 1: 2}) pickles as GLOBAL + REDUCE.
        Assert.Equal(Items((3, 4), (1, 2)), TorchPickle.LoadIntDict(DataFixtures.Path("py_counter.pt")));
    }

    [Fact]
    public void ReadsProtocol4AndRejectsOtherObjects()
    {
        // pickle.dumps({1: 2, 3: 4}, protocol=4): FRAME + MEMOIZE.
        Assert.Equal(Items((1, 2), (3, 4)), TorchPickle.UnpickleIntDict(Convert.FromHexString("8004950d000000000000007d94284b014b024b034b04752e"), "p4"));
        // A list is not a dict.
        var e = Assert.Throws<SpeculatorsException>(() => TorchPickle.UnpickleIntDict(Convert.FromHexString("80025d71002e"), "f.pt"));
        Assert.Contains("f.pt", e.Message);
        Assert.Contains("dict", e.Message);
        // A string value (SHORT_BINUNICODE is not in our subset) names the opcode.
        var e2 = Assert.Throws<SpeculatorsException>(() => TorchPickle.UnpickleIntDict(Convert.FromHexString("80047d94284b018c0161752e"), "g.pt"));
        Assert.Contains("0x8C", e2.Message);
        // Truncated pickle.
        Assert.Contains("ends unexpectedly", Assert.Throws<SpeculatorsException>(() => TorchPickle.UnpickleIntDict(Convert.FromHexString("80027d7100284b"), "h.pt")).Message);
    }

    [Fact]
    public void CorruptOrForeignFilesNameTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.pt"), "not a zip at all");
        Assert.Contains("a.pt", Assert.Throws<SpeculatorsException>(() => TorchPickle.LoadIntDict(dir.File("a.pt"))).Message);
        var good = TorchPickle.SaveIntDictBytes(Items((1, 2)), "x");
        File.WriteAllBytes(dir.File("b.pt"), good[..(good.Length / 2)]);
        Assert.Contains("b.pt", Assert.Throws<SpeculatorsException>(() => TorchPickle.LoadIntDict(dir.File("b.pt"))).Message);
        // Entries outside a folder are not a torch archive.
        using (var fs = File.Create(dir.File("c.pt")))
        using (var zip = new ZipArchive(fs, ZipArchiveMode.Create))
        {
            using var s = zip.CreateEntry("data.pkl").Open();
            s.Write(TorchPickle.PickleIntDict(Items((1, 2))));
        }
        Assert.Contains("folder", Assert.Throws<SpeculatorsException>(() => TorchPickle.LoadIntDict(dir.File("c.pt"))).Message);
    }
}
