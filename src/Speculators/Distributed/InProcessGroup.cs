using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Distributed;

/// <summary>
/// Several ranks as threads of one process, sharing memory. It exists so multi-rank code paths
/// (metric reduction, sampler slots, data-parallel gradient averaging, future sharding) run and
/// are tested on one machine without MPI. Reductions run in rank order, so results are
/// deterministic and identical on every rank.
/// <code>
/// var losses = InProcessGroup.Run(4, pg => TrainOneStep(pg));   // one thread per rank
/// </code>
/// A rank that throws cancels the others (they see <see cref="OperationCanceledException"/>);
/// <see cref="Run{T}"/> rethrows the first real failure.
/// </summary>
public sealed class InProcessGroup : IProcessGroup
{
    sealed class World
    {
        public readonly int Size;
        public readonly Barrier Barrier;
        public readonly CancellationTokenSource Cancel = new();
        public readonly object?[] Slots;
        public readonly string[] Descriptors;
        public readonly TimeSpan Timeout;

        public World(int size, TimeSpan timeout)
        {
            Size = size;
            Barrier = new Barrier(size);
            Slots = new object?[size];
            Descriptors = new string[size];
            Timeout = timeout;
        }

        public void Wait(string operation)
        {
            if (!Barrier.SignalAndWait(Timeout, Cancel.Token))
                throw new TimeoutException($"InProcessGroup.{operation}: not every rank reached the collective within {Timeout.TotalSeconds:F0} s (a rank skipped or reordered a collective).");
        }
    }

    readonly World _world;

    InProcessGroup(World world, int rank)
    {
        _world = world;
        Rank = rank;
    }

    public int Rank { get; }
    public int WorldSize => _world.Size;
    public int LocalRank => Rank;
    public int LocalWorldSize => _world.Size;
    public string Backend => "inprocess";

    public bool SupportsDevice(DeviceType device) => true;

    /// <summary>Runs <paramref name="body"/> once per rank, each on its own thread, and returns the per-rank results.</summary>
    public static T[] Run<T>(int worldSize, Func<IProcessGroup, T> body, TimeSpan? timeout = null)
    {
        if (worldSize < 1) throw new ArgumentOutOfRangeException(nameof(worldSize), $"world size must be >= 1, got {worldSize}.");
        var world = new World(worldSize, timeout ?? TimeSpan.FromMinutes(5));
        var results = new T[worldSize];
        var errors = new Exception?[worldSize];
        var threads = new Thread[worldSize];
        for (int r = 0; r < worldSize; r++)
        {
            int rank = r;
            threads[r] = new Thread(() =>
            {
                try
                {
                    using var pg = new InProcessGroup(world, rank);
                    results[rank] = body(pg);
                }
                catch (Exception e)
                {
                    errors[rank] = e;
                    world.Cancel.Cancel();
                }
            }, maxStackSize: 16 << 20) { IsBackground = true, Name = $"inprocess-rank-{rank}" };
            threads[r].Start();
        }
        foreach (var t in threads) t.Join();
        var first = errors.FirstOrDefault(e => e != null && e is not OperationCanceledException) ?? errors.FirstOrDefault(e => e != null);
        if (first != null)
            throw new AggregateException($"InProcessGroup: rank {Array.IndexOf(errors, first)} failed: {first.Message}", first);
        return results;
    }

    /// <summary>Runs <paramref name="body"/> once per rank, each on its own thread.</summary>
    public static void Run(int worldSize, Action<IProcessGroup> body, TimeSpan? timeout = null) =>
        Run(worldSize, pg => { body(pg); return 0; }, timeout);

    static string Describe(string op, Tensor t, string extra = "") =>
        $"{op}({t.dtype}, [{string.Join(",", t.shape)}]{extra})";

    /// <summary>Deposits this rank's item, waits for all, and checks every rank called the same collective with the same shape.</summary>
    void Deposit(string operation, object? item, string descriptor, bool checkDescriptors = true)
    {
        _world.Slots[Rank] = item;
        _world.Descriptors[Rank] = descriptor;
        _world.Wait(operation);
        if (!checkDescriptors) return;
        for (int r = 0; r < WorldSize; r++)
            if (_world.Descriptors[r] != _world.Descriptors[0])
                throw new InvalidOperationException(
                    $"InProcessGroup.{operation}: ranks disagree: rank 0 called {_world.Descriptors[0]}, rank {r} called {_world.Descriptors[r]}.");
    }

