using Speculators.HiddenStates;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

public class GeneratorTests
{
    public GeneratorTests() => HsFixtures.SingleThreaded();

    static List<GenerationRequest> Requests(params int[] rows) => rows.Select(r => new GenerationRequest(r, HsFixtures.RowIds(r))).ToList();

    [Fact]
    public void PaddedBatchEqualsOneRowAtATimeAndLayerNIsThePreNormOutput()
    {
        using var model = HsFixtures.LoadModel(ScalarType.Float32);
        var spec = HsFixtures.Spec(ScalarType.Float32);
        using var batched = new HiddenStateGenerator(model, spec, batchTokens: 1 << 20);
        using var single = new HiddenStateGenerator(model, spec, batchTokens: 1);
        var requests = Requests(0, 1, 2, 3, 4, 5);
        var a = batched.Generate(requests);
        var b = single.Generate(requests);
        try
        {
            Assert.Equal(1, batched.Prefills);           // one prefill for all six rows
            Assert.Equal(6, single.Prefills);
            Assert.Equal(6L * 40, batched.PaddedTokensRun); // padded to the longest (40)
            for (int i = 0; i < requests.Count; i++)
            {
                Assert.Equal(requests[i].Row, a[i].Row);
                Assert.Equal(requests[i].Tokens, a[i].TokenIds);
                Assert.Equal(new long[] { requests[i].Tokens.Length, 4, HsFixtures.Hidden }, a[i].Hidden.shape);
                Assert.True(HsFixtures.RelativeError(a[i].Hidden, b[i].Hidden) < 1e-6, $"row {requests[i].Row}: padding leaked");

                // Independent of the generator: the model run alone on the row; id N = last layer output before the norm.
                using var scope = NewDisposeScope();
                var ids = torch.tensor(requests[i].Tokens).unsqueeze(0);
                using var output = model.Forward(ids, captureLayerIds: [1, 2, 3]);
                Assert.True(HsFixtures.Same(output.HiddenStates![0], b[i].Hidden.narrow(1, 0, 3)));
                Assert.True(HsFixtures.Same(output.LastHidden[0], b[i].Hidden.select(1, 3)));
            }
        }
        finally
        {
            foreach (var s in a.Concat(b)) s.Dispose();
        }
    }

    [Fact]
    public void Bfloat16BatchesAgreeWithSingleRowsWithinBfloat16Rounding()
    {
        using var model = HsFixtures.LoadModel(ScalarType.BFloat16);
        var spec = HsFixtures.Spec(ScalarType.BFloat16);
        using var batched = new HiddenStateGenerator(model, spec, batchTokens: 1 << 20);
        using var single = new HiddenStateGenerator(model, spec, batchTokens: 1);
        var requests = Requests(3, 6, 8);
        var a = batched.Generate(requests);
        var b = single.Generate(requests);
        try
        {
            for (int i = 0; i < requests.Count; i++)
            {
                Assert.Equal(ScalarType.BFloat16, a[i].Hidden.dtype);
                // bf16 keeps 8 significant bits (relative spacing 2^-7 at worst); padding changes the reduction order only.
                Assert.True(HsFixtures.RelativeError(a[i].Hidden, b[i].Hidden) <= 1.0 / 64, $"row {requests[i].Row}");
            }
        }
        finally
        {
            foreach (var s in a.Concat(b)) s.Dispose();
        }
    }

    [Fact]
    public void ResultsComeBackInRequestOrderAndChecksTheModel()
    {
        using var model = HsFixtures.LoadModel(ScalarType.Float32);
        using var gen = new HiddenStateGenerator(model, HsFixtures.Spec(ScalarType.BFloat16), batchTokens: 64);
        var samples = gen.Generate(Requests(5, 3, 0, 3));
        try
        {
            Assert.Equal(new[] { 5, 3, 0, 3 }, samples.Select(s => s.Row));
            Assert.All(samples, s => Assert.Equal(ScalarType.BFloat16, s.Hidden.dtype));
            Assert.True(HsFixtures.Same(samples[1].Hidden, samples[3].Hidden));
            Assert.True(gen.Prefills > 1);
        }
        finally
        {
            foreach (var s in samples) s.Dispose();
        }
        var wrongN = HiddenStateSpec.ForVerifier([1, 2], 3, HsFixtures.Hidden, ScalarType.Float32);
        Assert.Contains("3", Assert.Throws<SpeculatorsException>(() => new HiddenStateGenerator(model, wrongN)).Message);
    }

    [Fact]
    public void PrefillFlopsCountsWeightsAndCausalAttention()
    {
        var c = TinyModelFactory.BuildConfig(new TinyModelOptions { NumLayers = 2, HiddenSize = 8, IntermediateSize = 16, NumHeads = 2, NumKvHeads = 1, VocabSize = 300 });
        // q 8×8, k and v 8×4, o 8×8 (192) + MLP 3×8×16 (384) = 576 weights per layer.
        double perToken = 2.0 * 576;
        Assert.Equal(2 * (perToken * 10 + 2.0 * 8 * 10 * 10), HiddenStateGenerator.PrefillFlops(c, 10));
    }

    [Fact]
    public void ComputeDTypeFollowsTheRequestThenTheDevice()
    {
        Assert.Equal(ScalarType.Float32, ComputeDType.Resolve(ScalarType.BFloat16, ScalarType.Float32, torch.CPU));
        Assert.Equal(ScalarType.BFloat16, ComputeDType.Resolve(ScalarType.Float32, ScalarType.BFloat16, torch.CPU));
        Assert.Equal(ScalarType.Float32, ComputeDType.Resolve(ScalarType.Float32, null, torch.CPU));
        Assert.Equal(ComputeDType.HasNativeBFloat16(torch.CPU) ? ScalarType.BFloat16 : ScalarType.Float32,
            ComputeDType.Resolve(ScalarType.BFloat16, null, torch.CPU));
        Assert.Equal(ScalarType.BFloat16, ComputeDType.Resolve(ScalarType.BFloat16, null, new Device(DeviceType.CUDA, 0)));
        Assert.Throws<SpeculatorsException>(() => ComputeDType.Resolve(ScalarType.BFloat16, ScalarType.Float16, torch.CPU));
    }
}
