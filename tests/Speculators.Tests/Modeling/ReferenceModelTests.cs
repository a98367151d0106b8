using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>
/// Equality with ../shared/data/reference_models/*/expected.safetensors: hidden states at every capture id
/// and logits from an independent float64 implementation of transformers' modeling code.
/// </summary>
public class ReferenceModelTests
{
    public ReferenceModelTests() => TestTorch.SingleThreaded();

    [Theory]
    [InlineData("llama_default")]
    [InlineData("llama3_rope")]
    [InlineData("qwen3_qknorm")]
    public void MatchesFloat64ReferenceAtEveryLayerAndLogits(string name)
    {
        string dir = TestPaths.Data("reference_models", name);
        using var scope = NewDisposeScope();
        using var model = CausalLM.LoadFromDirectory(dir, ScalarType.Float32, torch.CPU);
        using var expected = SafeTensorsFile.Open(Path.Combine(dir, "expected.safetensors"));
        var ids = expected.Load("token_ids");
        var hs = expected.Load("hidden_states"); // [T, N+1, H]
        var logits = expected.Load("logits");    // [T, V]
        int n = model.Config.NumLayers;
        Assert.Equal(n + 1, (int)hs.shape[1]);
        using var output = model.Forward(ids.unsqueeze(0), captureLayerIds: Enumerable.Range(0, n + 1).ToArray());
        Assert.Equal(Enumerable.Range(0, n + 1), output.CaptureLayerIds);
        var got = output.HiddenStates![0];
        for (int k = 0; k <= n; k++)
            AssertClose(hs.select(1, k), got.select(1, k), 1e-4, $"{name} hidden id {k}");
        AssertClose(logits, output.Logits![0], 1e-4, $"{name} logits");
    }

    internal static void AssertClose(Tensor expected, Tensor actual, double rel, string what)
    {
        Assert.Equal(expected.shape, actual.shape);
        var e = expected.to(ScalarType.Float64);
        var a = actual.to(ScalarType.Float64);
        double scale = e.abs().max().item<double>();
        double err = (e - a).abs().max().item<double>();
        Assert.True(err <= rel * Math.Max(scale, 1e-6), $"{what}: max abs error {err:E3} vs scale {scale:E3} (allowed {rel:E1} relative)");
    }
}
