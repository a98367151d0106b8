using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Modeling;

/// <summary>Each RoPE type against closed-form double-precision math.</summary>
public class RopeTests
{
    public RopeTests() => TestTorch.SingleThreaded();

    public static TheoryData<string> Types() => new(Configs.Keys);

    static readonly Dictionary<string, RopeConfig> Configs = new()
    {
        ["default"] = new() { HeadDim = 64, Theta = 10000 },
        ["default-partial"] = new() { HeadDim = 64, Theta = 500000, PartialRotaryFactor = 0.25 },
        ["linear"] = new() { Type = RopeType.Linear, HeadDim = 32, Theta = 10000, Factor = 4 },
        ["dynamic"] = new() { Type = RopeType.Dynamic, HeadDim = 32, Theta = 10000, Factor = 2, MaxPositionEmbeddings = 64 },
        // Llama-3.1's published parameters, and a small original length so every branch is hit.
        ["llama3-3.1"] = new() { Type = RopeType.Llama3, HeadDim = 128, Theta = 500000, Factor = 8, LowFreqFactor = 1, HighFreqFactor = 4, OriginalMaxPositionEmbeddings = 8192 },
        ["llama3-small"] = new() { Type = RopeType.Llama3, HeadDim = 32, Theta = 10000, Factor = 4, LowFreqFactor = 1, HighFreqFactor = 2, OriginalMaxPositionEmbeddings = 32 },
        ["yarn"] = new() { Type = RopeType.Yarn, HeadDim = 64, Theta = 10000, Factor = 4, OriginalMaxPositionEmbeddings = 512 },
        ["yarn-mscale-notrunc"] = new() { Type = RopeType.Yarn, HeadDim = 64, Theta = 1e6, Factor = 40, OriginalMaxPositionEmbeddings = 4096, Mscale = 0.707, MscaleAllDim = 1.0, Truncate = false, BetaFast = 16, BetaSlow = 2 },
        ["yarn-attention-factor"] = new() { Type = RopeType.Yarn, HeadDim = 16, Theta = 10000, Factor = 2, OriginalMaxPositionEmbeddings = 64, AttentionFactor = 0.5 },
    };

    [Theory]
    [MemberData(nameof(Types))]
    public void InverseFrequenciesAndTablesMatchClosedForm(string name)
    {
        var r = Configs[name];
        using var scope = NewDisposeScope();
        double[] expected = RopeMath.InvFreq(r);
        var got = r.InverseFrequencies().to(ScalarType.Float64).data<double>().ToArray();
        Assert.Equal(r.RotaryDim / 2, got.Length);
        for (int i = 0; i < got.Length; i++)
            Assert.True(Math.Abs(got[i] - expected[i]) <= 1e-6 * expected[i] + 1e-30, $"{name} inv_freq[{i}] {got[i]} vs {expected[i]}");
        Assert.Equal(RopeMath.Scaling(r), r.AttentionScaling, 12);

        long[] positions = [0, 1, 5, 37, 300];
        using var rope = new RotaryEmbedding(r);
        var (cos, sin) = rope.Forward(torch.tensor(positions).unsqueeze(0), ScalarType.Float32);
        Assert.Equal(new long[] { 1, positions.Length, r.RotaryDim }, cos.shape);
        double s = RopeMath.Scaling(r);
        double[] tableFreq = RopeMath.InvFreq(r, positions.Max() + 1); // dynamic NTK grows with the sequence
        for (int p = 0; p < positions.Length; p++)
            for (int i = 0; i < r.RotaryDim; i++)
            {
                double angle = positions[p] * tableFreq[i % (r.RotaryDim / 2)];
                Assert.True(Math.Abs(cos[0, p, i].item<float>() - Math.Cos(angle) * s) < 2e-4, $"{name} cos p={positions[p]} i={i}");
                Assert.True(Math.Abs(sin[0, p, i].item<float>() - Math.Sin(angle) * s) < 2e-4, $"{name} sin p={positions[p]} i={i}");
            }
    }

    [Fact]
    public void Llama3BranchesAreAllExercised()
    {
        var r = Configs["llama3-small"];
        var f = RopeMath.InvFreq(r with { Type = RopeType.Default });
        var l3 = RopeMath.InvFreq(r);
        Assert.Contains(Enumerable.Range(0, f.Length), i => l3[i] == f[i]);                         // high frequency: kept
        Assert.Contains(Enumerable.Range(0, f.Length), i => Math.Abs(l3[i] - f[i] / 4) < 1e-15);   // low frequency: divided
        Assert.Contains(Enumerable.Range(0, f.Length), i => l3[i] < f[i] && l3[i] > f[i] / 4);     // smoothed band
    }

