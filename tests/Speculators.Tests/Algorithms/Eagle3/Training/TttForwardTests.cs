using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>
/// The TTT forward with block-sparse attention equals an independent dense-mask forward — loss, every metric and the
/// gradient of every trainable parameter — in float64, for random documents, L not a multiple of the block size and
/// 3 TTT steps, over both layer styles, both norm_output settings, sliding windows, two layers and draft-token feeding.
/// </summary>
public class TttForwardTests
{
    public TttForwardTests() => E3TrainFixtures.SingleThreaded();

    public static TheoryData<Eagle3LayerStyle, bool, int?, int, bool> Cases => new()
    {
        { Eagle3LayerStyle.Llama, true, null, 1, true },
        { Eagle3LayerStyle.Llama, false, null, 1, true },
        { Eagle3LayerStyle.Qwen3, true, null, 1, true },
        { Eagle3LayerStyle.Qwen3, false, 5, 1, true },
        { Eagle3LayerStyle.Llama, true, 6, 2, true },
        { Eagle3LayerStyle.Llama, true, null, 1, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void BlockSparseEqualsDenseReference(Eagle3LayerStyle style, bool normOutput, int? window, int layers, bool teacherForcing)
    {
        using var scope = NewDisposeScope();
        using var draft = E3TrainFixtures.Draft(style, normOutput, window, layers);
        // 37 positions (block size 8: not a multiple), four documents including a 1-token one, then padding.
        using var batch = E3TrainFixtures.Batch([9, 1, 13, 7], 37, seed: 11 + layers + (window ?? 0));
        var options = new Eagle3TttOptions { Steps = 3, TeacherForcing = teacherForcing, Loss = LossSpec.Parse("{\"kl_div\": 1.0, \"tv\": 0.5}"), StepLossDecay = 0.8 };

        using var result = Eagle3TttForward.Run(draft, batch, options);
        result.Loss.backward();
        var sparseGrads = E3TrainFixtures.TakeGradients(draft);

        var (refLoss, refMetrics) = DenseTttReference.Run(draft, batch, options);
        refLoss.backward();
        var denseGrads = E3TrainFixtures.TakeGradients(draft);

        double loss = result.Loss.to(ScalarType.Float64).item<double>();
        Assert.True(loss > 0.01, $"loss {loss} should be far from 0 for a random draft");
        Assert.Equal(refMetrics["loss"].Sum, loss, 1e-9 * Math.Max(1, loss));
        for (int k = 0; k < 3; k++)
        {
            double lk = result.Metrics[$"loss_{k}_sum"].to(ScalarType.Float64).item<double>();
            Assert.Equal(refMetrics[$"loss_{k}"].Sum, lk, 1e-9 * Math.Max(1, lk));
            foreach (var name in new[] { "full_acc", "cond_acc" })
            {
                Assert.Equal(refMetrics[$"{name}_{k}"].Sum, result.Metrics[$"{name}_{k}_sum"].item<float>());
                Assert.Equal(refMetrics[$"{name}_{k}"].Total, result.Metrics[$"{name}_{k}_total"].item<float>());
            }
            Assert.True(result.Metrics.ContainsKey($"kl_div_loss_{k}_sum") && result.Metrics.ContainsKey($"tv_loss_{k}_sum"));
        }
        Assert.True(refMetrics["full_acc_0"].Total > 10);

        Assert.Equal(denseGrads.Keys.Order(), sparseGrads.Keys.Order());
        foreach (var (name, dense) in denseGrads)
        {
            double scale = Math.Max(E3TrainFixtures.MaxAbs(dense), 1e-12);
            double diff = E3TrainFixtures.MaxAbs(sparseGrads[name] - dense);
            Assert.True(diff <= 1e-6 * scale, $"{name}: max |Δgrad| {diff:E3} vs max |grad| {scale:E3}");
        }
        // fc, the layers and the final norm learn; the frozen lm_head and embedding get no gradient.
        Assert.True(E3TrainFixtures.MaxAbs(denseGrads["fc.weight"]) > 0);
        Assert.True(E3TrainFixtures.MaxAbs(denseGrads["layers.0.self_attn.q_proj.weight"]) > 0);
        Assert.DoesNotContain("lm_head.weight", denseGrads.Keys);
        Assert.Null(draft.lm_head.weight.grad);
        foreach (var t in sparseGrads.Values.Concat(denseGrads.Values)) t.Dispose();
    }
}

/// <summary>bf16 compute with fp32 masters: the same forward inside an <see cref="Autocast"/> region.</summary>
public class TttAutocastTests
{
    public TttAutocastTests() => E3TrainFixtures.SingleThreaded();

    [Fact]
    public void Bf16AutocastMatchesFp32WithinRoundingAndGradientsReachTheMasters()
    {
        using var scope = NewDisposeScope();
        using var draft = E3TrainFixtures.Draft(Eagle3LayerStyle.Qwen3, normOutput: true, dtype: ScalarType.Float32);
        using var batch = E3TrainFixtures.Batch([12, 7], 21, seed: 8, dtype: ScalarType.Float32, blockSize: 8);
        var options = new Eagle3TttOptions { Steps = 2 };
        using var fp32 = Eagle3TttForward.Run(draft, batch, options);
        fp32.Loss.backward();
        var g32 = E3TrainFixtures.TakeGradients(draft);
        Eagle3TttResult bf16;
        using (Autocast.Enter(ScalarType.BFloat16))
        {
            bf16 = Eagle3TttForward.Run(draft, batch, options);
            bf16.Loss.backward();
        }
        using (bf16)
        {
            var g16 = E3TrainFixtures.TakeGradients(draft);
            double a = fp32.Loss.item<float>(), b = bf16.Loss.to(ScalarType.Float32).item<float>();
            Assert.True(Math.Abs(a - b) < 0.03 * a, $"fp32 loss {a}, bf16 loss {b}");
            Assert.NotEqual(a, b);   // the matmuls did run in bf16
            Assert.Equal(ScalarType.Float32, draft.fc.weight.grad!.dtype);
            foreach (var name in new[] { "fc.weight", "layers.0.self_attn.q_proj.weight", "layers.0.mlp.down_proj.weight" })
            {
                double scale = E3TrainFixtures.MaxAbs(g32[name]);
                Assert.True(scale > 0);
                Assert.True(E3TrainFixtures.MaxAbs(g16[name] - g32[name]) < 0.1 * scale, $"{name}: bf16 gradient too far from fp32");
            }
        }
    }
}
