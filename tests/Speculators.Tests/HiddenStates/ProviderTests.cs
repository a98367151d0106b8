using Speculators.Data;
using Speculators.HiddenStates;
using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.HiddenStates;

public class ProviderTests
{
    public ProviderTests() => HsFixtures.SingleThreaded();

    static readonly int[] AllRows = Enumerable.Range(0, HsFixtures.Lengths.Length).ToArray();

    static VerifierIdentity Verifier() => VerifierIdentity.FromDirectory(HsFixtures.ModelDir);

    static void Offline(string output, ScalarType dtype, long batchTokens = 64, int? maxSamples = null)
    {
        var old = Log.Writer;
        Log.Writer = TextWriter.Null;
        try
        {
            HiddenStateDatagen.Run(new DatagenOptions
            {
                ModelDirectory = HsFixtures.ModelDir, DataPath = HsFixtures.DataDir, OutputDirectory = output,
                DType = dtype, BatchTokens = batchTokens, MaxSamples = maxSamples,
            });
        }
        finally
        {
            Log.Writer = old;
        }
    }

    static (string Log, T Result) Capture<T>(Func<T> f)
    {
        var old = Log.Writer;
        var w = new StringWriter();
        Log.Writer = w;
        try
        {
            var r = f();
            return (w.ToString(), r);
        }
        finally
        {
            Log.Writer = old;
        }
    }

    static void DisposeAll(IEnumerable<HiddenStateSample?> samples)
    {
        foreach (var s in samples) s?.Dispose();
    }

