using Speculators.Training;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>Schedules against the Hugging Face formulas evaluated by hand, and LambdaLR stepping semantics.</summary>
public class LrScheduleTests
{
    static AdamW Opt(double lr) =>
        new(new[] { new NamedParameter("w", zeros(2).requires_grad_(true)) }, lr);

    [Fact]
    public void LinearWarmupThenDecayToZero()
    {
        using var opt = Opt(1.0);
        var s = new LrSchedule(opt, ScheduleKind.Linear, totalSteps: 10, warmupSteps: 2);
        double[] expected = { 0, 0.5, 1, 7 / 8.0, 6 / 8.0, 5 / 8.0, 4 / 8.0, 3 / 8.0, 2 / 8.0, 1 / 8.0, 0, 0 };
        for (int step = 0; step < expected.Length; step++)
        {
            Assert.Equal(expected[step], opt.ParamGroups[0].Lr, 12);   // lr used by optimizer step `step`
            s.Step();
        }
    }

    [Fact]
    public void CosineFollowsHalfCycleAfterWarmup()
    {
        using var opt = Opt(2e-4);
        var s = new LrSchedule(opt, ScheduleKind.Cosine, totalSteps: 12, warmupSteps: 3, numCycles: 0.5);
        for (int step = 0; step <= 14; step++)
        {
            double f = step < 3 ? step / 3.0 : Math.Max(0, 0.5 * (1 + Math.Cos(Math.PI * 0.5 * 2 * (step - 3) / 9.0)));
            Assert.Equal(2e-4 * f, opt.ParamGroups[0].Lr, 15);
            s.Step();
        }
        Assert.Equal(0.5, new LrSchedule(Opt(1), ScheduleKind.Cosine, 10, 0).Factor(5), 12);
    }

    [Fact]
    public void ConstantAndNone()
    {
        using var opt = Opt(1.0);
        var c = new LrSchedule(opt, ScheduleKind.Constant, 100, 4);
        Assert.Equal(new[] { 0, 0.25, 0.5, 0.75, 1, 1 }, Enumerable.Range(0, 6).Select(i => c.Factor(i)));
        var n = new LrSchedule(opt, ScheduleKind.None, 100, 4);
        Assert.Equal(0, n.WarmupSteps);
        Assert.Equal(1.0, opt.ParamGroups[0].Lr);
    }

    [Fact]
    public void WarmupResolution()
    {
        Assert.Equal(7, LrSchedule.ResolveWarmupSteps(1000, 7, 0.5));      // steps win over ratio
        Assert.Equal(33, LrSchedule.ResolveWarmupSteps(1000, null, 0.0333)); // int(total·ratio)
        Assert.Equal(10, LrSchedule.ResolveWarmupSteps(1050, null, null));  // total // 100
        Assert.Equal(0, LrSchedule.ResolveWarmupSteps(99, null, null));
        Assert.Contains("[0, 1]", Assert.Throws<SpeculatorsException>(() => LrSchedule.ResolveWarmupSteps(10, null, 1.5)).Message);
        Assert.Equal(ScheduleKind.Cosine, LrSchedule.ParseKind("cosine"));
        Assert.Throws<SpeculatorsException>(() => LrSchedule.ParseKind("step"));
    }

    [Fact]
    public void StateRoundTripRestoresTheStep()
    {
        using var a = Opt(1e-3);
        var s = new LrSchedule(a, ScheduleKind.Linear, 50, 5);
        for (int i = 0; i < 17; i++) s.Step();
        var json = System.Text.Json.Nodes.JsonNode.Parse(s.StateDict().ToJsonString())!.AsObject();

        using var b = Opt(1e-3);
        var t = new LrSchedule(b, ScheduleKind.Linear, 50, 5);
        t.LoadStateDict(json);
        Assert.Equal(17, t.LastStep);
        Assert.Equal(a.ParamGroups[0].Lr, b.ParamGroups[0].Lr);
        s.Step();
        t.Step();
        Assert.Equal(a.ParamGroups[0].Lr, b.ParamGroups[0].Lr);
    }

    [Fact]
    public void EachOptimizerScalesItsOwnBaseLr()
    {
        var ps = new[]
        {
            new NamedParameter("fc.weight", zeros(4, 4).requires_grad_(true)),
            new NamedParameter("norm.weight", zeros(4).requires_grad_(true)),
        };
        var opts = OptimizerFactory.Build(ps, new OptimizerOptions { Kind = OptimizerKind.Muon, Lr = 1e-4 });
        var schedules = opts.Select(o => new LrSchedule(o, ScheduleKind.Linear, 10, 2)).ToList();
        foreach (var s in schedules) s.Step();
        Assert.Equal(1e-3 * 0.5, opts[0].ParamGroups[0].Lr, 15);
        Assert.Equal(1e-4 * 0.5, opts[1].ParamGroups[0].Lr, 15);
    }
}
