using Speculators.Distributed;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>Optimizers against updates computed here in plain double arithmetic from the published formulas.</summary>
public class OptimizerTests
{
    static Tensor Param(float[] values, params long[] shape) =>
        torch.tensor(values).reshape(shape).requires_grad_(true);

    static void SetGrad(Tensor p, float[] g) => p.grad = torch.tensor(g).reshape(p.shape);

    static double[] Values(Tensor t) => t.detach().to(ScalarType.Float64).flatten().data<double>().ToArray();

    [Fact]
    public void AdamWMatchesHandComputedUpdates()
    {
        using var scope = NewDisposeScope();
        float[] init = { 0.5f, -1.25f, 2.0f, 0.0f, 3.5f, -0.75f };
        var p = Param(init, 2, 3);
        var q = Param(new float[] { 1.0f, -2.0f }, 2);
        const double b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.01;
        var opt = new AdamW(new[] { new ParamGroup("g", new[] { new NamedParameter("p", p), new NamedParameter("q", q) }, 1e-2, wd) }, b1, b2, eps);
        float[][] grads =
        {
            new[] { 0.1f, -0.2f, 0.3f, 0.0f, 1.5f, -0.05f },
            new[] { -0.4f, 0.1f, 0.2f, 0.7f, -1.0f, 0.25f },
            new[] { 0.05f, 0.05f, -0.3f, 0.2f, 0.5f, 0.0f },
        };
        double[] lrs = { 1e-2, 5e-3, 2e-2 };  // a schedule changes lr between steps

        double[] x = init.Select(v => (double)v).ToArray(), m = new double[6], v2 = new double[6];
        double[] y = { 1.0, -2.0 }, my = new double[2], vy = new double[2];
        for (int t = 1; t <= 3; t++)
        {
            double lr = lrs[t - 1];
            opt.ParamGroups[0].Lr = lr;
            SetGrad(p, grads[t - 1]);
            bool qHasGrad = t != 2;   // q has no gradient at step 2: skipped, its step count lags
            if (qHasGrad) SetGrad(q, new[] { 0.3f * t, -0.1f });
            opt.Step();
            opt.ZeroGrad();
            Assert.Null(p.grad);

            for (int i = 0; i < 6; i++)
            {
                double g = grads[t - 1][i];
                x[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g;
                v2[i] = b2 * v2[i] + (1 - b2) * g * g;
                double mhat = m[i] / (1 - Math.Pow(b1, t)), vhat = v2[i] / (1 - Math.Pow(b2, t));
                x[i] -= lr * mhat / (Math.Sqrt(vhat) + eps);
            }
            if (qHasGrad)
            {
                int tq = t == 1 ? 1 : 2;
                double[] gq = { 0.3 * t, -0.1 };
                for (int i = 0; i < 2; i++)
                {
                    double g = (float)gq[i];
                    y[i] *= 1 - lr * wd;
                    my[i] = b1 * my[i] + (1 - b1) * g;
                    vy[i] = b2 * vy[i] + (1 - b2) * g * g;
                    y[i] -= lr * (my[i] / (1 - Math.Pow(b1, tq))) / (Math.Sqrt(vy[i] / (1 - Math.Pow(b2, tq))) + eps);
                }
            }
        }
        var got = Values(p);
        for (int i = 0; i < 6; i++) Assert.True(Math.Abs(x[i] - got[i]) <= 1e-6 * Math.Max(1, Math.Abs(x[i])), $"p[{i}]: {x[i]:R} vs {got[i]:R}");
        var gotQ = Values(q);
        for (int i = 0; i < 2; i++) Assert.True(Math.Abs(y[i] - gotQ[i]) <= 1e-6 * Math.Max(1, Math.Abs(y[i])), $"q[{i}]: {y[i]:R} vs {gotQ[i]:R}");
        Assert.Equal(3, opt.StepCount);
        Assert.Equal(2L, opt.StateDict().Scalars["param_steps"]!["q"]!.GetValue<long>());
    }

    /// <summary>The quintic Newton–Schulz iteration in double precision, plain loops.</summary>
    static double[,] NewtonSchulzDouble(double[,] g, int steps)
    {
        const double a = 3.4445, b = -4.7750, c = 2.0315;
        int r = g.GetLength(0), cdim = g.GetLength(1);
        bool tall = r > cdim;
        int R = tall ? cdim : r, C = tall ? r : cdim;
        var x = new double[R, C];
        double norm = 0;
        for (int i = 0; i < r; i++) for (int j = 0; j < cdim; j++) norm += g[i, j] * g[i, j];
        norm = Math.Max(Math.Sqrt(norm), 1e-7);
        for (int i = 0; i < r; i++) for (int j = 0; j < cdim; j++)
            if (tall) x[j, i] = g[i, j] / norm; else x[i, j] = g[i, j] / norm;
        for (int s = 0; s < steps; s++)
        {
            var A = new double[R, R];
            for (int i = 0; i < R; i++) for (int j = 0; j < R; j++) { double acc = 0; for (int k = 0; k < C; k++) acc += x[i, k] * x[j, k]; A[i, j] = acc; }
            var B = new double[R, R];
            for (int i = 0; i < R; i++) for (int j = 0; j < R; j++) { double acc = 0; for (int k = 0; k < R; k++) acc += A[i, k] * A[k, j]; B[i, j] = b * A[i, j] + c * acc; }
            var nx = new double[R, C];
            for (int i = 0; i < R; i++) for (int j = 0; j < C; j++) { double acc = 0; for (int k = 0; k < R; k++) acc += B[i, k] * x[k, j]; nx[i, j] = a * x[i, j] + acc; }
            x = nx;
        }
        if (!tall) return x;
        var t = new double[r, cdim];
        for (int i = 0; i < r; i++) for (int j = 0; j < cdim; j++) t[i, j] = x[j, i];
        return t;
    }

    [Theory]
    [InlineData(6, 10)]
    [InlineData(12, 5)]   // tall: iterated on the transpose
    public void NewtonSchulzMatchesDoubleReferenceWithinBf16(int rows, int cols)
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(rows * 100 + cols);
        var g = torch.randn(rows, cols);
        var gd = new double[rows, cols];
        var flat = Values(g);
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) gd[i, j] = flat[i * cols + j];
        var expected = NewtonSchulzDouble(gd, 5);
        // The algorithm in fp64 equals the loop reference; torch's bf16 iteration is within bf16 rounding of it.
        var exact = Values(Muon.NewtonSchulz(g.to(ScalarType.Float64), computeDtype: ScalarType.Float64));
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) Assert.Equal(expected[i, j], exact[i * cols + j], 10);
        var o = Muon.NewtonSchulz(g);
        Assert.Equal(ScalarType.BFloat16, o.dtype);
        Assert.Equal(new long[] { rows, cols }, o.shape);
        var got = Values(o);
        double maxErr = 0;
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) maxErr = Math.Max(maxErr, Math.Abs(got[i * cols + j] - expected[i, j]));
        Assert.True(maxErr < 0.06, $"max |bf16 − fp64| = {maxErr}");  // 8-bit mantissa through 5 quintic steps
        // Quintic NS maps singular values into roughly [0.5, 1.5] (not exactly 1 by design).
        var sv = torch.linalg.svdvals(o.to(ScalarType.Float64)).data<double>().ToArray();
        Assert.All(sv, s => Assert.InRange(s, 0.3, 1.6));
        // Transposition symmetry: NS(Gᵀ) = NS(G)ᵀ exactly (same bf16 computation).
        Assert.True(Muon.NewtonSchulz(g.t().contiguous()).eq(o.t()).all().item<bool>());
    }

    [Fact]
    public void MuonUpdateUsesNesterovMomentumDecayAndShapeAdjustedLr()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(77);
        var init = torch.randn(4, 6);
        var p = init.clone().requires_grad_(true);
        const double lr = 0.02, mu = 0.95, wd = 0.1;
        var opt = new Muon(new[] { new ParamGroup("Muon", new[] { new NamedParameter("w", p) }, lr, wd) }, mu, nesterov: true, nsSteps: 5, MuonLrAdjustment.MatchRmsAdamW);
        var g1 = torch.randn(4, 6);
        var g2 = torch.randn(4, 6);
        double adjusted = lr * 0.2 * Math.Sqrt(6);

        p.grad = g1.clone();
        opt.Step();
        // buf1 = (1−μ)·g1; update = g1 + μ(buf1 − g1). The bf16 orthogonalization amplifies one-ulp
        // differences of its input, so the expected update is formed with torch's lerp kernel after
        // checking it against the formula.
        var buf1 = g1 * (1 - mu);
        var upd1 = Lerp(g1, buf1, mu);
        AssertClose(g1 + (buf1 - g1) * mu, upd1, 1e-6);
        var expected1 = init * (1 - lr * wd) - Muon.NewtonSchulz(upd1).to(ScalarType.Float32) * adjusted;
        AssertClose(expected1, p.detach(), 1e-6);
        AssertClose(buf1, opt.StateOf("w")!["momentum_buffer"], 1e-7);

        p.grad = g2.clone();
        opt.Step();
        var buf2 = buf1 + (g2 - buf1) * (1 - mu);
        var upd2 = Lerp(g2, opt.StateOf("w")!["momentum_buffer"], mu);
        AssertClose(g2 + (buf2 - g2) * mu, upd2, 1e-6);
        var expected2 = expected1 * (1 - lr * wd) - Muon.NewtonSchulz(upd2).to(ScalarType.Float32) * adjusted;
        AssertClose(buf2, opt.StateOf("w")!["momentum_buffer"], 1e-6);
        AssertClose(expected2, p.detach(), 1e-5);
    }

    static Tensor Lerp(Tensor start, Tensor end, double w)
    {
        using var weight = torch.tensor(w, ScalarType.Float32);
        return start.lerp(end, weight);
    }

    [Fact]
    public void MuonLrAdjustmentsFollowTorch()
    {
        Assert.Equal(2e-3, Muon.AdjustLr(1e-3, MuonLrAdjustment.Original, 8, 2), 15);
        Assert.Equal(1e-3, Muon.AdjustLr(1e-3, MuonLrAdjustment.Original, 2, 8), 15);
        Assert.Equal(1e-3 * 0.2 * Math.Sqrt(8), Muon.AdjustLr(1e-3, MuonLrAdjustment.MatchRmsAdamW, 8, 2), 15);
        Assert.Throws<ArgumentException>(() => new Muon(new[] { new ParamGroup("m", new[] { new NamedParameter("b", torch.zeros(3).requires_grad_(true)) }, 1e-3, 0) }));
    }

    [Fact]
    public void StateRoundTripsWhateverTheParameterOrder()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(5);
        var names = new[] { "layers.0.mlp.up_proj.weight", "layers.0.mlp.down_proj.weight", "norm.weight" };
        var shapes = new[] { new long[] { 6, 4 }, new long[] { 4, 6 }, new long[] { 4 } };
        var init = shapes.Select(s => torch.randn(s)).ToArray();
        var grads = Enumerable.Range(0, 3).Select(_ => shapes.Select(s => torch.randn(s)).ToArray()).ToArray();

        IReadOnlyList<Optimizer> Make(Tensor[] ps, bool reversed)
        {
            var named = names.Select((n, i) => new NamedParameter(n, ps[i])).ToList();
            if (reversed) named.Reverse();
            return OptimizerFactory.Build(named, new OptimizerOptions { Kind = OptimizerKind.Muon, Lr = 1e-3 });
        }
        void StepAll(IReadOnlyList<Optimizer> opts, Tensor[] ps, Tensor[] g)
        {
            for (int i = 0; i < ps.Length; i++) ps[i].grad = g[i].clone();
            foreach (var o in opts) o.Step();
            foreach (var o in opts) o.ZeroGrad();
        }

        var a = init.Select(t => t.clone().requires_grad_(true)).ToArray();
        var optA = Make(a, reversed: false);
        StepAll(optA, a, grads[0]);
        StepAll(optA, a, grads[1]);
        var states = optA.Select(o => o.StateDict()).ToList();
        Assert.Contains("layers.0.mlp.up_proj.weight.momentum_buffer", states[0].Tensors.Keys);
        Assert.Contains("norm.weight.exp_avg_sq", states[1].Tensors.Keys);
        // One shared tensor file for both optimizers, as a checkpoint stores it.
        var shared = states.SelectMany(s => s.Tensors).ToDictionary(kv => kv.Key, kv => kv.Value);

        var b = a.Select(t => t.detach().clone().requires_grad_(true)).ToArray();
        var optB = Make(b, reversed: true);
        for (int i = 0; i < optB.Count; i++)
        {
            var json = System.Text.Json.Nodes.JsonNode.Parse(states[i].Scalars.ToJsonString())!.AsObject();
            optB[i].LoadStateDict(new OptimizerState(shared, json));
        }
        StepAll(optA, a, grads[2]);
        StepAll(optB, b, grads[2]);
        for (int i = 0; i < 3; i++) Assert.True(a[i].eq(b[i]).all().item<bool>(), names[i] + " max diff " + (a[i] - b[i]).abs().max().ToDouble());

        // Wrong optimizer type and missing tensors are reported.
        var e1 = Assert.Throws<SpeculatorsException>(() => optB[0].LoadStateDict(states[1]));
        Assert.Contains("'AdamW' optimizer, expected 'Muon'", e1.Message);
        var partial = shared.Where(kv => !kv.Key.EndsWith("exp_avg_sq")).ToDictionary(kv => kv.Key, kv => kv.Value);
        var e2 = Assert.Throws<SpeculatorsException>(() => optB[1].LoadStateDict(new OptimizerState(partial, states[1].Scalars)));
        Assert.Contains("norm.weight.exp_avg_sq' is missing", e2.Message);
    }

    [Fact]
    public void MuonSplitFollowsSpeculators()
    {
        using var scope = NewDisposeScope();
        NamedParameter P(string n, params long[] s) => new(n, torch.zeros(s).requires_grad_(true));
        var ps = new[]
        {
            P("fc.weight", 8, 24), P("layers.0.self_attn.q_proj.weight", 8, 8), P("layers.0.input_layernorm.weight", 8),
            P("embed_tokens.weight", 10, 8), P("lm_head.weight", 10, 8), P("row.weight", 1, 8), P("mask_hidden", 1, 2, 8),
            P("layers.0.mlp.up_proj.bias", 16),
        };
        var frozen = new NamedParameter("verifier_lm_head.weight", torch.zeros(10, 8));
        var (muon, adamw) = OptimizerFactory.SplitForMuon(ps);
        Assert.Equal(new[] { "fc.weight", "layers.0.self_attn.q_proj.weight" }, muon.Select(p => p.Name));
        Assert.Equal(6, adamw.Count);

        var opts = OptimizerFactory.Build(ps.Append(frozen), new OptimizerOptions { Kind = OptimizerKind.Muon, Lr = 2e-4 });
        Assert.Equal(new[] { "Muon", "AdamW" }, opts.Select(o => o.Name));
        Assert.Equal(2e-3, opts[0].ParamGroups[0].Lr, 15);
        Assert.Equal(0.1, opts[0].ParamGroups[0].WeightDecay);
        Assert.Equal(MuonLrAdjustment.MatchRmsAdamW, ((Muon)opts[0]).Adjustment);
        Assert.Equal(0.95, ((Muon)opts[0]).Momentum);
        Assert.Equal(2e-4, opts[1].ParamGroups[0].Lr);
        Assert.DoesNotContain(opts.SelectMany(o => o.Parameters), p => p.Name == "verifier_lm_head.weight");
        Assert.Equal(new[] { "lr/Muon", "lr/AdamW" }, OptimizerFactory.LearningRates(opts).Keys);

        Assert.Equal(Precision.DefaultComputeDtype(TorchSharp.DeviceType.CPU), ((Muon)opts[0]).NsDtype);
        var forced = OptimizerFactory.Build(ps, new OptimizerOptions { Kind = OptimizerKind.Muon, MuonNsDtype = ScalarType.BFloat16 });
        Assert.Equal(ScalarType.BFloat16, ((Muon)forced[0]).NsDtype);
        Assert.Equal("bfloat16", forced[0].StateDict().Scalars["hyper_parameters"]!["ns_dtype"]!.GetValue<string>());

        var single = OptimizerFactory.Build(ps, new OptimizerOptions());
        var adam = Assert.IsType<AdamW>(Assert.Single(single));
        Assert.Equal((0.9, 0.999, 1e-8), (adam.Beta1, adam.Beta2, adam.Eps));
        Assert.Equal(0.01, adam.ParamGroups[0].WeightDecay);
        Assert.Throws<ArgumentException>(() => new AdamW(new[] { new NamedParameter("h", torch.zeros(2, ScalarType.BFloat16)) }, 1e-3));
    }

    [Fact]
    public void ClipGradNormScalesByTheGlobalNorm()
    {
        using var scope = NewDisposeScope();
        var a = torch.zeros(3).requires_grad_(true);
        var b = torch.zeros(2, 2).requires_grad_(true);
        var frozen = torch.zeros(2).requires_grad_(true); // no grad: ignored
        a.grad = torch.tensor(new float[] { 3, 0, 4 });
        b.grad = torch.tensor(new float[] { 1, 2, 2, 0 }).reshape(2, 2);
        double total = Math.Sqrt(9 + 16 + 1 + 4 + 4);
        double norm = GradientClipping.ClipGradNorm(new[] { a, b, frozen }, 1.0);
        Assert.Equal(total, norm, 5);
        double coef = 1.0 / (total + 1e-6);
        Assert.Equal(new[] { 3 * coef, 0, 4 * coef }, Values(a.grad!).Select(v => Math.Round(v, 6)).ToArray(), new RoundedComparer());
        // Under the limit nothing changes.
        a.grad = torch.tensor(new float[] { 0.1f, 0, 0 });
        b.grad = null;
        Assert.Equal(0.1, GradientClipping.ClipGradNorm(new[] { a, b }, 1.0), 6);
        Assert.Equal(0.1f, a.grad!.data<float>()[0]);

        // Sharded: each rank holds half the gradients; the norm is the global one on every rank.
        var norms = InProcessGroup.Run(2, pg =>
        {
            var t = torch.zeros(2).requires_grad_(true);
            t.grad = pg.Rank == 0 ? torch.tensor(new float[] { 3, 0 }) : torch.tensor(new float[] { 0, 4 });
            return GradientClipping.ClipGradNorm(new[] { t }, 10.0, pg);
        });
        Assert.All(norms, n => Assert.Equal(5.0, n, 5));
    }

    sealed class RoundedComparer : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) < 2e-6;
        public int GetHashCode(double obj) => 0;
    }

    static void AssertClose(Tensor expected, Tensor actual, double tol)
    {
        var e = Values(expected);
        var a = Values(actual);
        Assert.Equal(e.Length, a.Length);
        for (int i = 0; i < e.Length; i++)
            Assert.True(Math.Abs(e[i] - a[i]) <= tol * Math.Max(1, Math.Abs(e[i])), $"element {i}: expected {e[i]:R}, got {a[i]:R}");
    }
}
