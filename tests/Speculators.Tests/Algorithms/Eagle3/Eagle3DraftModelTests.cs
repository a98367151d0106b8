using Speculators.Algorithms.Eagle3;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>The draft's forward pieces against closed-form float64 math.</summary>
public class Eagle3DraftModelTests
{
    public Eagle3DraftModelTests() => TestTorch.SingleThreaded();

    static Eagle3DraftModel Build(Eagle3DraftOptions options, CausalLM verifier)
    {
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        var mapping = Speculators.Data.VocabMapping.Build(Enumerable.Range(0, 40).Select(i => KeyValuePair.Create((long)(7 * i + 3), 1L)).ToList(), 40, 320);
        var d = Eagle3Builder.FromVerifier(vw, options with { InitializerRange = 0.5 }, mapping, null, ScalarType.Float64);
        // Non-trivial norm weights so a norm applied to the wrong slice shows.
        using var noGrad = torch.no_grad();
        var gen = new Generator(8);
        foreach (var (name, p) in d.Weights())
            if (name.Contains("norm", StringComparison.Ordinal) && !name.StartsWith("verifier", StringComparison.Ordinal))
                p.copy_(torch.rand(p.shape, ScalarType.Float64, generator: gen).add(0.5));
        return d;
    }

    static Tensor Rms(Tensor x, Tensor w, double eps) => x.div(x.pow(2).mean([-1L], keepdim: true).add(eps).sqrt()).mul(w);

    [Fact]
    public void CombineAuxHiddenMatchesClosedFormForEachNormOption()
    {
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { Seed = 2 }, ScalarType.Float64);
        var aux = torch.randn([5, 3 * 64], ScalarType.Float64, generator: new Generator(1)).mul(3);
        double eps = verifier.Config.RmsNormEps;
        foreach (var mode in new[] { "none", "input_norm", "fc_norm" })
        {
            var opts = Eagle3DraftOptions.Classic with { NormBeforeFc = mode == "input_norm", FcNorm = mode == "fc_norm" };
            using var d = Build(opts, verifier);
            Tensor x = aux;
            if (mode == "input_norm") x = Rms(aux, d.input_norm!.weight, eps);
            if (mode == "fc_norm")
                x = torch.cat(Enumerable.Range(0, 3).Select(i => Rms(aux.narrow(1, i * 64, 64), d.fc_norm![i].weight, eps)).ToArray(), 1);
            var want = x.matmul(d.fc.weight.t());
            // RMSNorm computes in float32 as HF does, hence 1e-6 where a norm is involved.
            ReferenceModelTests.AssertClose(want, d.CombineAuxHidden(aux), mode == "none" ? 1e-12 : 1e-6, mode);
        }
    }

    [Fact]
    public void HeadFeedsBackPostNormOnlyWithNormOutputAndMapsIdsThroughD2T()
    {
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { Seed = 4 }, ScalarType.Float64);
        using var withNorm = Build(Eagle3DraftOptions.HeadDefaults, verifier);
        using var without = Build(Eagle3DraftOptions.Classic, verifier);
        var x = torch.randn([2, 3, 64], ScalarType.Float64, generator: new Generator(5));
        foreach (var d in new[] { withNorm, without })
        {
            var normed = Rms(x, d.norm.weight, verifier.Config.RmsNormEps);
            var (logits, next) = d.Head(x);
            ReferenceModelTests.AssertClose(normed.matmul(d.lm_head.weight.t()), logits, 1e-6, "logits = lm_head(norm(x))");
            ReferenceModelTests.AssertClose(d.Config.NormOutput ? normed : x, next, 1e-6, "fed-back hidden");
        }
        // d2t: draft id i → 7i + 3.
        var ids = torch.tensor(new long[] { 0, 1, 39, 5 });
        Assert.Equal(new long[] { 3, 10, 276, 38 }, withNorm.DraftToTarget(ids).data<long>().ToArray());
        // Verifier targets: its final norm then its lm_head rows of the kept ids.
        var y = torch.randn([4, 64], ScalarType.Float64, generator: new Generator(6));
        var rows = verifier.LmHeadWeight.index_select(0, torch.tensor(Enumerable.Range(0, 40).Select(i => 7L * i + 3).ToArray()));
        ReferenceModelTests.AssertClose(Rms(y, verifier.model.norm.weight, verifier.Config.RmsNormEps).matmul(rows.t()), withNorm.VerifierTargets(y), 1e-6, "targets");
    }

    [Fact]
    public void EmbedRequiresGradMakesTheEmbeddingTrainable()
    {
        using var scope = NewDisposeScope();
        using var verifier = TinyModelFactory.CreateInMemory(new TinyModelOptions { Seed = 4 }, ScalarType.Float64);
        using var d = Build(Eagle3DraftOptions.HeadDefaults with { EmbedRequiresGrad = true }, verifier);
        Assert.Contains(d.TrainableParameters(), p => p.Name == "embed_tokens.weight");
        Assert.True(d.embed_tokens.weight.requires_grad);
        Assert.False(d.lm_head.weight.requires_grad);
        var (trainable, frozen, total) = d.ParameterCounts();
        Assert.Equal(40 * 64, frozen); // lm_head only
        Assert.Equal(total, trainable + frozen);
    }
}
