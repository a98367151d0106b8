using Speculators.Formats;
using Speculators.HiddenStates;
using Speculators.Util;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

public class DatagenTests
{
    public DatagenTests()
    {
        HsFixtures.SingleThreaded();
        Log.Quiet = false;
    }

    static DatagenOptions Options(string output, ScalarType dtype = ScalarType.Float32, long batchTokens = 1) => new()
    {
        ModelDirectory = HsFixtures.ModelDir,
        DataPath = HsFixtures.DataDir,
        OutputDirectory = output,
        DType = dtype,
        BatchTokens = batchTokens,
    };

    static DatagenSummary Quiet(DatagenOptions o)
    {
        var old = Log.Writer;
        Log.Writer = TextWriter.Null;
        try
        {
            return HiddenStateDatagen.Run(o);
        }
        finally
        {
            Log.Writer = old;
        }
    }

    /// <summary>Every file's tensors, keyed by file name.</summary>
    static Dictionary<string, (Tensor Hidden, long[] Ids)> ReadStore(string dir)
    {
        var result = new Dictionary<string, (Tensor, long[])>(StringComparer.Ordinal);
        foreach (var f in Directory.EnumerateFiles(dir, "hs_*.safetensors"))
        {
            using var st = SafeTensorsFile.Open(f);
            result[Path.GetFileName(f)] = (st.Load("hidden_states").DetachFromDisposeScope(), st.Load("token_ids").data<long>().ToArray());
        }
        return result;
    }

    static void AssertSameStore(string expectedDir, string actualDir)
    {
        var a = ReadStore(expectedDir);
        var b = ReadStore(actualDir);
        try
        {
            Assert.Equal(a.Keys.Order(), b.Keys.Order());
            foreach (var (name, (h, ids)) in a)
            {
                Assert.Equal(ids, b[name].Ids);
                Assert.True(HsFixtures.Same(h, b[name].Hidden), name);
            }
        }
        finally
        {
            foreach (var x in a.Values.Concat(b.Values)) x.Hidden.Dispose();
        }
    }

    [Fact]
    public void WritesOneValidFilePerRowWithMetadataAndResumesWithNothingToDo()
    {
        using var dir = new TempDir();
        var o = Options(dir.File("hs"), ScalarType.BFloat16, batchTokens: 64);
        var s = Quiet(o);
        Assert.Equal(HsFixtures.Lengths.Length, s.RowsWritten);
        Assert.Equal(HsFixtures.Lengths.Sum(), s.TokensWritten);
        Assert.True(s.Prefills is > 1 and < 11, $"{s.Prefills} prefills");
        // bf16, A+1 = 4 layers, H = 64 → 512 bytes of states + 8 of token id per token, plus headers.
        Assert.Equal(520, s.Plan.Spec.FileBytesPerToken);
        Assert.InRange(s.BytesPerToken, 520, 560);
        Assert.Contains("bytes/token", s.Describe());

        var meta = HiddenStateStoreMetadata.Load(o.OutputDirectory!)!;
        Assert.Equal(new[] { 1, 2, 3, 4 }, meta.LayerIds);
        Assert.Equal((4, 64, "bfloat16", HsFixtures.Context), (meta.NumHiddenLayers, meta.HiddenSize, meta.DType, meta.MaxTokens));
        Assert.Equal(VerifierIdentity.ComputeFingerprint(HsFixtures.ModelDir), meta.VerifierFingerprint);

        var spec = meta.ToSpec();
        for (int row = 0; row < HsFixtures.Lengths.Length; row++)
        {
            var check = HiddenStateFile.Check(HiddenStateFile.PathFor(o.OutputDirectory!, row), HsFixtures.RowIds(row), spec, checkFinite: true);
            Assert.True(check.Ok, check.Message);
        }
        Assert.Empty(Directory.EnumerateFiles(o.OutputDirectory!, "*.tmp"));

        var again = Quiet(o with { Validate = true });
        Assert.Equal(0, again.RowsWritten);
        Assert.Equal(HsFixtures.Lengths.Length, again.Plan.AlreadyPresent);
    }

    [Fact]
    public void ResumeAfterAKillLeavesNoPartialFileAndGivesTheSameStore()
    {
        using var dir = new TempDir();
        string reference = dir.File("reference"), resumed = dir.File("resumed");
        Quiet(Options(reference));

        int written = 0;
        var killed = Options(resumed) with
        {
            AfterFileWritten = _ =>
            {
                if (++written == 4) throw new InvalidOperationException("simulated kill");
            },
        };
        Assert.Equal("simulated kill", Assert.Throws<InvalidOperationException>(() => Quiet(killed)).Message);
        Assert.Equal(4, Directory.EnumerateFiles(resumed, "hs_*.safetensors").Count());
        // What a kill during a write leaves: a .tmp beside the final names, and a bad file a crashed foreign tool left.
        File.WriteAllBytes(HiddenStateFile.TempPathFor(resumed, 9), new byte[100]);
        File.WriteAllText(HiddenStateFile.PathFor(resumed, 10), "corrupt");

        var s = Quiet(Options(resumed));
        Assert.Equal(4, s.Plan.AlreadyPresent);
        Assert.Equal(1, s.Plan.InvalidExisting);
        Assert.Equal(1, s.Plan.StaleTemporariesRemoved);
        Assert.Equal(HsFixtures.Lengths.Length - 4, s.RowsWritten);
        Assert.Empty(Directory.EnumerateFiles(resumed, "*.tmp"));
        AssertSameStore(reference, resumed);
    }

