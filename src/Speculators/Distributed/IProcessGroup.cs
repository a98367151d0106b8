using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Distributed;

/// <summary>Reduction applied by <see cref="IProcessGroup.AllReduce"/> and <see cref="IProcessGroup.ReduceScatter"/>.</summary>
public enum ReduceOp
{
    Sum,
    /// <summary>Sum divided by the world size (integer tensors are rejected: the division would truncate).</summary>
    Avg,
    Max,
    Min,
}

/// <summary>
/// The collective operations the trainer needs, independent of how ranks talk to each other.
/// Today's implementation is <see cref="SingleProcessGroup"/> (rank 0 of 1, same code paths);
/// <see cref="InProcessGroup"/> runs several ranks as threads of one process (tests, CPU data
/// parallel experiments); MPI (<c>libmpi.so.40</c>) and NCCL implementations plug in later
/// without changing callers.
/// <para>Contract every implementation keeps (and <see cref="ProcessGroupChecks"/> enforces):</para>
/// <list type="bullet">
/// <item>Tensors are dense and contiguous, and every rank passes the same shape and dtype in
/// the same order of calls. Collectives are blocking: when the call returns the result is in
/// place (a NCCL implementation synchronizes its stream before returning).</item>
/// <item>Tensors may live on any device the implementation reports in
/// <see cref="SupportsDevice"/>; an implementation that cannot reduce on a tensor's device
/// stages through host memory itself (e.g. MPI with CUDA tensors), callers never copy.</item>
/// <item>Reductions happen in the tensor's own dtype. Callers that need fp32 accumulation of
/// bf16 data (gradients) use <see cref="ProcessGroupExtensions.AllReduceInFloat32"/>, which
/// up-casts, reduces and writes back; with fp32 master weights the gradients are already fp32.</item>
/// <item>Order of summation may differ between implementations; results are identical on
/// every rank of one run.</item>
/// </list>
/// </summary>
public interface IProcessGroup : IDisposable
{
    /// <summary>Global rank in [0, <see cref="WorldSize"/>).</summary>
    int Rank { get; }

    /// <summary>Number of ranks in the group.</summary>
    int WorldSize { get; }

    /// <summary>Rank on this node (selects the accelerator: <c>cuda:LocalRank</c>).</summary>
    int LocalRank { get; }

    /// <summary>Ranks on this node.</summary>
    int LocalWorldSize { get; }

    /// <summary>Short backend name for logs: <c>single</c>, <c>inprocess</c>, <c>mpi</c>, <c>nccl</c>.</summary>
    string Backend { get; }

    /// <summary>True when this implementation can run collectives on tensors of <paramref name="device"/>.</summary>
    bool SupportsDevice(DeviceType device);

    /// <summary>Reduces <paramref name="tensor"/> across ranks in place; every rank gets the result.</summary>
    void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <summary>Overwrites <paramref name="tensor"/> on every rank with the values of rank <paramref name="root"/>.</summary>
    void Broadcast(Tensor tensor, int root = 0);

    /// <summary>
    /// Concatenates every rank's <paramref name="tensor"/> along dimension 0 in rank order and returns
    /// the new tensor ([WorldSize·n, …]) on the input's device.
    /// </summary>
    Tensor AllGather(Tensor tensor);

    /// <summary>
    /// Reduces <paramref name="tensor"/> ([WorldSize·n, …], identical shape on every rank) across ranks
    /// and returns this rank's slice of the result ([n, …], rows Rank·n .. (Rank+1)·n−1). The building
    /// block of sharded gradients (FSDP style).
    /// </summary>
    Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum);

    /// <summary>Blocks until every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Broadcasts a byte payload (serialized JSON, configs, sampler plans) from <paramref name="root"/>.
    /// Non-root ranks pass null (their argument is ignored) and receive the root's bytes.
    /// </summary>
    byte[] BroadcastBytes(byte[]? payload, int root = 0);
}

/// <summary>Helpers shared by every <see cref="IProcessGroup"/> caller.</summary>
public static class ProcessGroupExtensions
{
    /// <summary>True on the rank that writes logs and checkpoints.</summary>
    public static bool IsMain(this IProcessGroup group) => group.Rank == 0;

    /// <summary>
    /// All-reduce with fp32 (or wider) accumulation: a bf16/fp16 tensor is up-cast to fp32, reduced,
    /// and written back in its own dtype. fp32/fp64/integer tensors are reduced directly.
    /// </summary>
    public static void AllReduceInFloat32(this IProcessGroup group, Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        if (tensor.dtype is ScalarType.BFloat16 or ScalarType.Float16)
        {
            using var scope = NewDisposeScope();
            var wide = tensor.to(ScalarType.Float32);
            group.AllReduce(wide, op);
            tensor.copy_(wide);
        }
        else
        {
            group.AllReduce(tensor, op);
        }
    }

    /// <summary>All-reduces a small vector of doubles (metric sums, counters) and returns the result.</summary>
    public static double[] AllReduceValues(this IProcessGroup group, ReadOnlySpan<double> values, ReduceOp op = ReduceOp.Sum)
    {
        if (values.Length == 0) return Array.Empty<double>();
        using var t = torch.tensor(values.ToArray(), ScalarType.Float64);
        group.AllReduce(t, op);
        return t.data<double>().ToArray();
    }
}

/// <summary>Argument checks every implementation runs before a collective, so misuse fails the same way everywhere.</summary>
public static class ProcessGroupChecks
{
    public static void Tensor(IProcessGroup group, Tensor tensor, string operation)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (tensor.IsInvalid) throw new ArgumentException($"{operation}: the tensor has been disposed.", nameof(tensor));
        if (tensor.is_sparse) throw new ArgumentException($"{operation}: sparse tensors are not supported.", nameof(tensor));
        if (!tensor.is_contiguous())
            throw new ArgumentException($"{operation}: the tensor must be contiguous (call .contiguous() first); shape [{string.Join(", ", tensor.shape)}].", nameof(tensor));
        if (!group.SupportsDevice(tensor.device_type))
            throw new ArgumentException($"{operation}: backend '{group.Backend}' does not support {tensor.device_type} tensors.", nameof(tensor));
    }

    public static void Op(Tensor tensor, ReduceOp op, string operation)
    {
        if (op == ReduceOp.Avg && !torch.is_floating_point(tensor))
            throw new ArgumentException($"{operation}: ReduceOp.Avg needs a floating-point tensor, got {tensor.dtype}.", nameof(op));
        if (tensor.dtype == ScalarType.Bool && op is ReduceOp.Sum)
            throw new ArgumentException($"{operation}: ReduceOp.Sum on a bool tensor is ambiguous; use Max (any) or Min (all).", nameof(op));
    }

    public static void Root(IProcessGroup group, int root, string operation)
    {
        if (root < 0 || root >= group.WorldSize)
            throw new ArgumentOutOfRangeException(nameof(root), $"{operation}: root {root} is outside [0, {group.WorldSize}).");
    }

    public static void ScatterShape(IProcessGroup group, Tensor tensor, string operation)
    {
        if (tensor.dim() == 0 || tensor.shape[0] % group.WorldSize != 0)
            throw new ArgumentException(
                $"{operation}: dimension 0 must be a multiple of the world size {group.WorldSize}; shape [{string.Join(", ", tensor.shape)}].",
                nameof(tensor));
    }
}