    [Fact]
    public async Task OnlineGenerationEqualsTheOfflineFilesAndWritesNothing()
    {
        using var dir = new TempDir();
        string store = dir.File("hidden_states");
        Offline(store, ScalarType.Float32);
        var before = HsFixtures.Snapshot(dir.Path);
        var dataBefore = HsFixtures.Snapshot(HsFixtures.DataDir);

        using var data = PreparedDataset.Open(HsFixtures.DataDir);
        var spec = HiddenStateStore.ResolveSpec(store, Verifier(), null);
        using var files = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { StoreDirectory = store });
        using var model = HsFixtures.LoadModel(ScalarType.Float32);
        // Another batching than datagen used (all rows in one prefill), so agreement is not a replay of the same arithmetic.
        var generator = new HiddenStateGenerator(model, spec, batchTokens: 1 << 20);
        using var online = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { OnMissing = OnMissing.Generate }, generator, ownsGenerator: true);

        var fromFiles = await files.GetAsync(AllRows);
        var generated = await online.GetAsync(AllRows);
        try
        {
            for (int i = 0; i < AllRows.Length; i++)
            {
                Assert.Equal(SampleOrigin.File, fromFiles[i]!.Origin);
                Assert.Equal(SampleOrigin.Generated, generated[i]!.Origin);
                Assert.Equal(fromFiles[i]!.TokenIds, generated[i]!.TokenIds);
                Assert.True(HsFixtures.RelativeError(generated[i]!.Hidden, fromFiles[i]!.Hidden) < 1e-5, $"row {i}");
            }
        }
        finally
        {
            DisposeAll(fromFiles);
            DisposeAll(generated);
        }
        Assert.Equal(AllRows.Length, files.Stats.Loaded);
        Assert.Equal(AllRows.Length, online.Stats.Generated);
        Assert.Equal(1, generator.Prefills); // the request's rows shared one padded prefill
        Assert.Equal(0, online.Stats.Cached);
        Assert.Equal(before, HsFixtures.Snapshot(dir.Path));
        Assert.Equal(dataBefore, HsFixtures.Snapshot(HsFixtures.DataDir));
    }

    [Fact]
    public async Task HybridModeGeneratesMissingRowsOnceAndCachesThemToTheStore()
    {
        using var dir = new TempDir();
        string store = dir.File("hidden_states");
        Offline(store, ScalarType.BFloat16, maxSamples: 4); // rows 0..3 exist, the rest are missing
        using var data = PreparedDataset.Open(HsFixtures.DataDir);
        var verifier = Verifier();
        var spec = HiddenStateStore.ResolveSpec(store, verifier, null);
        using var model = HsFixtures.LoadModel(ScalarType.BFloat16);
        using var hybrid = new HiddenStateProvider(data, spec,
            new HiddenStateProviderOptions { StoreDirectory = store, OnMissing = OnMissing.Generate, OnGenerate = OnGenerate.Cache, Verifier = verifier },
            new HiddenStateGenerator(model, spec), ownsGenerator: true);

        var epoch0 = await hybrid.GetAsync(AllRows);
        Assert.Equal(4, hybrid.Stats.Loaded);
        Assert.Equal(AllRows.Length - 4, hybrid.Stats.Generated);
        Assert.Equal(AllRows.Length - 4, hybrid.Stats.Cached);
        Assert.All(AllRows, r => Assert.True(File.Exists(HiddenStateFile.PathFor(store, r))));

        var epoch1 = await hybrid.GetAsync(AllRows);
        try
        {
            Assert.Equal(4 + AllRows.Length, hybrid.Stats.Loaded);
            Assert.Equal(AllRows.Length - 4, hybrid.Stats.Generated);
            for (int i = 0; i < AllRows.Length; i++)
            {
                Assert.Equal(SampleOrigin.File, epoch1[i]!.Origin);
                Assert.True(HsFixtures.Same(epoch0[i]!.Hidden, epoch1[i]!.Hidden), $"row {i}");
            }
        }
        finally
        {
            DisposeAll(epoch0);
            DisposeAll(epoch1);
        }
    }

    [Fact]
    public async Task MissingAndInvalidFilesFollowThePolicyAndAreCountedWithTheirPath()
    {
        using var dir = new TempDir();
        string store = dir.File("hs");
        Offline(store, ScalarType.BFloat16, maxSamples: 6);
        File.WriteAllText(HiddenStateFile.PathFor(store, 2), "broken");
        File.Copy(HiddenStateFile.PathFor(store, 0), HiddenStateFile.PathFor(store, 1), overwrite: true); // row 0's tokens under row 1
        using var data = PreparedDataset.Open(HsFixtures.DataDir);
        var spec = HiddenStateStore.ResolveSpec(store, Verifier(), null);
        int[] rows = [0, 1, 2, 3, 7];

        using var raise = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { StoreDirectory = store });
        var e = await Assert.ThrowsAsync<SpeculatorsException>(async () => await raise.GetAsync(rows));
        Assert.Contains(HiddenStateFile.PathFor(store, 7), e.Message);

        foreach (var policy in new[] { OnMissing.Skip, OnMissing.Warn })
        {
            using var p = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { StoreDirectory = store, OnMissing = policy });
            var (log, got) = Capture(() => p.GetAsync(rows).AsTask().GetAwaiter().GetResult());
            try
            {
                Assert.Equal(new[] { true, false, false, true, false }, got.Select(s => s != null));
                Assert.Equal(2, p.Stats.Loaded);
                Assert.Equal(1, p.Stats.Skipped(HiddenStateSkipReason.TokenMismatch));
                Assert.Equal(1, p.Stats.Skipped(HiddenStateSkipReason.Unreadable));
                Assert.Equal(1, p.Stats.Skipped(HiddenStateSkipReason.Missing));
                Assert.Contains("token mismatch 1", p.Stats.Summary());
                Assert.Contains(HiddenStateFile.PathFor(store, 1), log);
                Assert.Contains(HiddenStateFile.PathFor(store, 2), log);
                Assert.Equal(policy == OnMissing.Warn, log.Contains(HiddenStateFile.PathFor(store, 7), StringComparison.Ordinal));
            }
            finally
            {
                DisposeAll(got);
            }
        }
    }

    [Fact]
    public async Task RowsLongerThanTheStoreContextAreSkippedWithoutReadingFiles()
    {
        using var data = PreparedDataset.Open(HsFixtures.DataDir);
        var spec = HsFixtures.Spec(ScalarType.BFloat16, maxTokens: 10);
        using var dir = new TempDir();
        using var p = new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { StoreDirectory = dir.Path, OnMissing = OnMissing.Skip });
        var got = await p.GetAsync(AllRows);
        Assert.All(got, Assert.Null);
        Assert.Equal(HsFixtures.Lengths.Count(n => n > 10), p.Stats.Skipped(HiddenStateSkipReason.TooLong));
        Assert.Equal(HsFixtures.Lengths.Count(n => n <= 10), p.Stats.Skipped(HiddenStateSkipReason.Missing));
    }

    [Fact]
    public void OnlineModeNeedsAGeneratorAndCachingNeedsAStore()
    {
        using var data = PreparedDataset.Open(HsFixtures.DataDir);
        var spec = HsFixtures.Spec(ScalarType.BFloat16);
        Assert.Contains("verifier", Assert.Throws<SpeculatorsException>(() =>
            new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { OnMissing = OnMissing.Generate })).Message);
        Assert.Contains("store", Assert.Throws<SpeculatorsException>(() =>
            new HiddenStateProvider(data, spec, new HiddenStateProviderOptions { OnMissing = OnMissing.Raise })).Message);
    }

    /// <summary>Returns one fake sample per row (value = row) once the test opens the gate; counts overlapping calls.</summary>
    sealed class GatedProvider : IHiddenStateProvider
    {
        int _active, _started;
        public int MaxActive;
        public int Started => Volatile.Read(ref _started);
        public readonly SemaphoreSlim Gate = new(0);
        public HiddenStateSpec Spec { get; } = HiddenStateSpec.ForVerifier([1], 2, 4, ScalarType.Float32);
        public HiddenStateProviderStats Stats { get; } = new();
        public readonly List<HiddenStateSample> Created = new();

        public async ValueTask<HiddenStateSample?[]> GetAsync(IReadOnlyList<int> rowIndices, CancellationToken cancellation = default)
        {
            Interlocked.Increment(ref _started);
            int now = Interlocked.Increment(ref _active);
            lock (Created) MaxActive = Math.Max(MaxActive, now);
            await Gate.WaitAsync(CancellationToken.None);
            Interlocked.Decrement(ref _active);
            var result = rowIndices.Select(r => (HiddenStateSample?)new HiddenStateSample(r, [r], torch.full(new long[] { 1, 2, 4 }, r, ScalarType.Float32), SampleOrigin.Generated)).ToArray();
            lock (Created) Created.AddRange(result!);
            return result;
        }

        public void Dispose() => Gate.Dispose();
    }

    static List<IReadOnlyList<int>> Schedule(int batches) => Enumerable.Range(0, batches).Select(b => (IReadOnlyList<int>)new[] { 2 * b, 2 * b + 1 }).ToList();

    [Fact]
    public async Task PrefetcherKeepsAtMostMaxInFlightCallsAndDeliversInScheduleOrder()
    {
        using var provider = new GatedProvider();
        await using var p = new HiddenStatePrefetcher(provider, Schedule(8), maxInFlight: 3);
        var first = p.NextAsync();                   // starts batches 0, 1, 2 and waits for 0
        Assert.True(SpinWait.SpinUntil(() => provider.Started == 3, TimeSpan.FromSeconds(30)));
        Assert.Equal(2, p.InFlight);                 // 1 and 2 are queued behind the one being awaited
        Assert.False(first.IsCompleted);
        provider.Gate.Release(1000);                 // everything may finish now, in any order
        for (int b = 0; b < 8; b++)
        {
            using var batch = b == 0 ? await first : await p.NextAsync();
            Assert.Equal(b, batch!.Index);
            Assert.Equal(new[] { 2 * b, 2 * b + 1 }, batch.Rows);
            Assert.Equal(new[] { 2L * b, 2L * b + 1 }, batch.Samples.Select(s => s!.TokenIds[0]));
            Assert.Equal(2f * b + 1, batch.Samples[1]!.Hidden[0, 0, 0].item<float>());
            Assert.True(p.InFlight <= 3);
        }
        Assert.Null(await p.NextAsync());
        Assert.InRange(provider.MaxActive, 1, 3);
        Assert.Equal(8, provider.Started);
    }

    [Fact]
    public async Task DisposingThePrefetcherDisposesBatchesNobodyTook()
    {
        using var provider = new GatedProvider();
        provider.Gate.Release(1000);
        await using (var p = new HiddenStatePrefetcher(provider, Schedule(8), maxInFlight: 3))
        {
            for (int b = 0; b < 3; b++)
                using (await p.NextAsync()) { }
        }
        Assert.InRange(provider.Created.Count, 6, 16);
        Assert.All(provider.Created, s => Assert.True(s.Hidden.IsInvalid));
    }
}
