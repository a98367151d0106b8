using Speculators.Algorithms.Eagle3;
using Speculators.Algorithms.Eagle3.Training;
using Speculators.Data;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3.Training;

/// <summary>Tiny verifiers, drafts and synthetic packed rows for the Eagle-3 training tests.</summary>
internal static class E3TrainFixtures
{
    public const int Hidden = 32, Vocab = 300, DraftVocab = 48, Layers = 4;
    public static readonly int[] AuxIds = [1, 2, 3];

    public static void SingleThreaded()
    {
        if (torch.get_num_threads() != 1) torch.set_num_threads(1);
    }

    public static TinyModelOptions VerifierOptions(long seed = 3) => new()
    {
        NumLayers = Layers, HiddenSize = Hidden, IntermediateSize = 64, NumHeads = 4, NumKvHeads = 2, VocabSize = Vocab,
        MaxPositionEmbeddings = 256, Seed = seed, WriteTokenizer = false,
    };

    /// <summary>A draft mapping keeping <see cref="DraftVocab"/> target ids (every sixth id, 0 included).</summary>
    public static VocabMapping Mapping()
    {
        var t2d = new bool[Vocab];
        var kept = Enumerable.Range(0, DraftVocab).Select(i => i * 6 + (i % 3)).ToArray();
        foreach (var id in kept) t2d[id] = true;
        var d2t = kept.Select((id, i) => (long)(id - i)).ToArray();
        return new VocabMapping(d2t, t2d, "test mapping");
    }

    /// <summary>A fresh draft (fp64 by default) on a tiny in-memory verifier, with larger init so attention is far from uniform.</summary>
    public static Eagle3DraftModel Draft(Eagle3LayerStyle style, bool normOutput, int? slidingWindow = null, int numLayers = 1,
        ScalarType dtype = ScalarType.Float64, double init = 0.2, long seed = 7)
    {
        using var verifier = TinyModelFactory.CreateInMemory(VerifierOptions() with { InitStd = 0.2 });
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        var options = Eagle3DraftOptions.HeadDefaults with
        {
            LayerStyle = style, NormOutput = normOutput, SlidingWindow = slidingWindow, NumLayers = numLayers, AuxLayerIds = AuxIds,
            Seed = seed, InitializerRange = init,
        };
        return Eagle3Builder.FromVerifier(vw, options, Mapping(), "tiny-verifier", dtype, torch.CPU);
    }

    /// <summary>
    /// A synthetic packed row of <paramref name="l"/> positions: documents of <paramref name="docLengths"/> tokens back to
    /// back (positions from 1), then padding; random tokens, aux and last-layer states, and a random loss mask on documents.
    /// </summary>
    public static Eagle3Batch Batch(int[] docLengths, int l, long seed, ScalarType dtype = ScalarType.Float64, int blockSize = 8,
        double lastScale = 3.0)
    {
        var layout = MultipackCollation.Layout(docLengths, l, firstPosition: 1);
        var rng = new Random((int)seed);
        var ids = new long[l];
        var mask = new long[l];
        for (int i = 0; i < l; i++)
        {
            if (layout.DocumentIds[i] < 0) continue;
            ids[i] = rng.Next(Vocab);
            mask[i] = rng.NextDouble() < 0.8 ? 1 : 0;
        }
        using var gen = new torch.Generator((ulong)seed, torch.CPU);
        var shape = new long[] { 1, l };
        var hidden = torch.randn([1, l, AuxIds.Length * Hidden], ScalarType.Float32, generator: gen).to(dtype);
        var last = torch.randn([1, l, Hidden], ScalarType.Float32, generator: gen).mul(lastScale).to(dtype);
        return new Eagle3Batch(torch.tensor(ids, shape, ScalarType.Int64), hidden, last, torch.tensor(mask, shape, ScalarType.Int64),
            layout.PositionIdsTensor(), layout.DocumentIdsTensor(), layout.DocumentIds, Enumerable.Range(0, docLengths.Length).ToArray(),
            layout.Lengths, 0, blockSize);
    }

    /// <summary>Gradients of the draft's trainable parameters (cloned), then cleared.</summary>
    public static Dictionary<string, Tensor> TakeGradients(Eagle3DraftModel draft)
    {
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, p) in draft.TrainableParameters())
        {
            var g = p.grad;
            result[name] = g is null ? torch.zeros_like(p).DetachFromDisposeScope() : g.detach().clone().DetachFromDisposeScope();
            g?.zero_();
        }
        return result;
    }

    public static double MaxAbs(Tensor t) => t.numel() == 0 ? 0 : t.abs().max().to(ScalarType.Float64).item<double>();
}
