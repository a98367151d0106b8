using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>
/// speculators.md §3.7: the 6×6 base mask for document lengths [1, 2, 3] and its TTT extension, both as the block masks
/// the training forward uses and as what the draft actually sees (which aux inputs a position's loss depends on).
/// </summary>
public class MaskSemanticsTests
{
    static readonly int[,] Expected =
    {
        { 1, 0, 0, 0, 0, 0 },
        { 0, 1, 0, 0, 0, 0 },
        { 0, 1, 1, 0, 0, 0 },
        { 0, 0, 0, 1, 0, 0 },
        { 0, 0, 0, 1, 1, 0 },
        { 0, 0, 0, 1, 1, 1 },
    };

    public MaskSemanticsTests() => E3TrainFixtures.SingleThreaded();

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(128)]
    public void BlockMasksAreTheSpecExampleAndItsDiagonalExtension(int blockSize)
    {
        var doc = new long[] { 0, 1, 1, 2, 2, 2 };
        using var set = new Eagle3MaskSet(doc, blockSize, torch.CPU);
        for (int step = 0; step < 3; step++)
        {
            using var dense = set.For(null, step).ToDense();
            Assert.Equal([6L, 6L * (step + 1)], dense.shape);
            var m = dense.data<bool>().ToArray();
            for (int q = 0; q < 6; q++)
                for (int kv = 0; kv < 6 * (step + 1); kv++)
                {
                    bool expected = kv < 6 ? Expected[q, kv] == 1 : kv % 6 == q;   // [base | I | I]
                    Assert.True(expected == m[q * 6 * (step + 1) + kv], $"step {step}, block {blockSize}: mask[{q}, {kv}] should be {expected}");
                }
        }
        // A sliding window of 2 removes the key two positions back inside the 3-token document.
        using var slid = set.For(2, 0).ToDense();
        Assert.False(slid[5, 3].item<bool>());
        Assert.True(slid[5, 4].item<bool>());
        Assert.True(slid[5, 5].item<bool>());
    }

    [Fact]
    public void ThePositionsALossDependsOnAreTheMaskRow()
    {
        // One draft layer, one TTT step: the loss at position q (loss mask one-hot at q) has a non-zero gradient
        // with respect to the aux hidden state at j exactly where the base mask allows q to see j.
        using var scope = NewDisposeScope();
        using var draft = E3TrainFixtures.Draft(Eagle3LayerStyle.Llama, normOutput: true);
        using var template = E3TrainFixtures.Batch([1, 2, 3], 6, seed: 5, blockSize: 4);
        var options = new Eagle3TttOptions { Steps = 1 };
        for (int q = 0; q < 6; q++)
        {
            using var inner = NewDisposeScope();
            var hidden = template.HiddenStates.detach().clone().requires_grad_(true);
            var mask = torch.zeros([1, 6], ScalarType.Int64);
            mask[0, q] = 1;
            using var batch = new Eagle3Batch(template.InputIds.clone(), hidden.alias(), template.VerifierLastHiddenStates.clone(), mask,
                template.PositionIds.clone(), template.DocumentIds.clone(), template.DocumentIdArray, [0, 1, 2], [1, 2, 3], 0, 4);
            using var result = Eagle3TttForward.Run(draft, batch, options);
            result.Loss.backward();
            var influence = hidden.grad!.abs().sum(-1).reshape(-1).data<double>().ToArray();
            for (int j = 0; j < 6; j++)
                Assert.True((influence[j] > 0) == (Expected[q, j] == 1), $"loss at {q} vs aux state at {j}: gradient {influence[j]:E2}, mask {Expected[q, j]}");
            foreach (var (_, p) in draft.TrainableParameters()) p.grad?.zero_();
        }
    }
}
