using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Distributed;
using Speculators.Logging;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Training;

/// <summary>
/// The pieces assembled as the trainer will assemble them (sampler → packed rows → autocast forward →
/// TTT loss/metrics → clip → Muon+AdamW → schedules → metric sinks) on a tiny model: a run is
/// bitwise reproducible, and stopping, saving every piece's state and resuming gives bitwise the
/// same weights as running straight through.
/// </summary>
public class TrainingPiecesIntegrationTests
{
    const int L = 32, H = 8, In = 12, Vd = 10;

    sealed class Run : IDisposable
    {
        public readonly Tensor Fc, Norm, LmHead;
        public readonly IReadOnlyList<Optimizer> Optimizers;
        public readonly List<LrSchedule> Schedules;
        public readonly MultipackSampler Sampler;
        public readonly List<double> Losses = new();
        public long GlobalStep;

        public Run(int totalSteps)
        {
            torch.manual_seed(42);
            Fc = (torch.randn(H, In) * 0.2).requires_grad_(true).DetachFromDisposeScope();
            Norm = torch.ones(H).requires_grad_(true).DetachFromDisposeScope();
            LmHead = (torch.randn(Vd, H) * 0.5).to(ScalarType.BFloat16).DetachFromDisposeScope(); // frozen, stored bf16
            var named = new[] { new NamedParameter("fc.weight", Fc), new NamedParameter("norm.weight", Norm), new NamedParameter("lm_head.weight", LmHead) };
            Optimizers = OptimizerFactory.Build(named, new OptimizerOptions { Kind = OptimizerKind.Muon, Lr = 1e-2 });
            Schedules = Optimizers.Select(o => new LrSchedule(o, ScheduleKind.Cosine, totalSteps, LrSchedule.ResolveWarmupSteps(totalSteps, null, 0.25))).ToList();
            var lengths = Enumerable.Range(0, 40).Select(i => 3 + (i * 7) % 13).ToArray();
            Sampler = new MultipackSampler(lengths, L, worldSize: 1, rank: 0, seed: 0);
        }

        /// <summary>Row data is a pure function of the row index (like the trainer's noise).</summary>
        static (Tensor X, Tensor T, Tensor Mask) Row(int row, int length)
        {
            var gen = new torch.Generator((ulong)(1000 + row));
            var x = torch.randn(new long[] { length, In }, generator: gen);
            var t = torch.randn(new long[] { length, Vd }, generator: gen) * 2;
            var m = torch.rand(new long[] { length }, generator: gen).gt(0.3).to(ScalarType.Int64);
            return (x, t, m);
        }

        public void TrainSteps(int epoch, int skip, int count, IMetricSink sink)
        {
            Sampler.SetEpoch(epoch);
            foreach (var batch in Sampler.Iterate(skip).Take(count))
            {
                using var scope = NewDisposeScope();
                var layout = MultipackCollation.Layout(batch.Select(Sampler.PackedLength).ToArray(), L);
                var x = torch.zeros(1, L, In);
                var t = torch.zeros(1, L, Vd);
                var mask = torch.zeros(new long[] { 1, L }, ScalarType.Int64);
                for (int i = 0; i < batch.Length; i++)
                {
                    var (xr, tr, mr) = Row(batch[i], layout.Lengths[i]);
                    x[0].narrow(0, layout.Offsets[i], layout.Lengths[i]).copy_(xr);
                    t[0].narrow(0, layout.Offsets[i], layout.Lengths[i]).copy_(tr);
                    mask[0].narrow(0, layout.Offsets[i], layout.Lengths[i]).copy_(mr);
                }

                var metrics = new TttMetrics(mask, LossSpec.Parse("kl_div"));
                using (Autocast.Enter(ScalarType.BFloat16))
                {
                    var h = Autocast.Linear(x, Fc);
                    for (int k = 0; k < 2; k++)
                    {
                        var logits = Autocast.Linear(h * Autocast.Cast(Norm), LmHead);
                        metrics.AddStep(logits, t);
                        h = h * 0.5 + Autocast.Linear(x, Fc);
                    }
                }
                foreach (var o in Optimizers) o.ZeroGrad();
                metrics.Loss.backward();
                double gradNorm = GradientClipping.ClipGradNorm(Optimizers.SelectMany(o => o.Parameters), 1.0);
                foreach (var o in Optimizers) o.Step();
                var lrs = OptimizerFactory.LearningRates(Optimizers);
                foreach (var s in Schedules) s.Step();

                var acc = new MetricAccumulator();
                acc.Add(metrics.Metrics);
                acc.AllReduce(SingleProcessGroup.Instance);
                var record = MetricKeys.Train(acc.Normalize());
                record.AddTo(lrs);
                record["grad_norm"] = gradNorm;
                sink.Log(record, GlobalStep);
                Losses.Add(record["train/loss"]);
                GlobalStep++;
            }
        }

