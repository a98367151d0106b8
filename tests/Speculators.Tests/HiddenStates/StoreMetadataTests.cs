using System.Text.Json.Nodes;
using Speculators.HiddenStates;
using Speculators.Modeling;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

public class StoreMetadataTests
{
    static readonly VerifierIdentity Llama = new("org/llama", 32, 4096, 128256, 131072, "sha256:aaaa");

    static HiddenStateSpec Spec(int[]? aux = null, ScalarType dtype = ScalarType.BFloat16) =>
        HiddenStateSpec.ForVerifier(aux ?? [2, 16, 29], 32, 4096, dtype, 131072);

    [Fact]
    public void RoundTripsWithTheDocumentedKeysAndKeepsUnknownOnes()
    {
        using var dir = new TempDir();
        var meta = HiddenStateStoreMetadata.Create(Spec(), Llama);
        meta.Save(dir.Path);
        var json = JsonNode.Parse(File.ReadAllText(dir.File("metadata.json")))!.AsObject();
        Assert.Equal("[2,16,29,32]", json["layer_ids"]!.ToJsonString());
        Assert.Equal(32, (int)json["num_hidden_layers"]!);
        Assert.Equal(4096, (int)json["hidden_size"]!);
        Assert.Equal("bfloat16", (string)json["dtype"]!);
        Assert.Equal("org/llama", (string)json["verifier"]!);
        Assert.Equal(ProductInfo.NameAndVersion, (string)json["tool_version"]!);
        Assert.Equal("skip", (string)json["too_long"]!);

        json["written_by_a_later_version"] = 1;
        File.WriteAllText(dir.File("metadata.json"), json.ToJsonString());
        var back = HiddenStateStoreMetadata.Load(dir.Path)!;
        var spec = back.ToSpec();
        Assert.Equal(new[] { 2, 16, 29, 32 }, spec.LayerIds);
        Assert.Equal(new[] { 2, 16, 29 }, spec.AuxLayerIds);
        Assert.Equal((4096, ScalarType.BFloat16, (int?)131072, TooLongPolicy.Skip), (spec.HiddenSize, spec.DType, spec.MaxTokens, spec.TooLong));
        Assert.Empty(back.Mismatches(Spec(), Llama));
        back.Save(dir.Path);
        Assert.Contains("written_by_a_later_version", File.ReadAllText(dir.File("metadata.json")));
    }

    [Fact]
    public void MismatchesNameLayerIdsHiddenSizeVerifierAndDtype()
    {
        var meta = HiddenStateStoreMetadata.Create(Spec(), Llama);
        Assert.Contains(meta.Mismatches(Spec([2, 16, 30]), Llama), m => m.StartsWith("layer_ids", StringComparison.Ordinal));
        Assert.Contains(meta.Mismatches(Spec(), Llama with { HiddenSize = 2048 }), m => m.StartsWith("hidden_size", StringComparison.Ordinal));
        Assert.Contains(meta.Mismatches(Spec(), Llama with { NumHiddenLayers = 36 }), m => m.StartsWith("num_hidden_layers", StringComparison.Ordinal));
        Assert.Contains(meta.Mismatches(Spec(), Llama with { Fingerprint = "sha256:bbbb" }), m => m.StartsWith("verifier", StringComparison.Ordinal));
        Assert.Contains(meta.Mismatches(Spec(dtype: ScalarType.Float32), Llama), m => m.StartsWith("dtype", StringComparison.Ordinal));
        // Only the path differs (another machine): same store.
        Assert.Empty(meta.Mismatches(Spec(), Llama with { Name = "/models/llama" }));
        Assert.Empty(meta.Mismatches(Spec(), Llama with { Fingerprint = null }));
    }

