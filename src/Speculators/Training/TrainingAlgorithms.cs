using System.Reflection;
using Speculators.Distributed;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>
/// Builds one training algorithm from the parsed run options. Implementations are discovered by
/// reflection (<see cref="TrainingAlgorithms"/>), so adding an algorithm (DFlash, …) is one class next
/// to it, never a branch in the trainer or the CLI. <see cref="Name"/> is the <c>--speculator-type</c> value.
/// </summary>
public interface ITrainingAlgorithmFactory
{
    /// <summary>The <c>--speculator-type</c> value (<c>eagle3</c>, <c>causal_lm</c>).</summary>
    string Name { get; }

    /// <summary>One line for <c>--help</c>.</summary>
    string Description { get; }

    /// <summary>
    /// Builds the model (fresh, or from <see cref="TrainOptions.FromPretrained"/>) and opens the data. Must reject
    /// inconsistent inputs with a <see cref="SpeculatorsException"/> naming the mismatch before any training.
    /// </summary>
    ITrainingAlgorithm Create(TrainingContext context);
}

/// <summary>What a factory gets: every resolved option plus where and how the trainer will run.</summary>
public sealed record TrainingContext
{
    /// <summary>Resolved options (CLI &gt; YAML &gt; defaults), including the per-algorithm records.</summary>
    public required TrainOptions Options { get; init; }

    /// <summary>Device for the model and batches (<c>--device</c>).</summary>
    public required Device Device { get; init; }

    /// <summary>The dtype the trainer's <see cref="Autocast"/> region computes in (<c>--hidden-states-dtype</c>, default per device).</summary>
    public required ScalarType ComputeDtype { get; init; }

    /// <summary>This process's group (rank 0 of 1 today).</summary>
    public required IProcessGroup Group { get; init; }
}

/// <summary>The registry of <see cref="ITrainingAlgorithmFactory"/> implementations in this assembly.</summary>
public static class TrainingAlgorithms
{
    static readonly Lazy<IReadOnlyList<ITrainingAlgorithmFactory>> All = new(Discover);

    /// <summary>Every available factory, by name.</summary>
    public static IReadOnlyList<ITrainingAlgorithmFactory> Available => All.Value;

    /// <summary>The factory for <paramref name="name"/>; unknown names throw, listing the available ones.</summary>
    public static ITrainingAlgorithmFactory Find(string name, string source = "--speculator-type")
    {
        var f = All.Value.FirstOrDefault(x => string.Equals(x.Name, name, StringComparison.OrdinalIgnoreCase));
        if (f != null) return f;
        string available = string.Join(", ", All.Value.Select(x => x.Name));
        throw new SpeculatorsException(
            $"{source}: no training algorithm named '{name}' in this build (available: {available}).");
    }

    static IReadOnlyList<ITrainingAlgorithmFactory> Discover()
    {
        Type[] types;
        try
        {
            types = typeof(TrainingAlgorithms).Assembly.GetTypes();
        }
        catch (ReflectionTypeLoadException e)
        {
            types = e.Types.OfType<Type>().ToArray();
        }
        return types
            .Where(t => typeof(ITrainingAlgorithmFactory).IsAssignableFrom(t) && t is { IsAbstract: false, IsInterface: false }
                        && t.GetConstructor(Type.EmptyTypes) != null)
            .Select(t => (ITrainingAlgorithmFactory)Activator.CreateInstance(t)!)
            .OrderBy(f => f.Name, StringComparer.Ordinal)
            .ToList();
    }
}
