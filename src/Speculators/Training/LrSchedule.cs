using System.Text.Json.Nodes;
using Speculators.Util;

namespace Speculators.Training;

/// <summary><c>--scheduler-type</c> choices.</summary>
public enum ScheduleKind
{
    /// <summary>Linear warmup, then linear decay to 0 at the total step (<c>get_linear_schedule_with_warmup</c>). Default.</summary>
    Linear,
    /// <summary>Linear warmup, then half-cosine decay (<c>get_cosine_schedule_with_warmup</c>, 0.5 cycles by default).</summary>
    Cosine,
    /// <summary>Linear warmup, then constant (<c>get_constant_schedule_with_warmup</c>).</summary>
    Constant,
    /// <summary>Constant learning rate, no warmup (the Python tool's <c>none</c>).</summary>
    None,
}

/// <summary>
/// A learning-rate schedule attached to one optimizer (each optimizer warms and decays its own base
/// learning rate). Semantics of <c>torch.optim.lr_scheduler.LambdaLR</c> with the Hugging Face lambdas:
/// construction sets lr = base·f(0); each <see cref="Step"/> (called after the optimizer step)
/// advances s and sets lr = base·f(s). So optimizer step s (0-based) runs at base·f(s).
/// <code>
/// warmup  : f(s) = s / max(1, W)                                      for s &lt; W
/// linear  : f(s) = max(0, (T − s) / max(1, T − W))
/// cosine  : f(s) = max(0, ½(1 + cos(π · 2·cycles · (s − W)/max(1, T − W))))
/// constant: f(s) = 1                       none: f(s) = 1 (no warmup)
/// </code>
/// </summary>
public sealed class LrSchedule
{
    readonly Optimizer _optimizer;
    readonly double[] _baseLrs;

    public ScheduleKind Kind { get; }
    public long TotalSteps { get; }
    public long WarmupSteps { get; }
    public double NumCycles { get; }

    /// <summary>Scheduler steps taken (torch's <c>last_epoch</c>).</summary>
    public long LastStep { get; private set; }

    public LrSchedule(Optimizer optimizer, ScheduleKind kind, long totalSteps, long warmupSteps, double numCycles = 0.5)
    {
        if (totalSteps < 0) throw new SpeculatorsException($"--scheduler-total-steps: expected >= 0, got {totalSteps}.");
        if (warmupSteps < 0) throw new SpeculatorsException($"--scheduler-warmup-steps: expected >= 0, got {warmupSteps}.");
        _optimizer = optimizer;
        Kind = kind;
        TotalSteps = totalSteps;
        WarmupSteps = kind == ScheduleKind.None ? 0 : warmupSteps;
        NumCycles = numCycles;
        _baseLrs = optimizer.ParamGroups.Select(g => g.InitialLr).ToArray();
        LastStep = 0;
        Apply();
    }

    public Optimizer Optimizer => _optimizer;

