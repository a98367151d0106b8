using System.Text;
using Speculators.Distributed;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Distributed;

public class ProcessGroupTests
{
    static float[] F(Tensor t) => t.to(ScalarType.Float32).data<float>().ToArray();

    [Fact]
    public void SingleProcessIsRankZeroOfOneAndChecksArguments()
    {
        using var scope = NewDisposeScope();
        var pg = SingleProcessGroup.Instance;
        Assert.Equal((0, 1, 0, 1), (pg.Rank, pg.WorldSize, pg.LocalRank, pg.LocalWorldSize));
        Assert.True(pg.IsMain());
        var t = torch.tensor(new float[] { 1, 2, 3 });
        pg.AllReduce(t, ReduceOp.Avg);
        pg.Broadcast(t);
        Assert.Equal(new float[] { 1, 2, 3 }, F(t));
        var gathered = pg.AllGather(t);
        Assert.Equal(new float[] { 1, 2, 3 }, F(gathered));
        gathered[0] = 9;
        Assert.Equal(1, F(t)[0]);   // a new tensor, not a view
        Assert.Equal(new float[] { 1, 2, 3, 4 }, F(pg.ReduceScatter(torch.tensor(new float[] { 1, 2, 3, 4 }))));
        Assert.Equal(new byte[] { 1, 2 }, pg.BroadcastBytes(new byte[] { 1, 2 }));

        Assert.Throws<ArgumentException>(() => pg.AllReduce(torch.zeros(4, 4).t()));                      // not contiguous
        Assert.Throws<ArgumentException>(() => pg.AllReduce(torch.tensor(new long[] { 1 }), ReduceOp.Avg)); // integer average
        Assert.Throws<ArgumentOutOfRangeException>(() => pg.Broadcast(t, root: 1));
        Assert.Equal(new[] { 4.0, 5.0 }, pg.AllReduceValues(new[] { 4.0, 5.0 }));
    }

    [Fact]
    public void InProcessCollectivesComputeAcrossRanks()
    {
        const int W = 3;
        var results = InProcessGroup.Run(W, pg =>
        {
            using var scope = NewDisposeScope();
            int r = pg.Rank;
            var sum = torch.tensor(new float[] { r, 10 * r });
            pg.AllReduce(sum);
            var avg = torch.tensor(new float[] { r, 1 });
            pg.AllReduce(avg, ReduceOp.Avg);
            var max = torch.tensor(new long[] { r, -r });
            pg.AllReduce(max, ReduceOp.Max);
            var min = torch.tensor(new long[] { r, -r });
            pg.AllReduce(min, ReduceOp.Min);
            var b = torch.tensor(new float[] { r + 100 });
            pg.Broadcast(b, root: 2);
            var gathered = pg.AllGather(torch.tensor(new float[] { r, r }).reshape(1, 2));
            // reduce-scatter: every rank contributes [0..5]·(r+1); rank r keeps rows 2r, 2r+1 of the sum
            var rs = pg.ReduceScatter(torch.arange(6, ScalarType.Float32) * (r + 1));
            pg.Barrier();
            var bytes = pg.BroadcastBytes(r == 1 ? Encoding.UTF8.GetBytes("plan") : null, root: 1);
            // bf16 spacing at 256 is 2: 256 + 1 + 1 summed in bf16 stays 256, in fp32 it is 258.
            float v = r == 0 ? 256 : 1;
            var bf = torch.tensor(new float[] { v }).to(ScalarType.BFloat16);
            pg.AllReduceInFloat32(bf);
            var bfPlain = torch.tensor(new float[] { v }).to(ScalarType.BFloat16);
            pg.AllReduce(bfPlain);
            return new
            {
                Sum = F(sum), Avg = F(avg), Max = max.data<long>().ToArray(), Min = min.data<long>().ToArray(), B = F(b),
                G = gathered.shape.ToArray(), Gv = F(gathered), Rs = F(rs), Bytes = Encoding.UTF8.GetString(bytes), Bf = F(bf), BfPlain = F(bfPlain), Dtype = bf.dtype,
            };
        });
        for (int r = 0; r < W; r++)
        {
            var x = results[r];
            Assert.Equal(new float[] { 3, 30 }, x.Sum);
            Assert.Equal(new float[] { 1, 1 }, x.Avg);
            Assert.Equal(new long[] { 2, 0 }, x.Max);
            Assert.Equal(new long[] { 0, -2 }, x.Min);
            Assert.Equal(new float[] { 102 }, x.B);
            Assert.Equal(new long[] { 3, 2 }, x.G);
            Assert.Equal(new float[] { 0, 0, 1, 1, 2, 2 }, x.Gv);
            Assert.Equal(new float[] { 6 * (2 * r), 6 * (2 * r + 1) }, x.Rs);
            Assert.Equal("plan", x.Bytes);
            Assert.Equal(ScalarType.BFloat16, x.Dtype);
            Assert.Equal(258f, x.Bf[0]);
            Assert.Equal(256f, x.BfPlain[0]);
        }
    }

    [Fact]
    public void MismatchedCollectivesAndFailuresAreReported()
    {
        var e = Assert.Throws<AggregateException>(() => InProcessGroup.Run(2, pg =>
        {
            using var t = torch.zeros(pg.Rank + 1);
            pg.AllReduce(t);
        }));
        Assert.Contains("ranks disagree", e.InnerException!.Message);

        // A rank that fails before a collective releases the others instead of hanging them.
        var f = Assert.Throws<AggregateException>(() => InProcessGroup.Run(2, pg =>
        {
            if (pg.Rank == 1) throw new InvalidOperationException("data error on rank 1");
            pg.Barrier();
        }));
        Assert.Contains("data error on rank 1", f.Message);
    }
}