    Tensor Slot(int rank) => (Tensor)_world.Slots[rank]!;

    Tensor Reduce(IReadOnlyList<Tensor> parts, ReduceOp op, Device device)
    {
        var acc = parts[0].to(device).clone();
        for (int r = 1; r < parts.Count; r++)
        {
            using var part = parts[r].to(device);
            switch (op)
            {
                case ReduceOp.Sum:
                case ReduceOp.Avg:
                    acc.add_(part);
                    break;
                case ReduceOp.Max:
                    using (var m = acc.maximum(part)) acc.copy_(m);
                    break;
                case ReduceOp.Min:
                    using (var m = acc.minimum(part)) acc.copy_(m);
                    break;
            }
        }
        if (op == ReduceOp.Avg) acc.div_(parts.Count);
        return acc;
    }

    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(AllReduce));
        ProcessGroupChecks.Op(tensor, op, nameof(AllReduce));
        Deposit(nameof(AllReduce), tensor, Describe(nameof(AllReduce), tensor, "," + op));
        Tensor result;
        using (var scope = NewDisposeScope())
        {
            var parts = Enumerable.Range(0, WorldSize).Select(Slot).ToList();
            result = Reduce(parts, op, tensor.device).MoveToOuterDisposeScope();
        }
        _world.Wait(nameof(AllReduce)); // everyone has read every slot before anyone overwrites its tensor
        using (result) tensor.copy_(result);
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(Broadcast));
        ProcessGroupChecks.Root(this, root, nameof(Broadcast));
        Deposit(nameof(Broadcast), tensor, Describe(nameof(Broadcast), tensor, ",root " + root));
        if (Rank != root) tensor.copy_(Slot(root));
        _world.Wait(nameof(Broadcast));
    }

    public Tensor AllGather(Tensor tensor)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(AllGather));
        if (tensor.dim() == 0) throw new ArgumentException("AllGather: 0-d tensors have no dimension 0 to concatenate; reshape to [1].", nameof(tensor));
        Deposit(nameof(AllGather), tensor, Describe(nameof(AllGather), tensor));
        Tensor result;
        using (var scope = NewDisposeScope())
        {
            var parts = Enumerable.Range(0, WorldSize).Select(r => Slot(r).to(tensor.device)).ToArray();
            result = torch.cat(parts, 0).MoveToOuterDisposeScope();
        }
        _world.Wait(nameof(AllGather));
        return result;
    }

    public Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(ReduceScatter));
        ProcessGroupChecks.Op(tensor, op, nameof(ReduceScatter));
        ProcessGroupChecks.ScatterShape(this, tensor, nameof(ReduceScatter));
        Deposit(nameof(ReduceScatter), tensor, Describe(nameof(ReduceScatter), tensor, "," + op));
        long n = tensor.shape[0] / WorldSize;
        Tensor result;
        using (var scope = NewDisposeScope())
        {
            var parts = Enumerable.Range(0, WorldSize).Select(r => Slot(r).narrow(0, Rank * n, n)).ToList();
            result = Reduce(parts, op, tensor.device).MoveToOuterDisposeScope();
        }
        _world.Wait(nameof(ReduceScatter));
        return result;
    }

    public void Barrier()
    {
        Deposit(nameof(Barrier), null, nameof(Barrier));
        _world.Wait(nameof(Barrier));
    }

    public byte[] BroadcastBytes(byte[]? payload, int root = 0)
    {
        ProcessGroupChecks.Root(this, root, nameof(BroadcastBytes));
        if (Rank == root && payload == null)
            throw new ArgumentNullException(nameof(payload), "BroadcastBytes: the root rank must pass a payload.");
        Deposit(nameof(BroadcastBytes), Rank == root ? payload : null, $"{nameof(BroadcastBytes)}(root {root})");
        var result = (byte[])((byte[])_world.Slots[root]!).Clone();
        _world.Wait(nameof(BroadcastBytes));
        return result;
    }

    public void Dispose() { }
}
