using Speculators.Data;
using Speculators.HiddenStates;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

/// <summary>
/// A tiny random verifier (4 Llama layers, H = 64, vocab 320, context 512) and a prepared dataset of 11 rows of
/// varied lengths, built once per test run. Tests that write stores use their own temporary directories.
/// </summary>
internal static class HsFixtures
{
    public const int NumLayers = 4, Hidden = 64, Vocab = 320, Context = 512;
    /// <summary>Row lengths of the shared dataset (mixed, so batches need padding).</summary>
    public static readonly int[] Lengths = [7, 23, 3, 40, 23, 1, 16, 9, 31, 12, 5];

    static readonly Lazy<(string Root, string Model, string Data)> Shared = new(Build);

    public static string ModelDir => Shared.Value.Model;
    public static string DataDir => Shared.Value.Data;

    /// <summary>Eagle-3 default aux ids for N = 4: [2, 2, 1] are not distinct, so [1, 2, 3].</summary>
    public static readonly int[] DefaultAux = [1, 2, 3];

    /// <summary>Tiny-model tests run single-threaded (libtorch's pool only adds overhead on a shared 2-core machine).</summary>
    public static void SingleThreaded()
    {
        if (torch.get_num_threads() != 1) torch.set_num_threads(1);
    }

    static (string, string, string) Build()
    {
        string root = Path.Combine(Path.GetTempPath(), "spec-hs-fixture-" + Guid.NewGuid().ToString("N")[..10]);
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try { Directory.Delete(root, true); } catch (IOException) { }
        };
        string model = Path.Combine(root, "model");
        TinyModelFactory.Create(model, new TinyModelOptions
        {
            NumLayers = NumLayers, HiddenSize = Hidden, VocabSize = Vocab, MaxPositionEmbeddings = Context, Seed = 11, WriteTokenizer = false,
        });
        string data = Path.Combine(root, "data");
        WriteDataset(data, Lengths, seed: 5);
        return (root, model, data);
    }

    /// <summary>Writes a prepared dataset with random ids in [0, vocab) and rows of the given lengths.</summary>
    public static void WriteDataset(string dir, IReadOnlyList<int> lengths, int seed, int vocab = Vocab, long? forceId = null)
    {
        var rng = new Random(seed);
        using var w = new PreparedDatasetWriter(dir, new PreparedDatasetWriterOptions { Overwrite = true });
        foreach (int n in lengths)
        {
            var ids = Enumerable.Range(0, n).Select(_ => (long)rng.Next(vocab)).ToArray();
            if (forceId is long f && n > 0) ids[n / 2] = f;
            var mask = Enumerable.Range(0, n).Select(i => (long)(i % 2)).ToArray();
            w.Append(ids, mask);
        }
        w.Complete();
    }

    public static long[] RowIds(int row)
    {
        using var ds = PreparedDataset.Open(DataDir);
        return ds.GetRow(row).InputIds;
    }

    public static CausalLM LoadModel(ScalarType dtype) => CausalLM.LoadFromDirectory(ModelDir, dtype, torch.CPU);

    public static HiddenStateSpec Spec(ScalarType dtype, int? maxTokens = Context, TooLongPolicy tooLong = TooLongPolicy.Skip) =>
        HiddenStateSpec.ForVerifier(DefaultAux, NumLayers, Hidden, dtype, maxTokens, tooLong);

    /// <summary>Largest |a − b| divided by the largest |b| (both upcast to float64).</summary>
    public static double RelativeError(Tensor a, Tensor b)
    {
        using var scope = NewDisposeScope();
        var a64 = a.to(ScalarType.Float64);
        var b64 = b.to(ScalarType.Float64);
        double scale = b64.abs().max().item<double>();
        return a64.sub(b64).abs().max().item<double>() / Math.Max(scale, 1e-30);
    }

    /// <summary>Bitwise equality of two tensors of the same dtype and shape.</summary>
    public static bool Same(Tensor a, Tensor b)
    {
        if (a.dtype != b.dtype || !a.shape.SequenceEqual(b.shape)) return false;
        using var eq = a.eq(b);
        using var all = eq.all();
        return all.item<bool>();
    }

    /// <summary>All files of a directory tree with their sizes (to prove nothing was written).</summary>
    public static SortedDictionary<string, long> Snapshot(string dir) =>
        new(Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories).ToDictionary(f => Path.GetRelativePath(dir, f), f => new FileInfo(f).Length)
            : new Dictionary<string, long>(), StringComparer.Ordinal);
}
