using TorchSharp;

namespace Speculators.Tests.Modeling;

/// <summary>
/// Tiny-model tests run single-threaded: with a handful of small ops per layer, libtorch's OpenMP pool
/// only adds overhead, and on a shared, oversubscribed machine its spinning threads made these tests
/// 10–30× slower. Results do not depend on the thread count at these sizes.
/// </summary>
internal static class TestTorch
{
    public static void SingleThreaded()
    {
        if (torch.get_num_threads() != 1) torch.set_num_threads(1);
    }
}