        public (Dictionary<string, Tensor> Tensors, string Json) Save()
        {
            var tensors = new Dictionary<string, Tensor>
            {
                ["model.fc.weight"] = Fc.detach().clone().DetachFromDisposeScope(),
                ["model.norm.weight"] = Norm.detach().clone().DetachFromDisposeScope(),
            };
            var json = new JsonObject { ["global_step"] = GlobalStep };
            var opts = new JsonArray();
            foreach (var o in Optimizers)
            {
                var st = o.StateDict();
                foreach (var (k, v) in st.Tensors) tensors["optim." + k] = v;
                opts.Add(st.Scalars);
            }
            json["optimizers"] = opts;
            json["schedules"] = new JsonArray(Schedules.Select(s => (JsonNode)s.StateDict()).ToArray());
            return (tensors, json.ToJsonString());
        }

        public void Load(Dictionary<string, Tensor> tensors, string jsonText)
        {
            var json = JsonNode.Parse(jsonText)!.AsObject();
            using (torch.no_grad())
            {
                Fc.copy_(tensors["model.fc.weight"]);
                Norm.copy_(tensors["model.norm.weight"]);
            }
            var optimTensors = tensors.Where(kv => kv.Key.StartsWith("optim.")).ToDictionary(kv => kv.Key["optim.".Length..], kv => kv.Value);
            for (int i = 0; i < Optimizers.Count; i++)
                Optimizers[i].LoadStateDict(new OptimizerState(optimTensors, json["optimizers"]![i]!.AsObject()));
            for (int i = 0; i < Schedules.Count; i++)
                Schedules[i].LoadStateDict(json["schedules"]![i]!.AsObject());
            GlobalStep = json["global_step"]!.GetValue<long>();
        }

        public void Dispose()
        {
            foreach (var o in Optimizers) o.Dispose();
        }
    }

    [Fact]
    public void RunsAreReproducibleAndResumeIsBitwiseExact()
    {
        using var dir = new TempDir();
        var console = new StringWriter();
        using var sink = new CompositeSink(new ConsoleSink(console), new TensorBoardSink(dir.Path));

        using var straight = new Run(totalSteps: 8);
        straight.TrainSteps(epoch: 0, skip: 0, count: 6, sink);
        Assert.Equal(6, straight.Losses.Count);
        Assert.All(straight.Losses, l => Assert.True(double.IsFinite(l) && l > 0));
        Assert.Contains("lr/Muon", console.ToString());

        using var again = new Run(totalSteps: 8);
        again.TrainSteps(0, 0, 6, NullSink.Instance);
        Assert.Equal(straight.Losses, again.Losses);
        Assert.True(straight.Fc.eq(again.Fc).all().item<bool>());

        using var first = new Run(totalSteps: 8);
        first.TrainSteps(0, 0, 3, NullSink.Instance);
        var (tensors, json) = first.Save();
        using var resumed = new Run(totalSteps: 8);
        resumed.Load(tensors, json);
        Assert.Equal(3, resumed.GlobalStep);
        resumed.TrainSteps(0, skip: 3, count: 3, NullSink.Instance);
        Assert.Equal(straight.Losses.Skip(3), resumed.Losses);
        Assert.True(straight.Fc.eq(resumed.Fc).all().item<bool>());
        Assert.True(straight.Norm.eq(resumed.Norm).all().item<bool>());
        Assert.Equal(straight.Optimizers[0].ParamGroups[0].Lr, resumed.Optimizers[0].ParamGroups[0].Lr);
    }
}