    [Fact]
    public void DynamicNtkRescalesOnlyBeyondMaxPositions()
    {
        var r = Configs["dynamic"];
        using var scope = NewDisposeScope();
        var inside = r.InverseFrequencies(64).data<float>().ToArray();
        var baseline = RopeMath.InvFreq(r with { Type = RopeType.Default });
        for (int i = 0; i < inside.Length; i++) Assert.True(Math.Abs(inside[i] - baseline[i]) <= 1e-6 * baseline[i], $"inside[{i}]");
        var beyond = r.InverseFrequencies(100).to(ScalarType.Float64).data<double>().ToArray();
        var expected = RopeMath.InvFreq(r, 100);
        Assert.True(beyond[5] < baseline[5] * 0.99);
        for (int i = 0; i < beyond.Length; i++) Assert.True(Math.Abs(beyond[i] - expected[i]) <= 2e-6 * expected[i], $"inv_freq[{i}]");
        // The table for positions up to 99 uses the grown base.
        using var rope = new RotaryEmbedding(r);
        var (cos, _) = rope.Forward(torch.tensor(new long[] { 99 }).unsqueeze(0), ScalarType.Float64);
        Assert.Equal(Math.Cos(99 * expected[3]), cos[0, 0, 3].item<double>(), 4);
    }

    [Fact]
    public void YarnCorrectionRangeMatchesPaperFormula()
    {
        var r = Configs["yarn"];
        var (low, high) = r.YarnCorrectionRange();
        double Dim(double rot) => 64 * Math.Log(512 / (rot * 2 * Math.PI)) / (2 * Math.Log(10000));
        Assert.Equal(Math.Floor(Dim(32)), low);
        Assert.Equal(Math.Ceiling(Dim(1)), high);
        var (l2, h2) = Configs["yarn-mscale-notrunc"].YarnCorrectionRange();
        Assert.NotEqual(Math.Floor(l2), l2); // not truncated
        Assert.True(h2 > l2);
    }

    /// <summary>RoPE rotates channel pairs (i, i + rd/2); q·k then depends only on the position difference.</summary>
    [Fact]
    public void ApplyRotatesPairsAndPreservesRelativePositions()
    {
        using var scope = NewDisposeScope();
        var r = new RopeConfig { HeadDim = 16, Theta = 100, PartialRotaryFactor = 0.5 };
        using var rope = new RotaryEmbedding(r);
        var gen = new Generator(3);
        var q = torch.randn([1, 1, 1, 16], ScalarType.Float64, generator: gen);
        var k = torch.randn([1, 1, 1, 16], ScalarType.Float64, generator: gen);
        double Dot(long pq, long pk)
        {
            var (cq, sq) = rope.Forward(torch.tensor(new[] { pq }).unsqueeze(0), ScalarType.Float64);
            var (ck, sk) = rope.Forward(torch.tensor(new[] { pk }).unsqueeze(0), ScalarType.Float64);
            return RotaryEmbedding.Apply(q, cq, sq).mul(RotaryEmbedding.Apply(k, ck, sk)).sum().item<double>();
        }
        Assert.Equal(Dot(3, 1), Dot(10, 8), 5);
        Assert.Equal(Dot(7, 7), Dot(0, 0), 5);
        Assert.NotEqual(Dot(3, 1), Dot(3, 2), 3);

        var (cos, sin) = rope.Forward(torch.tensor(new long[] { 5 }).unsqueeze(0), ScalarType.Float64);
        var rotated = RotaryEmbedding.Apply(q, cos, sin);
        var inv = RopeMath.InvFreq(r);
        var x = q.data<double>().ToArray();
        var y = rotated.data<double>().ToArray();
        for (int i = 0; i < 4; i++)
        {
            double a = 5 * inv[i];
            // cos/sin are computed in float32 (as transformers does), hence 6 digits.
            Assert.Equal(x[i] * Math.Cos(a) - x[i + 4] * Math.Sin(a), y[i], 6);
            Assert.Equal(x[i + 4] * Math.Cos(a) + x[i] * Math.Sin(a), y[i + 4], 6);
        }
        for (int i = 8; i < 16; i++) Assert.Equal(x[i], y[i]); // partial rotary: the rest passes through
    }
}
