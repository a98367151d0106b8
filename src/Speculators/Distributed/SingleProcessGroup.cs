using static TorchSharp.torch;

namespace Speculators.Distributed;

/// <summary>
/// Rank 0 of a world of 1: every collective is the identity (after the same argument checks the
/// multi-rank implementations run), so single-process training runs through the distributed code paths.
/// </summary>
public sealed class SingleProcessGroup : IProcessGroup
{
    public static SingleProcessGroup Instance { get; } = new();

    public int Rank => 0;
    public int WorldSize => 1;
    public int LocalRank => 0;
    public int LocalWorldSize => 1;
    public string Backend => "single";

    public bool SupportsDevice(TorchSharp.DeviceType device) => true;

    public void AllReduce(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(AllReduce));
        ProcessGroupChecks.Op(tensor, op, nameof(AllReduce));
        // Sum, Max, Min and Avg over one rank leave the values unchanged.
    }

    public void Broadcast(Tensor tensor, int root = 0)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(Broadcast));
        ProcessGroupChecks.Root(this, root, nameof(Broadcast));
    }

    public Tensor AllGather(Tensor tensor)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(AllGather));
        if (tensor.dim() == 0) throw new ArgumentException("AllGather: 0-d tensors have no dimension 0 to concatenate; reshape to [1].", nameof(tensor));
        return tensor.clone();
    }

    public Tensor ReduceScatter(Tensor tensor, ReduceOp op = ReduceOp.Sum)
    {
        ProcessGroupChecks.Tensor(this, tensor, nameof(ReduceScatter));
        ProcessGroupChecks.Op(tensor, op, nameof(ReduceScatter));
        ProcessGroupChecks.ScatterShape(this, tensor, nameof(ReduceScatter));
        return tensor.clone();
    }

    public void Barrier() { }

    public byte[] BroadcastBytes(byte[]? payload, int root = 0)
    {
        ProcessGroupChecks.Root(this, root, nameof(BroadcastBytes));
        if (payload == null) throw new ArgumentNullException(nameof(payload), "BroadcastBytes: the root rank must pass a payload.");
        return (byte[])payload.Clone();
    }

    public void Dispose() { }
}
