using Speculators.Algorithms.CausalLm;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Training;
using Speculators.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Speculators.Tests.Algorithms.CausalLm;

/// <summary>Causal-LM pretraining pieces against independent references (per-document inference forward, dense masks).</summary>
public class CausalLmAlgorithmTests
{
    static CausalLmAlgorithm Build(TempDir dir, string lossOn = "loss_mask", bool tied = false, string saveDtype = "float32", string? tokenizer = null)
    {
        string data = CausalLmTestData.WriteDataset(dir.File("data"));
        string cfg = CausalLmTestData.WriteConfig(dir.File("cfg"), tied);
        var o = new TrainOptions { DataPath = data, SavePath = dir.File("ckpt"), TotalSeqLen = 96, Seed = 5,
            CausalLm = new CausalLmTrainingOptions { ModelConfig = cfg, LossOn = lossOn, SaveDtype = saveDtype, Tokenizer = tokenizer } };
        return CausalLmAlgorithm.Create(o.CausalLm, TrainerTestAlgorithm.Context(o));
    }

    [Theory]
    [InlineData("loss_mask", false)]
    [InlineData("all", true)]
    public void PackedLossEqualsThePerDocumentInferenceForward(string lossOn, bool tied)
    {
        using var dir = new TempDir();
        using var algo = Build(dir, lossOn, tied);
        int[] rows = [4, 9, 17];
        using var data = PreparedDataset.Open(dir.File("data"));
        using var batch = algo.Collate(rows, 96);
        using var output = algo.Forward(batch, training: false);

        // Reference: each document alone through the model's inference path (its own causal SDPA and positions 0..n-1),
        // cross-entropy in fp64 over the supervised next tokens.
        double sum = 0;
        long count = 0, correct = 0;
        foreach (int r in rows)
        {
            var row = data.GetRow(r);
            int n = Math.Min(row.Length, 96);
            using var ids = torch.tensor(row.InputIds[..n], new long[] { 1, n });
            var outp = algo.Model.Forward(ids);
            using var logits = outp.Logits!.to(ScalarType.Float64)[0];
            outp.LastHidden?.Dispose();
            for (int t = 0; t + 1 < n; t++)
            {
                if (lossOn == "loss_mask" && row.LossMask[t + 1] == 0) continue;
                using var lsm = F.log_softmax(logits[t], 0);
                sum -= lsm[row.InputIds[t + 1]].item<double>();
                correct += lsm.argmax().item<long>() == row.InputIds[t + 1] ? 1 : 0;
                count++;
            }
        }
        Assert.Equal(count, batch.SupervisedTokens);
        Assert.Equal((double)count, output.Metrics["loss_total"].item<float>());
        Assert.Equal(sum / count, output.Loss.item<float>(), 5);
        Assert.Equal(sum, output.Metrics["loss_sum"].item<float>(), 3);
        Assert.Equal((double)correct, output.Metrics["acc_sum"].item<float>());
    }

    [Theory]
    [InlineData(null)]
    [InlineData(5)]
    public void DocumentAttentionEqualsTheDenseMaskedReference(int? window)
    {
        int[] offsets = [0, 7, 20], lengths = [7, 13, 9];
        const int T = 34, heads = 4, kv = 2, hd = 8;
        var backend = new DocumentCausalAttention(offsets, lengths, T);
        using var g = new Generator(3);
        var q = torch.randn(new long[] { 1, heads, T, hd }, ScalarType.Float64, generator: g).requires_grad_(true);
        var k = torch.randn(new long[] { 1, kv, T, hd }, ScalarType.Float64, generator: g).requires_grad_(true);
        var v = torch.randn(new long[] { 1, kv, T, hd }, ScalarType.Float64, generator: g).requires_grad_(true);
        var info = new AttentionLayerInfo(0, heads, kv, hd, 0.3, window);
        var docPositions = torch.tensor(Enumerable.Range(0, 29).Select(i => (long)i).ToArray());
        var weights = torch.randn(new long[] { 1, heads, 29, hd }, ScalarType.Float64, generator: g);

        var mine = backend.Attend(q, k, v, info);
        mine.index_select(2, docPositions).mul(weights).sum().backward();
        var (gq, gk, gv) = (q.grad!.clone(), k.grad!.clone(), v.grad!.clone());
        q.grad = null; k.grad = null; v.grad = null;

        // Dense reference: explicit softmax over the boolean mask in fp64.
        var mask = backend.DenseMask(window);
        var kr = AttentionMath.RepeatKv(k, heads / kv);
        var vr = AttentionMath.RepeatKv(v, heads / kv);
        var scores = q.matmul(kr.transpose(2, 3)).mul(0.3).masked_fill(mask.logical_not(), double.NegativeInfinity);
        var reference = F.softmax(scores, -1).matmul(vr);
        reference.index_select(2, docPositions).mul(weights).sum().backward();

        Assert.True(mine.index_select(2, docPositions).allclose(reference.index_select(2, docPositions), 1e-10, 1e-10));
        Assert.True(gq.allclose(q.grad!, 1e-10, 1e-10));
        Assert.True(gk.allclose(k.grad!, 1e-10, 1e-10));
        Assert.True(gv.allclose(v.grad!, 1e-10, 1e-10));
        // Padding rows output zeros and never receive attention.
        Assert.Equal(0.0, mine.narrow(2, 29, T - 29).abs().sum().item<double>());
    }