    [Fact]
    public void RanksShareTheRowsAndTogetherWriteTheWholeStore()
    {
        using var dir = new TempDir();
        string reference = dir.File("reference"), shared = dir.File("shared");
        Quiet(Options(reference) with { MaxSamples = 10 });
        var counts = new List<int>();
        for (int rank = 0; rank < 3; rank++)
            counts.Add(Quiet(Options(shared) with { MaxSamples = 10, WorldSize = 3, Rank = rank }).RowsWritten);
        Assert.Equal(new[] { 4, 3, 3 }, counts);
        Assert.False(File.Exists(HiddenStateFile.PathFor(shared, 10)));
        AssertSameStore(reference, shared);
    }

    [Fact]
    public void MismatchedDataAndStoresAreRejectedBeforeAnyWork()
    {
        using var dir = new TempDir();
        string data = dir.File("data");
        HsFixtures.WriteDataset(data, [5, 6, 7], seed: 1, forceId: HsFixtures.Vocab + 5);
        var badVocab = Options(dir.File("out")) with { DataPath = data };
        var e = Assert.Throws<SpeculatorsException>(() => Quiet(badVocab));
        Assert.Contains("token id 325", e.Message);
        Assert.Contains("row 0", e.Message);
        Assert.False(Directory.Exists(dir.File("out")));

        var withN = Options(dir.File("out")) with { AuxLayerIds = [1, 4] };
        Assert.Contains("final layer", Assert.Throws<SpeculatorsException>(() => Quiet(withN)).Message);

        var full = Options(dir.File("out")) with { FreeBytesOverride = 1000 };
        var disk = Assert.Throws<SpeculatorsException>(() => Quiet(full));
        Assert.Contains("--ignore-disk-space", disk.Message);
        Assert.False(Directory.Exists(dir.File("out")));

        Quiet(Options(dir.File("out")) with { MaxSamples = 1 });
        var otherLayers = Options(dir.File("out")) with { AuxLayerIds = [1, 3] };
        Assert.Contains("layer_ids", Assert.Throws<SpeculatorsException>(() => Quiet(otherLayers)).Message);
        var otherDtype = Options(dir.File("out"), ScalarType.BFloat16);
        Assert.Contains("dtype", Assert.Throws<SpeculatorsException>(() => Quiet(otherDtype)).Message);
        Assert.Single(Directory.EnumerateFiles(dir.File("out"), "hs_*"));
    }

    [Fact]
    public void LongRowsAreSkippedOrTruncatedAsChosen()
    {
        using var dir = new TempDir();
        int over = HsFixtures.Lengths.Count(n => n > 20);
        var skip = Quiet(Options(dir.File("skip"), batchTokens: 256) with { MaxTokens = 20 });
        Assert.Equal(over, skip.Plan.TooLongSkipped);
        Assert.Equal(HsFixtures.Lengths.Length - over, skip.RowsWritten);
        Assert.False(File.Exists(HiddenStateFile.PathFor(dir.File("skip"), 3))); // 40 tokens

        var trunc = Quiet(Options(dir.File("trunc"), batchTokens: 256) with { MaxTokens = 20, TooLong = TooLongPolicy.Truncate });
        Assert.Equal(over, trunc.Plan.TooLongTruncated);
        Assert.Equal(HsFixtures.Lengths.Length, trunc.RowsWritten);
        var spec = HiddenStateStoreMetadata.Load(dir.File("trunc"))!.ToSpec();
        Assert.Equal(TooLongPolicy.Truncate, spec.TooLong);
        var (sample, check) = HiddenStateFile.Read(HiddenStateFile.PathFor(dir.File("trunc"), 3), 3, spec.ExpectedTokens(HsFixtures.RowIds(3))!, spec);
        using (sample)
        {
            Assert.True(check.Ok, check.Message);
            Assert.Equal(HsFixtures.RowIds(3)[..20], sample!.TokenIds);
        }
        Assert.Contains("max_position_embeddings", Assert.Throws<SpeculatorsException>(() =>
            HiddenStateDatagen.PlanRun(Options(dir.File("x")) with { MaxTokens = HsFixtures.Context + 1 })).Message);
    }
}
