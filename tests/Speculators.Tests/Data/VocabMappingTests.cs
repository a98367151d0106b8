using Speculators.Data;
using Speculators.Formats;

namespace Speculators.Tests.Data;

public class VocabMappingTests
{
    static List<KeyValuePair<long, long>> Counts(params (long Id, long Count)[] c) => c.Select(x => new KeyValuePair<long, long>(x.Id, x.Count)).ToList();

    /// <summary>Independent reference: the §5.2 pseudo-code, literally (sort by (-count, id), take, pad, sort).</summary>
    static (long[] D2T, bool[] T2D) Reference(List<KeyValuePair<long, long>> counts, int vd, int v)
    {
        var sorted = counts.OrderBy(kv => -kv.Value).ThenBy(kv => kv.Key).Select(kv => kv.Key).ToList();
        var sel = sorted.Take(Math.Min(vd, sorted.Count)).ToList();
        for (long t = 0; sel.Count < vd; t++) if (!sel.Contains(t)) sel.Add(t);
        sel.Sort();
        var t2d = new bool[v];
        foreach (var s in sel) t2d[s] = true;
        return (sel.Select((s, i) => s - i).ToArray(), t2d);
    }

    [Fact]
    public void WorkedExampleOfSection52()
    {
        // V = 10, Vd = 3, counts {7: 50, 5: 50, 2: 10, 9: 1} → [2, 5, 7] → d2t [2, 4, 5].
        var m = VocabMapping.Build(Counts((7, 50), (5, 50), (2, 10), (9, 1)), 3, 10);
        Assert.Equal(new long[] { 2, 4, 5 }, m.D2T);
        Assert.Equal(new[] { false, false, true, false, false, true, false, true, false, false }, m.T2D);
        Assert.Equal(5, m.TargetId(1));
        Assert.Equal(new long[] { 2, 5, 7 }, m.SelectedTargetIds());
    }

    [Fact]
    public void TiesGoToTheSmallerIdAndPaddingUsesUnusedIds()
    {
        // Ties: 8 and 3 both 5 → 3 wins for the last slot.
        var tie = VocabMapping.Build(Counts((8, 5), (3, 5), (1, 9)), 2, 10);
        Assert.Equal(new long[] { 1, 3 }, tie.SelectedTargetIds());
        // Padding: only 2 distinct ids for Vd = 5 → add 0, 1, 3 (2 is taken), then sort.
        var pad = VocabMapping.Build(Counts((2, 1), (9, 4)), 5, 10);
        Assert.Equal(new long[] { 0, 1, 2, 3, 9 }, pad.SelectedTargetIds());
        Assert.Equal(new long[] { 0, 0, 0, 0, 5 }, pad.D2T);
        // No counts at all: identity prefix.
        Assert.Equal(new long[] { 0, 1, 2 }, VocabMapping.Build(Counts(), 3, 4).SelectedTargetIds());
    }

    [Fact]
    public void MatchesTheReferenceOnRandomCounts()
    {
        var rng = new Random(7);
        for (int trial = 0; trial < 30; trial++)
        {
            int v = rng.Next(5, 300);
            int vd = rng.Next(1, v + 1);
            var ids = Enumerable.Range(0, v).OrderBy(_ => rng.Next()).Take(rng.Next(0, v)).ToList();
            var counts = ids.Select(id => new KeyValuePair<long, long>(id, rng.Next(1, 6))).ToList(); // many ties
            var m = VocabMapping.Build(counts, vd, v);
            var (d2t, t2d) = Reference(counts, vd, v);
            Assert.Equal(d2t, m.D2T);
            Assert.Equal(t2d, m.T2D);
        }
    }

    [Fact]
    public void SavesNpyFilesWithSizedCopiesAndLoadsThemBack()
    {
        using var dir = new TempDir();
        var m = VocabMapping.Build(Counts((7, 50), (5, 50), (2, 10), (9, 1)), 3, 10);
        var written = m.Save(dir.Path);
        Assert.Equal(new[] { "d2t-3.npy", "t2d-10.npy", "d2t.npy", "t2d.npy" }, written.Select(Path.GetFileName).ToArray());
        Assert.Equal(File.ReadAllBytes(dir.File("d2t.npy")), File.ReadAllBytes(dir.File("d2t-3.npy")));
        // Bytes as np.save writes them (hf_formats.md §5: 152 and 138 bytes).
        Assert.Equal(152, new FileInfo(dir.File("d2t.npy")).Length);
        Assert.Equal(128 + 10, new FileInfo(dir.File("t2d.npy")).Length);
        Assert.Equal(NpyDType.Int64, Npy.Read(dir.File("d2t.npy")).DType);
        Assert.Equal(NpyDType.Bool, Npy.Read(dir.File("t2d.npy")).DType);
        var back = VocabMapping.Load(dir.File("d2t.npy"), dir.File("t2d.npy"));
        Assert.Equal(m.D2T, back.D2T);
        Assert.Equal(m.T2D, back.T2D);
    }

    [Fact]
    public void ValidationNamesFilesAndBothValues()
    {
        using var dir = new TempDir();
        Npy.Write(dir.File("d2t.npy"), new long[] { 2, 4, 5 });
        Npy.Write(dir.File("t2d_4trues.npy"), new[] { true, false, true, false, false, true, false, true, false, false });
        var e = Assert.Throws<SpeculatorsException>(() => VocabMapping.Load(dir.File("d2t.npy"), dir.File("t2d_4trues.npy")));
        Assert.Contains("t2d_4trues.npy", e.Message);
        Assert.Contains("4 true", e.Message);
        Assert.Contains("3", e.Message);
        // Right counts, inconsistent positions: d2t says 2,5,7; t2d says 2,5,8.
        Npy.Write(dir.File("t2d_moved.npy"), new[] { false, false, true, false, false, true, false, false, true, false });
        var e2 = Assert.Throws<SpeculatorsException>(() => VocabMapping.Load(dir.File("d2t.npy"), dir.File("t2d_moved.npy")));
        Assert.Contains("draft id 2", e2.Message);
        Assert.Contains("7", e2.Message);
        Assert.Contains("8", e2.Message);
        // Wrong dtype for d2t.
        Npy.Write(dir.File("d2t_f.npy"), new float[] { 2, 4, 5 });
        Assert.Contains("int64", Assert.Throws<SpeculatorsException>(() => VocabMapping.Load(dir.File("d2t_f.npy"), dir.File("t2d_moved.npy"))).Message);
        // Token id outside V.
        Assert.Contains("outside", Assert.Throws<SpeculatorsException>(() => VocabMapping.Build(Counts((12, 3)), 2, 10, "tf.json")).Message);
        Assert.Throws<SpeculatorsException>(() => VocabMapping.Build(Counts(), 11, 10));
    }

    [Fact]
    public void ReadsVocabSizeFromConfigOrTextConfig()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("config.json"), """{"vocab_size": 151936, "hidden_size": 8}""");
        Assert.Equal(151936, VocabMapping.ReadTargetVocabSize(dir.Path));
        File.WriteAllText(dir.File("config.json"), """{"vocab_size": 5, "text_config": {"vocab_size": 262208}}""");
        Assert.Equal(262208, VocabMapping.ReadTargetVocabSize(dir.Path));
        File.WriteAllText(dir.File("config.json"), """{"hidden_size": 8}""");
        var e = Assert.Throws<SpeculatorsException>(() => VocabMapping.ReadTargetVocabSize(dir.Path));
        Assert.Contains("vocab_size", e.Message);
        Assert.Contains("config.json", e.Message);
    }
}
