using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>A trainable parameter and its fully qualified name (the checkpoint key, e.g. <c>layers.0.mlp.up_proj.weight</c>).</summary>
public readonly record struct NamedParameter(string Name, Tensor Tensor);

/// <summary>Parameters sharing a learning rate and weight decay. <see cref="Lr"/> is what schedules change.</summary>
public sealed class ParamGroup
{
    public ParamGroup(string name, IEnumerable<NamedParameter> parameters, double lr, double weightDecay)
    {
        if (lr < 0 || !double.IsFinite(lr)) throw new ArgumentOutOfRangeException(nameof(lr), $"learning rate must be finite and >= 0, got {lr}.");
        if (weightDecay < 0 || !double.IsFinite(weightDecay)) throw new ArgumentOutOfRangeException(nameof(weightDecay), $"weight decay must be finite and >= 0, got {weightDecay}.");
        Name = name;
        Parameters = parameters.ToList();
        Lr = lr;
        InitialLr = lr;
        WeightDecay = weightDecay;
    }

    public string Name { get; }
    public IReadOnlyList<NamedParameter> Parameters { get; }

    /// <summary>Current learning rate (set by the schedule every step).</summary>
    public double Lr { get; set; }

    /// <summary>Learning rate the group was built with: the schedule's base value.</summary>
    public double InitialLr { get; set; }

    public double WeightDecay { get; set; }
}

/// <summary>
/// An optimizer's state in checkpointable form: fp32 tensors keyed <c>{parameter}.{state}</c>
/// (e.g. <c>layers.0.mlp.up_proj.weight.exp_avg</c>) and JSON-able scalars (step counts,
/// hyper-parameters, group learning rates). Keys are parameter names, never positions, so a
/// checkpoint loads whatever order (or, later, shard) the parameters come in.
/// </summary>
public sealed record OptimizerState(IReadOnlyDictionary<string, Tensor> Tensors, JsonObject Scalars);

/// <summary>
/// Base of our optimizers: explicit state (fp32 tensors per parameter name), fp32 master
/// parameters, param groups with their own lr and weight decay. Parameters without a gradient at a
/// step are skipped and their state is not created or advanced (as torch does).
/// </summary>
public abstract class Optimizer : IDisposable
{
    readonly Dictionary<string, Dictionary<string, Tensor>> _state = new(StringComparer.Ordinal);
    readonly Dictionary<string, long> _paramSteps = new(StringComparer.Ordinal);
    readonly Dictionary<string, NamedParameter> _byName = new(StringComparer.Ordinal);

    protected Optimizer(string name, IReadOnlyList<ParamGroup> groups)
    {
        Name = name;
        ParamGroups = groups;
        foreach (var g in groups)
            foreach (var p in g.Parameters)
            {
                if (p.Tensor.dtype != ScalarType.Float32)
                    throw new ArgumentException(
                        $"{name}: parameter '{p.Name}' is {p.Tensor.dtype}; optimizers update fp32 master weights (cast compute copies, not the parameters).");
                if (!_byName.TryAdd(p.Name, p))
                    throw new ArgumentException($"{name}: parameter '{p.Name}' is listed twice.");
            }
    }

    /// <summary>Short name used in logs and metric keys (<c>lr/AdamW</c>, <c>lr/Muon</c>).</summary>
    public string Name { get; }

    public IReadOnlyList<ParamGroup> ParamGroups { get; }

    /// <summary>Calls of <see cref="Step"/> so far.</summary>
    public long StepCount { get; private set; }

    /// <summary>Every parameter of every group.</summary>
    public IEnumerable<NamedParameter> Parameters => ParamGroups.SelectMany(g => g.Parameters);

    /// <summary>State tensor names this optimizer keeps per parameter (<c>exp_avg</c>, <c>momentum_buffer</c>, …).</summary>
    protected abstract IReadOnlyList<string> StateNames { get; }

    /// <summary>Hyper-parameters written into the scalar state (checked on load for information only).</summary>
    protected abstract JsonObject HyperParameters();

    /// <summary>Updates one parameter in place. Runs under no_grad inside a dispose scope.</summary>
    /// <param name="group">The parameter's group (lr, weight decay).</param>
    /// <param name="parameter">The fp32 parameter.</param>
    /// <param name="grad">Its gradient.</param>
    /// <param name="state">Its state tensors by name (created zero on first use).</param>
    /// <param name="step">This parameter's step number, starting at 1.</param>
    protected abstract void Update(ParamGroup group, Tensor parameter, Tensor grad, IReadOnlyDictionary<string, Tensor> state, long step);

    /// <summary>One optimization step over every parameter that has a gradient.</summary>
    public void Step()
    {
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        foreach (var group in ParamGroups)
            foreach (var p in group.Parameters)
            {
                var grad = p.Tensor.grad;
                if (grad is null) continue;
                if (grad.is_sparse) throw new NotSupportedException($"{Name}: sparse gradient for '{p.Name}'.");
                if (!_state.TryGetValue(p.Name, out var state))
                {
                    state = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                    foreach (var s in StateNames)
                        state[s] = torch.zeros_like(p.Tensor, dtype: ScalarType.Float32).DetachFromDisposeScope();
                    _state[p.Name] = state;
                }
                long step = _paramSteps.TryGetValue(p.Name, out long n) ? n + 1 : 1;
                _paramSteps[p.Name] = step;
                Update(group, p.Tensor, grad, state, step);
            }
        StepCount++;
    }