    /// <summary>The multiplier f(s).</summary>
    public double Factor(long step)
    {
        if (Kind == ScheduleKind.None) return 1.0;
        if (step < WarmupSteps) return (double)step / Math.Max(1L, WarmupSteps);
        switch (Kind)
        {
            case ScheduleKind.Constant:
                return 1.0;
            case ScheduleKind.Linear:
                return Math.Max(0.0, (double)(TotalSteps - step) / Math.Max(1L, TotalSteps - WarmupSteps));
            case ScheduleKind.Cosine:
            {
                double progress = (double)(step - WarmupSteps) / Math.Max(1L, TotalSteps - WarmupSteps);
                return Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * NumCycles * 2.0 * progress)));
            }
            default:
                throw new ArgumentOutOfRangeException();
        }
    }

    /// <summary>Advances one step and sets every group's lr.</summary>
    public void Step()
    {
        LastStep++;
        Apply();
    }

    void Apply()
    {
        double f = Factor(LastStep);
        for (int i = 0; i < _baseLrs.Length; i++) _optimizer.ParamGroups[i].Lr = _baseLrs[i] * f;
    }

    /// <summary>
    /// Resolves the warmup length the Python tool's way: explicit steps win (a ratio given too is
    /// ignored with a warning); else <c>int(total · ratio)</c> with the ratio in [0, 1]; else total / 100.
    /// </summary>
    public static long ResolveWarmupSteps(long totalSteps, long? warmupSteps, double? warmupRatio)
    {
        if (warmupSteps is long w)
        {
            if (w < 0) throw new SpeculatorsException($"--scheduler-warmup-steps: expected >= 0, got {w}.");
            if (warmupRatio is not null)
                Log.Warn($"--scheduler-warmup-steps {w} is set, so --scheduler-warmup-ratio {warmupRatio} is ignored.");
            return w;
        }
        if (warmupRatio is double r)
        {
            if (!(r >= 0 && r <= 1)) throw new SpeculatorsException($"--scheduler-warmup-ratio: expected a value in [0, 1], got {r}.");
            return (long)(totalSteps * r);
        }
        return totalSteps / 100;
    }

    /// <summary>Parses <c>--scheduler-type</c> (<c>linear</c>, <c>cosine</c>, <c>constant</c>, <c>none</c>).</summary>
    public static ScheduleKind ParseKind(string text, string source = "--scheduler-type") => text.Trim().ToLowerInvariant() switch
    {
        "linear" => ScheduleKind.Linear,
        "cosine" => ScheduleKind.Cosine,
        "constant" => ScheduleKind.Constant,
        "none" => ScheduleKind.None,
        _ => throw new SpeculatorsException($"{source}: expected linear, cosine, constant or none, got '{text}'."),
    };

    static string KindName(ScheduleKind k) => k.ToString().ToLowerInvariant();

    /// <summary>JSON state (<c>scheduler_state.json</c>): kind, totals, warmup, cycles, base lrs and the step.</summary>
    public JsonObject StateDict() => new()
    {
        ["optimizer"] = _optimizer.Name,
        ["kind"] = KindName(Kind),
        ["total_steps"] = TotalSteps,
        ["warmup_steps"] = WarmupSteps,
        ["num_cycles"] = NumCycles,
        ["base_lrs"] = new JsonArray(_baseLrs.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
        ["last_step"] = LastStep,
    };

    /// <summary>
    /// Restores the step and base learning rates. The schedule's shape (kind, totals, warmup) comes
    /// from the current run's flags; a difference from the checkpoint is reported as a warning, as the
    /// learning-rate curve then changes at the resume point.
    /// </summary>
    public void LoadStateDict(JsonObject state, string source = "scheduler state")
    {
        string? opt = state["optimizer"]?.GetValue<string>();
        if (opt != null && opt != _optimizer.Name)
            throw new SpeculatorsException($"{source}: is for optimizer '{opt}', expected '{_optimizer.Name}'.");
        var lastNode = state["last_step"] ?? throw new SpeculatorsException($"{source}: missing 'last_step'.");
        if (state["base_lrs"] is JsonArray bases)
        {
            if (bases.Count != _baseLrs.Length)
                throw new SpeculatorsException($"{source}: has {bases.Count} base learning rates, the optimizer has {_baseLrs.Length} groups.");
            for (int i = 0; i < bases.Count; i++) _baseLrs[i] = bases[i]!.GetValue<double>();
        }
        string kind = state["kind"]?.GetValue<string>() ?? KindName(Kind);
        long total = state["total_steps"]?.GetValue<long>() ?? TotalSteps;
        long warm = state["warmup_steps"]?.GetValue<long>() ?? WarmupSteps;
        if (kind != KindName(Kind) || total != TotalSteps || warm != WarmupSteps)
            Log.Warn($"{source}: the checkpoint's schedule ({kind}, {total} steps, {warm} warmup) differs from this run's " +
                     $"({KindName(Kind)}, {TotalSteps} steps, {WarmupSteps} warmup); continuing with this run's schedule.");
        LastStep = lastNode.GetValue<long>();
        Apply();
    }
}
