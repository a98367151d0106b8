using Speculators.Distributed;
using Speculators.Formats;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>
/// A tiny algorithm for trainer tests: a linear map W·x + b fitted to a fixed teacher on per-token features that are a
/// pure function of (row, position). Hooks inject a NaN loss at a chosen step and scale validation losses per epoch.
/// </summary>
public sealed class TrainerTestAlgorithm : ITrainingAlgorithm
{
    public const int In = 6, Out = 3;

    sealed class Net : nn.Module
    {
#pragma warning disable IDE1006
        public TorchSharp.Modules.Parameter weight;
        public TorchSharp.Modules.Parameter bias;
#pragma warning restore IDE1006

        public Net(long seed) : base("Net")
        {
            using var g = new Generator((ulong)seed);
            weight = new TorchSharp.Modules.Parameter(torch.randn(new long[] { Out, In }, generator: g) * 0.1);
            bias = new TorchSharp.Modules.Parameter(torch.zeros(Out));
            RegisterComponents();
        }
    }

    sealed class Batch(Tensor x, Tensor y, long tokens, int samples, int epoch, int step, bool training) : ITrainingBatch
    {
        public Tensor X { get; } = x;
        public Tensor Y { get; } = y;
        public long Tokens { get; } = tokens;
        public int Samples { get; } = samples;
        public int SkippedRows => 0;
        public int Epoch { get; } = epoch;
        public int Step { get; } = step;
        public bool Training { get; } = training;

        public void Dispose()
        {
            X.Dispose();
            Y.Dispose();
        }
    }

    readonly Net _net;
    readonly Tensor _teacher;
    readonly List<NamedParameter> _params;

    public TrainerTestAlgorithm(IReadOnlyList<int> rowLengths, long seed = 1)
    {
        RowLengths = rowLengths;
        _net = new Net(seed);
        using var g = new Generator(777);
        _teacher = torch.randn(new long[] { Out, In }, generator: g).DetachFromDisposeScope();
        _params = OptimizerFactory.NamedParameters(_net);
    }

    /// <summary>(epoch, local step) whose training loss is made NaN.</summary>
    public (int Epoch, int Step)? NanAt { get; set; }

    /// <summary>Validation loss multiplier per epoch (to steer checkpoint_best).</summary>
    public Func<int, double>? ValidationScale { get; set; }

    public int SaveCount { get; private set; }

    public string Name => "test";
    public nn.Module Model => _net;
    public IReadOnlyList<NamedParameter> TrainableParameters => _params;
    public IReadOnlyList<int> RowLengths { get; }
    public double TrainingFlopsPerToken => 6.0 * In * Out;
    public IReadOnlyDictionary<string, object?> Hyperparameters => new Dictionary<string, object?> { ["in"] = In, ["out"] = Out };

    public Tensor Weight => _net.weight;

    public ValueTask<ITrainingBatch> LoadBatchAsync(IReadOnlyList<int> rows, BatchContext context, CancellationToken cancellationToken)
    {
        int total = rows.Sum(r => Math.Min(RowLengths[r], context.TotalSequenceLength));
        var xs = new List<Tensor>();
        foreach (int r in rows)
        {
            int n = Math.Min(RowLengths[r], context.TotalSequenceLength);
            using var g = new Generator((ulong)(1000 + r));
            xs.Add(torch.randn(new long[] { n, In }, generator: g));
        }
        var x = xs.Count > 0 ? torch.cat(xs, 0) : torch.zeros(0, In);
        foreach (var t in xs) t.Dispose();
        var y = torch.nn.functional.linear(x, _teacher);
        return ValueTask.FromResult<ITrainingBatch>(new Batch(x.DetachFromDisposeScope(), y.DetachFromDisposeScope(), total, rows.Count, context.Epoch, context.Step, context.Training));
    }

    public StepOutput Forward(ITrainingBatch batch, bool training)
    {
        var b = (Batch)batch;
        var pred = Autocast.Float32(Autocast.Linear(b.X, _net.weight, _net.bias));
        var sq = pred.sub(b.Y).pow(2).sum();
        long n = Math.Max(1, b.X.shape[0]);
        var loss = sq.div(n);
        if (training && NanAt is { } at && at.Epoch == b.Epoch && at.Step == b.Step) loss = loss.mul(double.NaN);
        if (!training && ValidationScale != null) sq = sq.mul(ValidationScale(b.Epoch));
        var metrics = new Dictionary<string, Tensor>
        {
            ["loss_sum"] = sq.detach().clone(),
            ["loss_total"] = torch.tensor((double)b.X.shape[0]),
        };
        return new StepOutput(loss, metrics);
    }

    public void AddDerivedValidationMetrics(IDictionary<string, double> normalizedValidationMetrics) =>
        normalizedValidationMetrics["loss_doubled"] = 2 * normalizedValidationMetrics["loss"];

    public void SaveModel(string directory)
    {
        SaveCount++;
        using var scope = torch.NewDisposeScope();
        File.WriteAllText(Path.Combine(directory, "config.json"), "{\"model_type\": \"test\"}\n");
        SafeTensorsWriter.Save(Path.Combine(directory, "model.safetensors"),
            _params.Select(p => KeyValuePair.Create(p.Name, p.Tensor.detach())));
    }

    public void LoadModel(string directory)
    {
        using var f = SafeTensorsFile.Open(Path.Combine(directory, "model.safetensors"));
        foreach (var p in _params) f.ReadInto(p.Name, p.Tensor);
    }

    public void Dispose()
    {
        _net.Dispose();
        _teacher.Dispose();
    }

    /// <summary>A context for tests: CPU, fp32 compute, one process.</summary>
    public static TrainingContext Context(TrainOptions options, IProcessGroup? group = null) => new()
    {
        Options = options,
        Device = torch.CPU,
        ComputeDtype = ScalarType.Float32,
        Group = group ?? SingleProcessGroup.Instance,
    };

    /// <summary>Row lengths 3..17 for <paramref name="rows"/> rows.</summary>
    public static int[] Lengths(int rows) => Enumerable.Range(0, rows).Select(i => 3 + (i * 7) % 15).ToArray();

    /// <summary>Equal bytes of every trainable tensor.</summary>
    public static bool SameWeights(IReadOnlyList<NamedParameter> a, IReadOnlyList<NamedParameter> b) =>
        a.Count == b.Count && a.Zip(b).All(x => x.First.Name == x.Second.Name && Same(x.First.Tensor, x.Second.Tensor));

    /// <summary>Same shape and bitwise-equal values.</summary>
    public static bool Same(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.dtype == b.dtype && a.eq(b).all().item<bool>();
}