    [Fact]
    public void BrokenMetadataIsRejectedWithTheFileAndKey()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("metadata.json"), """{"layer_ids":[2,16,29],"num_hidden_layers":32,"hidden_size":4096,"dtype":"bfloat16","verifier":"x","tool_version":"t"}""");
        var e = Assert.Throws<SpeculatorsException>(() => HiddenStateStoreMetadata.Load(dir.Path));
        Assert.Contains("metadata.json", e.Message);
        Assert.Contains("layer_ids", e.Message);
        File.WriteAllText(dir.File("metadata.json"), "{ not json");
        Assert.Contains("metadata.json", Assert.Throws<SpeculatorsException>(() => HiddenStateStoreMetadata.Load(dir.Path)).Message);
    }

    [Fact]
    public void LayerIdsThatIncludeTheFinalLayerAreRejected()
    {
        var e = Assert.Throws<SpeculatorsException>(() => HiddenStateSpec.ForVerifier([2, 16, 32], 32, 4096, ScalarType.BFloat16));
        Assert.Contains("--layer-ids", e.Message);
        Assert.Contains("32", e.Message);
        Assert.Throws<SpeculatorsException>(() => HiddenStateSpec.ForVerifier([16, 2], 32, 4096, ScalarType.BFloat16));
        Assert.Throws<SpeculatorsException>(() => HiddenStateSpec.ForVerifier([2], 32, 4096, ScalarType.Int64));
    }

    [Fact]
    public void ResolveSpecChecksMetadataAgainstTheVerifierAndTargetIds()
    {
        using var dir = new TempDir();
        HiddenStateStoreMetadata.Create(Spec(), Llama).Save(dir.Path);
        Assert.Equal(Spec().LayerIds, HiddenStateStore.ResolveSpec(dir.Path, Llama, null).LayerIds);
        Assert.Equal(Spec().LayerIds, HiddenStateStore.ResolveSpec(dir.Path, Llama, [2, 16, 29]).LayerIds);
        var other = Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, Llama, [3, 16, 29]));
        Assert.Contains("layer_ids", other.Message);
        var verifier = Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, Llama with { Fingerprint = "sha256:cc" }, null));
        Assert.Contains("weights differ", verifier.Message);
        Assert.Contains("hidden_size", Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, Llama with { HiddenSize = 8 }, null)).Message);
    }

    [Fact]
    public void PythonStoreWithoutMetadataNeedsTargetLayerIdsWithTheSameCount()
    {
        using var dir = new TempDir();
        var small = new VerifierIdentity("py", 8, 16, 100, 64, null);
        var pySpec = HiddenStateSpec.ForVerifier([2, 4, 5], 8, 16, ScalarType.BFloat16);
        using (NewDisposeScope())
            HiddenStateFile.Write(HiddenStateFile.PathFor(dir.Path, 3), TorchSharp.torch.zeros(6, 4, 16, ScalarType.BFloat16), [1, 2, 3, 4, 5, 6], pySpec);

        var none = Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, small, null));
        Assert.Contains("--target-layer-ids", none.Message);
        var count = Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, small, [2, 5]));
        Assert.Contains("4 layers per token", count.Message);
        Assert.Contains("hidden size 16", Assert.Throws<SpeculatorsException>(() => HiddenStateStore.ResolveSpec(dir.Path, small with { HiddenSize = 32 }, [2, 4, 5])).Message);

        var spec = HiddenStateStore.ResolveSpec(dir.Path, small, [2, 4, 5]);
        Assert.Equal(new[] { 2, 4, 5, 8 }, spec.LayerIds);
        Assert.Equal(ScalarType.BFloat16, spec.DType);
        Assert.Null(spec.MaxTokens);
        Assert.False(File.Exists(dir.File("metadata.json")));
    }

    [Fact]
    public void EmptyStoreUsesTheDefaultsForNewStores()
    {
        using var dir = new TempDir();
        var v = new VerifierIdentity("m", 32, 64, 100, 2048, null);
        var spec = HiddenStateStore.ResolveSpec(dir.File("not-yet"), v, null, new NewStoreOptions { DType = ScalarType.Float32 });
        Assert.Equal(AuxLayerIds.Default(32).Append(32), spec.LayerIds);
        Assert.Equal(ScalarType.Float32, spec.DType);
        Assert.Equal(2048, spec.MaxTokens);
        Assert.False(Directory.Exists(dir.File("not-yet")));
    }

    [Fact]
    public void FingerprintFollowsTheWeightsNotTheConfig()
    {
        using var dir = new TempDir();
        var o = new TinyModelOptions { NumLayers = 4, HiddenSize = 16, IntermediateSize = 32, VocabSize = 260, WriteTokenizer = false };
        TinyModelFactory.Create(dir.File("a"), o with { Seed = 1 });
        TinyModelFactory.Create(dir.File("b"), o with { Seed = 1 });
        TinyModelFactory.Create(dir.File("c"), o with { Seed = 2 });
        string? a = VerifierIdentity.ComputeFingerprint(dir.File("a"));
        Assert.StartsWith("sha256:", a);
        Assert.Equal(a, VerifierIdentity.ComputeFingerprint(dir.File("b")));
        Assert.NotEqual(a, VerifierIdentity.ComputeFingerprint(dir.File("c")));
        Assert.Null(VerifierIdentity.ComputeFingerprint(dir.Path));
    }
}