    [Fact]
    public void SavedModelIsAStandardHfDirectoryThatReloadsBitwise()
    {
        using var dir = new TempDir();
        string tok = dir.File("tok");
        Directory.CreateDirectory(tok);
        File.WriteAllText(Path.Combine(tok, "tokenizer.json"), "{}");
        File.WriteAllText(Path.Combine(tok, "tokenizer_config.json"), "{}");
        using var algo = Build(dir, tokenizer: tok);
        string out1 = dir.File("saved");
        Directory.CreateDirectory(out1);
        algo.SaveModel(out1);
        foreach (var f in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
            Assert.True(File.Exists(Path.Combine(out1, f)), f);
        var cfg = HfConfig.Load(out1);
        Assert.Equal("float32", cfg.TorchDtype);
        Assert.Equal(2L, cfg.EosTokenIds.Single()); // the source config's keys survive
        using var reloaded = CausalLM.LoadFromDirectory(out1, ScalarType.Float32, torch.CPU);
        using var ids = torch.tensor(new long[] { 3, 4, 5, 6, 7 }, new long[] { 1, 5 });
        var a = algo.Model.Forward(ids);
        var b = reloaded.Forward(ids);
        Assert.True(TrainerTestAlgorithm.Same(a.Logits!, b.Logits!));

        using var d2 = new TempDir();
        using var bf = Build(d2, saveDtype: "bfloat16");
        string out2 = dir.File("saved-bf16");
        Directory.CreateDirectory(out2);
        bf.SaveModel(out2);
        Assert.Equal("bfloat16", HfConfig.Load(out2).TorchDtype);
        using var st = SafeTensorsCheckpoint.Open(out2);
        Assert.All(st.AllInfos(), i => Assert.Equal(SafeTensorsDType.BF16, i.DType));
    }

    [Fact]
    public void FreshWeightsFollowHfInitAndTheSeed()
    {
        using var d1 = new TempDir();
        using var a = Build(d1);
        using var d2 = new TempDir();
        using var b = Build(d2);
        Assert.True(TrainerTestAlgorithm.SameWeights(a.TrainableParameters, b.TrainableParameters));
        foreach (var p in a.TrainableParameters)
        {
            if (p.Name.EndsWith("norm.weight")) Assert.Equal(1.0, p.Tensor.min().item<float>());
            else Assert.InRange(p.Tensor.std().item<float>(), 0.015, 0.025);
            Assert.True(p.Tensor.requires_grad);
        }
    }

    [Fact]
    public void TokenIdsOutsideTheVocabularyAreRejectedNamingTheRow()
    {
        using var dir = new TempDir();
        string data = CausalLmTestData.WriteDataset(dir.File("data"), badRow: [1, 2, 99, 3]);
        string cfg = CausalLmTestData.WriteConfig(dir.File("cfg"));
        var o = new TrainOptions { DataPath = data, TotalSeqLen = 64, CausalLm = new CausalLmTrainingOptions { ModelConfig = cfg } };
        using var algo = CausalLmAlgorithm.Create(o.CausalLm, TrainerTestAlgorithm.Context(o));
        var e = Assert.Throws<SpeculatorsException>(() => algo.Collate([0, 1], 64));
        Assert.Contains("row 1 has token id 99 at position 2", e.Message);
        Assert.Contains("[0, 48)", e.Message);
    }
}
