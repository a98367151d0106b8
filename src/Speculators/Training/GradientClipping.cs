using Speculators.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Training;

/// <summary>Global-norm gradient clipping, as <c>torch.nn.utils.clip_grad_norm_</c>.</summary>
public static class GradientClipping
{
    /// <summary>
    /// Scales every gradient by <c>min(1, maxNorm / (total + 1e-6))</c> where <c>total</c> is the L2 norm
    /// of all gradients together (computed as the norm of the per-tensor norms, like torch), and returns
    /// <c>total</c> (before clipping). Parameters without a gradient are ignored; with none at all the
    /// result is 0. A non-finite norm is returned as is (the gradients then become non-finite too, as in
    /// torch with <c>error_if_nonfinite=False</c>); the trainer decides what to do with it.
    /// </summary>
    /// <param name="parameters">The trainable parameters.</param>
    /// <param name="maxNorm">The norm to clip to (the Python trainer uses 1.0).</param>
    /// <param name="shardGroup">
    /// When each rank holds a different shard of the parameters (FSDP style), the group over which
    /// squared local norms are summed; null when every rank holds the full gradients (single process,
    /// DDP after the gradient all-reduce).
    /// </param>
    public static double ClipGradNorm(IEnumerable<Tensor> parameters, double maxNorm, IProcessGroup? shardGroup = null)
    {
        if (maxNorm < 0 || double.IsNaN(maxNorm)) throw new ArgumentOutOfRangeException(nameof(maxNorm), $"max norm must be >= 0, got {maxNorm}.");
        using var scope = NewDisposeScope();
        using var noGrad = torch.no_grad();
        var grads = parameters.Select(p => p.grad).Where(g => g is not null).Select(g => g!).ToList();
        if (grads.Count == 0 && (shardGroup == null || shardGroup.WorldSize == 1)) return 0.0;
        var device = grads.Count > 0 ? grads[0].device : torch.CPU;
        Tensor total;
        if (grads.Count > 0)
        {
            var norms = grads.Select(g => torch.linalg.vector_norm(g, 2).to(ScalarType.Float32, device)).ToArray();
            total = torch.linalg.vector_norm(torch.stack(norms), 2);
        }
        else
        {
            total = torch.zeros(Array.Empty<long>(), ScalarType.Float32, device);
        }
        if (shardGroup != null && shardGroup.WorldSize > 1)
        {
            var squared = (total * total).reshape(1).to(ScalarType.Float64);
            shardGroup.AllReduce(squared, ReduceOp.Sum);
            total = squared.sqrt().reshape(Array.Empty<long>()).to(ScalarType.Float32);
        }
        var coef = (maxNorm / (total + 1e-6)).clamp_max(1.0);
        foreach (var g in grads) g.mul_(coef.to(g.device));
        return total.ToDouble();
    }

    /// <summary><see cref="ClipGradNorm(IEnumerable{Tensor}, double, IProcessGroup?)"/> over named parameters.</summary>
    public static double ClipGradNorm(IEnumerable<NamedParameter> parameters, double maxNorm, IProcessGroup? shardGroup = null) =>
        ClipGradNorm(parameters.Select(p => p.Tensor), maxNorm, shardGroup);
}
