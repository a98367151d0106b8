using System.IO.Compression;
using Speculators.Data;

namespace Speculators.Tests.Data;

public class TokenFrequenciesTests
{
    [Fact]
    public void CountsOnlySupervisedTokensInPythonCounterOrder()
    {
        var f = new TokenFrequencies();
        f.AddRow([9, 4, 4, 7, 1], [0, 1, 1, 1, 0]);   // counts 4×2, 7×1; new ids in ascending order: 4, 7
        f.AddRow([3, 7, 2, 9], [1, 1, 1, 0]);         // new: 2, 3 (ascending), 7 again
        f.AddRow([5, 5], [0, 0]);                     // nothing supervised
        // Python: Counter.update(dict(zip(unique_ids, counts))) per row, unique_ids ascending.
        Assert.Equal(new KeyValuePair<long, long>[] { new(4, 2), new(7, 2), new(2, 1), new(3, 1) }, f.Items());
        Assert.Equal(6, f.Total);
        Assert.Equal(4, f.Distinct);
        Assert.Equal(0, f[5]);
        Assert.Throws<ArgumentException>(() => f.AddRow([1, 2], [1]));
    }

    [Fact]
    public void MergeAndParallelCountingEqualSerialCounting()
    {
        var rng = new Random(3);
        var rows = Enumerable.Range(0, 400).Select(_ =>
        {
            int n = rng.Next(1, 60);
            var ids = Enumerable.Range(0, n).Select(_ => (long)rng.Next(0, 5000)).ToArray();
            var mask = Enumerable.Range(0, n).Select(_ => (long)rng.Next(0, 2)).ToArray();
            return (ids, mask);
        }).ToList();
        var serial = new TokenFrequencies();
        foreach (var (ids, mask) in rows) serial.AddRow(ids, mask);

        var shared = new TokenFrequencies();
        Parallel.ForEach(rows, new ParallelOptions { MaxDegreeOfParallelism = 4 }, r => shared.AddRow(r.ids, r.mask));
        Assert.Equal(serial.Items().OrderBy(kv => kv.Key), shared.Items().OrderBy(kv => kv.Key));

        var a = new TokenFrequencies();
        var b = new TokenFrequencies();
        for (int i = 0; i < rows.Count; i++) (i < 200 ? a : b).AddRow(rows[i].ids, rows[i].mask);
        a.Merge(b);
        Assert.Equal(serial.Items(), a.Items()); // same order too: b's new ids come after a's, as in serial order
    }

    [Fact]
    public void PtIsByteIdenticalToPythonTorchAndJsonRoundTrips()
    {
        using var dir = new TempDir();
        var f = new TokenFrequencies();
        f.Add(7, 50); f.Add(5, 50); f.Add(2, 10); f.Add(9, 1);
        f.SavePt(dir.File("py_token_freq.pt"));
        // data.pkl equals the record torch 1.13 wrote for the same dict (the zip container differs: torch adds padding and descriptors).
        Assert.Equal(ReadEntry(DataFixtures.Path("py_token_freq.pt"), "py_token_freq/data.pkl"), ReadEntry(dir.File("py_token_freq.pt"), "py_token_freq/data.pkl"));

        f.SaveJson(dir.File("token_freq.json"));
        Assert.Equal("{\"7\": 50, \"5\": 50, \"2\": 10, \"9\": 1}", File.ReadAllText(dir.File("token_freq.json")));
        Assert.Equal(f.Items(), TokenFrequencies.Load(dir.File("token_freq.json")).Items());
        Assert.Equal(f.Items(), TokenFrequencies.Load(dir.File("py_token_freq.pt")).Items());
        Assert.Equal(f.Items(), TokenFrequencies.Load(DataFixtures.Path("py_token_freq.pt")).Items());
    }

    [Fact]
    public void BadFilesNameTheFile()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("a.json"), "{\"x\": 3}");
        Assert.Contains("a.json", Assert.Throws<SpeculatorsException>(() => TokenFrequencies.Load(dir.File("a.json"))).Message);
        File.WriteAllText(dir.File("b.json"), "{\"3\": -1}");
        Assert.Contains("negative", Assert.Throws<SpeculatorsException>(() => TokenFrequencies.Load(dir.File("b.json"))).Message);
        File.WriteAllText(dir.File("c.json"), "[1, 2]");
        Assert.Contains("c.json", Assert.Throws<SpeculatorsException>(() => TokenFrequencies.Load(dir.File("c.json"))).Message);
        Assert.Contains("missing.pt", Assert.Throws<SpeculatorsException>(() => TokenFrequencies.Load(dir.File("missing.pt"))).Message);
    }

    static byte[] ReadEntry(string zipPath, string entry)
    {
        using var zip = ZipFile.OpenRead(zipPath);
        using var s = zip.GetEntry(entry)!.Open();
        using var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}
