using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>Explicit autocast against the same computation written with a hand-made bf16 weight copy.</summary>
public class AutocastTests
{
    static bool Same(Tensor a, Tensor b) => a.dtype == b.dtype && a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    [Fact]
    public void LinearComputesInBf16AndGradsLandInFp32Masters()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(2);
        var w = torch.randn(8, 16).requires_grad_(true);
        var x1 = torch.randn(3, 16);
        var x2 = torch.randn(3, 16);
        var g = torch.randn(3, 8);

        Tensor y;
        using (var amp = Autocast.Enter(ScalarType.BFloat16))
        {
            Assert.Same(amp, Autocast.Current);
            // The weight is used twice (as by consecutive TTT steps) and cast once.
            Assert.Same(Autocast.Cast(w), Autocast.Cast(w));
            y = Autocast.Linear(x1, w) + Autocast.Linear(x2, w);
            Assert.Equal(ScalarType.BFloat16, y.dtype);
        }
        Assert.Null(Autocast.Current);
        y.backward(new[] { g.to(ScalarType.BFloat16) });
        Assert.Equal(ScalarType.Float32, w.grad!.dtype);

        // Reference: one bf16 copy of the weight as a leaf, used twice; its grad cast to fp32.
        var wb = w.detach().to(ScalarType.BFloat16).requires_grad_(true);
        var yRef = nn.functional.linear(x1.to(ScalarType.BFloat16), wb) + nn.functional.linear(x2.to(ScalarType.BFloat16), wb);
        yRef.backward(new[] { g.to(ScalarType.BFloat16) });
        Assert.True(Same(yRef.detach(), y.detach()));
        Assert.True(Same(wb.grad!.to(ScalarType.Float32), w.grad!));
    }

    [Fact]
    public void OutsideARegionNothingIsCast()
    {
        using var scope = NewDisposeScope();
        var w = torch.randn(4, 4).requires_grad_(true);
        var x = torch.randn(2, 4);
        Assert.Same(w, Autocast.Cast(w));
        Assert.Equal(ScalarType.Float32, Autocast.Linear(x, w).dtype);
        using (Autocast.Enter(ScalarType.BFloat16, enabled: false))
            Assert.Equal(ScalarType.Float32, Autocast.Linear(x, w).dtype);
        using (Autocast.Enter(ScalarType.BFloat16))
        {
            var ids = torch.tensor(new long[] { 1, 2 });
            Assert.Same(ids, Autocast.Cast(ids));                      // integers pass through
            Assert.Equal(ScalarType.Float32, Autocast.Float32(x.to(ScalarType.BFloat16)).dtype);
        }
    }

    [Fact]
    public void RegionsNestAndMustCloseInOrder()
    {
        var outer = Autocast.Enter(ScalarType.BFloat16);
        var inner = Autocast.Enter(ScalarType.Float32);
        Assert.Same(inner, Autocast.Current);
        Assert.Throws<InvalidOperationException>(() => outer.Dispose());
        inner.Dispose();
        Assert.Same(outer, Autocast.Current);
        outer.Dispose();
        Assert.Null(Autocast.Current);
    }

    [Fact]
    public void ComputeDtypeParsingRefusesFp16OnCpu()
    {
        Assert.Equal(ScalarType.BFloat16, Precision.ParseComputeDtype("bfloat16", DeviceType.CPU));
        Assert.Equal(ScalarType.Float32, Precision.ParseComputeDtype("float32", DeviceType.CPU));
        var e = Assert.Throws<SpeculatorsException>(() => Precision.ParseComputeDtype("float16", DeviceType.CPU));
        Assert.Contains("not supported on CPU", e.Message);
        Assert.Equal("bfloat16", Precision.Name(ScalarType.BFloat16));
        Assert.True(Precision.HasFastBf16(DeviceType.CUDA));
        bool cpuBf16 = File.ReadLines("/proc/cpuinfo").Any(l => l.StartsWith("flags") && (l.Contains(" avx512_bf16") || l.Contains(" amx_bf16")));
        Assert.Equal(cpuBf16, Precision.HasFastBf16(DeviceType.CPU));
        Assert.Equal(cpuBf16 ? ScalarType.BFloat16 : ScalarType.Float32, Precision.DefaultComputeDtype(DeviceType.CPU));
    }
}
