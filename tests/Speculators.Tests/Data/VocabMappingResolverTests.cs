using Speculators.Data;
using Speculators.Formats;

namespace Speculators.Tests.Data;

public class VocabMappingResolverTests
{
    static TokenFrequencies Freq(params (long Id, long Count)[] c)
    {
        var f = new TokenFrequencies();
        foreach (var (id, n) in c) f.Add(id, n);
        return f;
    }

    [Fact]
    public void ExplicitFilesWinAndAreCheckedAgainstSizes()
    {
        using var dir = new TempDir();
        var m = VocabMapping.Build(Freq((7, 50), (5, 50), (2, 10)), 3, 10);
        m.Save(dir.File("maps"));
        var r = VocabMappingResolver.Resolve(new VocabMappingRequest
        {
            TargetVocabSize = 10, DraftVocabSize = 3,
            D2TPath = dir.File("maps", "d2t.npy"), T2DPath = dir.File("maps", "t2d.npy"),
        });
        Assert.Equal(VocabMappingSource.ExplicitFiles, r.Source);
        Assert.Equal(m.D2T, r.Mapping!.D2T);

        var wrongVd = Assert.Throws<SpeculatorsException>(() => VocabMappingResolver.Resolve(new VocabMappingRequest
        { TargetVocabSize = 10, DraftVocabSize = 4, D2TPath = dir.File("maps", "d2t.npy"), T2DPath = dir.File("maps", "t2d.npy") }));
        Assert.Contains("d2t.npy has 3 entries", wrongVd.Message);
        Assert.Contains("4", wrongVd.Message);
        var wrongV = Assert.Throws<SpeculatorsException>(() => VocabMappingResolver.Resolve(new VocabMappingRequest
        { TargetVocabSize = 12, D2TPath = dir.File("maps", "d2t.npy"), T2DPath = dir.File("maps", "t2d.npy") }));
        Assert.Contains("t2d.npy has 10 entries", wrongV.Message);
        Assert.Contains("12", wrongV.Message);
        Assert.Throws<SpeculatorsException>(() => VocabMappingResolver.Resolve(new VocabMappingRequest
        { TargetVocabSize = 10, D2TPath = dir.File("maps", "d2t.npy") }));
    }

    [Fact]
    public void BuildsFromTokenFrequenciesCachesAndReusesTheCache()
    {
        using var dir = new TempDir();
        Freq((7, 50), (5, 50), (2, 10), (9, 1)).SavePt(dir.File("token_freq.pt"));
        var req = new VocabMappingRequest { TargetVocabSize = 10, DraftVocabSize = 3, DataDir = dir.Path };
        var built = VocabMappingResolver.Resolve(req);
        Assert.Equal(VocabMappingSource.BuiltFromTokenFrequencies, built.Source);
        Assert.Equal(new long[] { 2, 4, 5 }, built.Mapping!.D2T);
        foreach (var f in new[] { "d2t.npy", "t2d.npy", "d2t-3.npy", "t2d-10.npy" }) Assert.True(File.Exists(dir.File(f)), f);

        var cached = VocabMappingResolver.Resolve(req);
        Assert.Equal(VocabMappingSource.DataDirCache, cached.Source);
        Assert.Equal(built.Mapping.D2T, cached.Mapping!.D2T);

        // Another Vd: the plain cache does not fit, so a new mapping is built into size-named files only.
        var other = VocabMappingResolver.Resolve(req with { DraftVocabSize = 2 });
        Assert.Equal(VocabMappingSource.BuiltFromTokenFrequencies, other.Source);
        Assert.Equal(new long[] { 5, 7 }, other.Mapping!.SelectedTargetIds());
        Assert.True(File.Exists(dir.File("d2t-2.npy")));
        Assert.Equal(3, Npy.Read(dir.File("d2t.npy")).Length); // plain names untouched
        // And now the size-named cache is used for Vd = 2.
        Assert.Equal(VocabMappingSource.DataDirCache, VocabMappingResolver.Resolve(req with { DraftVocabSize = 2 }).Source);
    }

    [Fact]
    public void StalePlainCacheWithoutFrequenciesIsAnError()
    {
        using var dir = new TempDir();
        VocabMapping.Build(Freq((1, 2)), 3, 10).Save(dir.Path);
        var e = Assert.Throws<SpeculatorsException>(() => VocabMappingResolver.Resolve(new VocabMappingRequest
        { TargetVocabSize = 11, DataDir = dir.Path }));
        Assert.Contains("t2d.npy has 10 entries", e.Message);
        Assert.Contains("11", e.Message);
    }

    [Fact]
    public void ReadsTokenFreqJsonAndFallsBackToFullVocabulary()
    {
        using var dir = new TempDir();
        var full = VocabMappingResolver.Resolve(new VocabMappingRequest { TargetVocabSize = 10, DraftVocabSize = 3, DataDir = dir.Path });
        Assert.Equal(VocabMappingSource.FullVocabulary, full.Source);
        Assert.Null(full.Mapping);
        Assert.Equal(10, full.DraftVocabSize(10));

        Freq((9, 3), (4, 3)).SaveJson(dir.File("token_freq.json"));
        var fromJson = VocabMappingResolver.Resolve(new VocabMappingRequest { TargetVocabSize = 10, DraftVocabSize = 2, DataDir = dir.Path });
        Assert.Equal(VocabMappingSource.BuiltFromTokenFrequencies, fromJson.Source);
        Assert.Equal(new long[] { 4, 9 }, fromJson.Mapping!.SelectedTargetIds());

        // No --draft-vocab-size and no cache: full vocabulary even with frequencies present.
        using var empty = new TempDir();
        Freq((1, 1)).SavePt(empty.File("token_freq.pt"));
        Assert.Equal(VocabMappingSource.FullVocabulary, VocabMappingResolver.Resolve(new VocabMappingRequest { TargetVocabSize = 10, DataDir = empty.Path }).Source);
        // An explicit frequency path that does not exist is an error, not a silent fallback.
        Assert.Contains("nope.pt", Assert.Throws<SpeculatorsException>(() => VocabMappingResolver.Resolve(new VocabMappingRequest
        { TargetVocabSize = 10, DraftVocabSize = 2, TokenFreqPath = empty.File("nope.pt") })).Message);
    }
}