    /// <summary>Drops every gradient (torch's <c>zero_grad(set_to_none=True)</c>).</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters)
            if (!p.Tensor.IsInvalid) p.Tensor.grad = null;
    }

    /// <summary>State tensors (fresh fp32 copies on the parameters' device, owned by the caller) and scalars.</summary>
    public OptimizerState StateDict()
    {
        var tensors = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (param, state) in _state)
            foreach (var (s, t) in state)
                tensors[$"{param}.{s}"] = t.detach().clone().DetachFromDisposeScope();
        var steps = new JsonObject();
        foreach (var (param, n) in _paramSteps.OrderBy(kv => kv.Key, StringComparer.Ordinal)) steps[param] = n;
        var groups = new JsonArray();
        foreach (var g in ParamGroups)
            groups.Add(new JsonObject
            {
                ["name"] = g.Name,
                ["lr"] = g.Lr,
                ["initial_lr"] = g.InitialLr,
                ["weight_decay"] = g.WeightDecay,
                ["params"] = new JsonArray(g.Parameters.Select(p => (JsonNode)JsonValue.Create(p.Name)!).ToArray()),
            });
        var scalars = new JsonObject
        {
            ["type"] = Name,
            ["step_count"] = StepCount,
            ["param_steps"] = steps,
            ["hyper_parameters"] = HyperParameters(),
            ["param_groups"] = groups,
        };
        return new OptimizerState(tensors, scalars);
    }

    /// <summary>
    /// Restores the state of this optimizer's parameters from <paramref name="state"/>. Tensors for
    /// parameters of other optimizers (a shared checkpoint file) are ignored; every parameter the
    /// scalars list must be one of ours and have all its tensors with the parameter's shape.
    /// </summary>
    public void LoadStateDict(OptimizerState state, string source = "optimizer state")
    {
        var scalars = state.Scalars;
        string? type = scalars["type"]?.GetValue<string>();
        if (type != Name)
            throw new SpeculatorsException($"{source}: holds state of a '{type}' optimizer, expected '{Name}' (was --optimizer changed since the checkpoint?).");
        var steps = scalars["param_steps"] as JsonObject
            ?? throw new SpeculatorsException($"{source}: missing 'param_steps'.");

        var newState = new Dictionary<string, Dictionary<string, Tensor>>(StringComparer.Ordinal);
        var newSteps = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            foreach (var (param, node) in steps)
            {
                if (!_byName.TryGetValue(param, out var p))
                    throw new SpeculatorsException(
                        $"{source}: has state for parameter '{param}', which this {Name} optimizer does not train (model or --optimizer changed?).");
                newSteps[param] = node!.GetValue<long>();
                var perParam = new Dictionary<string, Tensor>(StringComparer.Ordinal);
                newState[param] = perParam;
                foreach (var s in StateNames)
                {
                    string key = $"{param}.{s}";
                    if (!state.Tensors.TryGetValue(key, out var t))
                        throw new SpeculatorsException($"{source}: tensor '{key}' is missing.");
                    if (!t.shape.SequenceEqual(p.Tensor.shape))
                        throw new SpeculatorsException(
                            $"{source}: tensor '{key}' has shape [{string.Join(", ", t.shape)}], parameter has [{string.Join(", ", p.Tensor.shape)}].");
                    perParam[s] = t.detach().to(ScalarType.Float32, p.Tensor.device, copy: true).DetachFromDisposeScope();
                }
            }
        }
        catch
        {
            foreach (var d in newState.Values) foreach (var t in d.Values) t.Dispose();
            throw;
        }

        DisposeState();
        foreach (var (k, v) in newState) _state[k] = v;
        foreach (var (k, v) in newSteps) _paramSteps[k] = v;
        StepCount = scalars["step_count"]?.GetValue<long>() ?? 0;
        if (scalars["param_groups"] is JsonArray groups)
            foreach (var gNode in groups.OfType<JsonObject>())
            {
                var g = ParamGroups.FirstOrDefault(x => x.Name == gNode["name"]?.GetValue<string>());
                if (g == null) continue;
                if (gNode["lr"] is JsonNode lr) g.Lr = lr.GetValue<double>();
                if (gNode["initial_lr"] is JsonNode ilr) g.InitialLr = ilr.GetValue<double>();
                if (gNode["weight_decay"] is JsonNode wd) g.WeightDecay = wd.GetValue<double>();
            }
    }

    /// <summary>State tensors of one parameter (null before its first step); for inspection and tests.</summary>
    public IReadOnlyDictionary<string, Tensor>? StateOf(string parameterName) =>
        _state.TryGetValue(parameterName, out var s) ? s : null;

    void DisposeState()
    {
        foreach (var d in _state.Values) foreach (var t in d.Values) t.Dispose();
        _state.Clear();
        _paramSteps.Clear();
    }

    public void Dispose()
    {
        DisposeState();
        GC.SuppressFinalize(this);
    }
}
