using System.Runtime;

namespace Speculators.Util;

/// <summary>
/// Keeps garbage collections out of a stretch of torch work while other threads allocate.
/// <para>
/// Why: TorchSharp 0.107 passes temporary <c>Scalar</c>s to native code without keeping them alive — <c>Tensor.add(t)</c>
/// is <c>add(t, alpha: 1)</c>, and the implicit <c>Scalar</c> for 1 is unreachable once its handle is read. A collection
/// triggered by <em>another</em> thread (a datagen writer, the trainer's batch prefetcher) in that instant lets the
/// finalizer free the scalar while libtorch still reads it; libtorch then fails with "Expected false to be true ...
/// toFloat" (observed once in about two default quickstart datagen runs). A collection triggered by the computing
/// thread itself cannot land inside its own native call, so the fence makes collections happen only at its
/// boundaries: inside it the runtime's no-GC region holds every thread's allocations up to a budget.
/// </para>
/// <para>
/// Use on the one thread that drives a step of torch work (a training step, a datagen prefill). Nested or concurrent
/// fences are no-ops (the region is process-wide). If the step allocates more than the budget the runtime collects and
/// ends the region early — the old behaviour for the rest of the step, never an error.
/// </para>
/// </summary>
public readonly struct TorchGcFence : IDisposable
{
    /// <summary>Managed allocations (all threads) the region allows: far above a step's wrappers and a writer's buffers.</summary>
    public const long DefaultBudgetBytes = 128L << 20;

    static int _active;
    readonly bool _owner;

    TorchGcFence(bool owner) { _owner = owner; }

    /// <summary>Starts a no-GC region (after a collection if the budget is not free now); a no-op if one is active.</summary>
    public static TorchGcFence Enter(long budgetBytes = DefaultBudgetBytes)
    {
        if (Interlocked.CompareExchange(ref _active, 1, 0) != 0) return default;
        try
        {
            if (GCSettings.LatencyMode != GCLatencyMode.NoGCRegion && GC.TryStartNoGCRegion(budgetBytes))
                return new TorchGcFence(owner: true);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentOutOfRangeException)
        {
            // a region some other code started, or a budget this runtime does not allow: run unfenced
        }
        Volatile.Write(ref _active, 0);
        return default;
    }

    public void Dispose()
    {
        if (!_owner) return;
        try
        {
            // The region already ended if the budget ran out (the runtime collected); then there is nothing to end.
            if (GCSettings.LatencyMode == GCLatencyMode.NoGCRegion) GC.EndNoGCRegion();
        }
        catch (InvalidOperationException)
        {
        }
        finally
        {
            Volatile.Write(ref _active, 0);
        }
    }
}
