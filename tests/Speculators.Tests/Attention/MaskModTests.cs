using Speculators.Attention;
using TorchSharp;
using static Speculators.Tests.Attention.AttentionReference;
using static TorchSharp.torch;

namespace Speculators.Tests.Attention;

public class MaskModTests
{
    // speculators tests/unit/models/test_eagle3_attention.py: document lengths [1, 2, 3].
    static readonly bool[,] SixBySix =
    {
        { true,  false, false, false, false, false },
        { false, true,  false, false, false, false },
        { false, true,  true,  false, false, false },
        { false, false, false, true,  false, false },
        { false, false, false, true,  true,  false },
        { false, false, false, true,  true,  true  },
    };

    [Fact]
    public void Eagle3BaseMaskIsTheSixBySixExample()
    {
        var mod = MaskMod.Eagle3(PackedDocs([1, 2, 3]));
        using var dense = mod.ToDense(6, 6);
        Assert.Equal(SixBySix, FromTensor(dense));
        foreach (var bs in new[] { 1, 2, 4, 128 })
        {
            using var bm = BlockMask.Create(mod, 6, 6, bs, bs);
            using var fromBlocks = bm.ToDense();
            Assert.Equal(SixBySix, FromTensor(fromBlocks));
        }
    }

    [Fact]
    public void TttExtensionAppendsTheDiagonalPerStep()
    {
        var docs = PackedDocs([1, 2, 3]);
        var mod = MaskMod.Eagle3(docs);
        using var step0 = BlockMask.Create(mod, 6, 6, 4, 4);
        using var step1 = step0.ExtendKv(12);
        using var step2 = step1.ExtendKv(18);
        // Expected: [base | I | I], each query sees its own position in every later step.
        var expected = new bool[6, 18];
        for (int i = 0; i < 6; i++)
        {
            for (int j = 0; j < 6; j++) expected[i, j] = SixBySix[i, j];
            expected[i, 6 + i] = true;
            expected[i, 12 + i] = true;
        }
        Assert.Equal(expected, FromTensor(step2.ToDense()));
        Assert.Equal(18, step2.KvLen);
        using var d1 = step1.ToDense();
        using var e1 = ToTensor(expected).narrow(1, 0, 12);
        Assert.True(Same(d1, e1));
    }

    [Fact]
    public void PaddingQueriesSeeOnlyThemselves()
    {
        var docs = PackedDocs([3, 2], padding: 3);
        using var dense = MaskMod.Eagle3(docs).ToDense(8, 16);
        var m = FromTensor(dense);
        for (int q = 5; q < 8; q++)
            for (int kv = 0; kv < 16; kv++)
                Assert.Equal(kv % 8 == q, m[q, kv]);
        // No row of the Eagle-3 mask is empty.
        for (int q = 0; q < 8; q++) Assert.Contains(Enumerable.Range(0, 16), kv => m[q, kv]);
    }

    public static TheoryData<int> Seeds => [1, 2, 3];

    [Theory]
    [MemberData(nameof(Seeds))]
    public void Eagle3MatchesTheSpecFormula(int seed)
    {
        var rng = new Random(seed);
        int L = rng.Next(20, 90);
        var docs = RandomDocs(rng, L, 25, padding: seed != 1);
        long? window = seed == 3 ? 7 : null;
        var mod = MaskMod.Eagle3(docs, window);
        for (int step = 0; step < 3; step++)
        {
            long kvLen = (step + 1L) * L;
            var expected = Dense(L, kvLen, (q, kv) => Eagle3(q, kv, docs, window));
            using var dense = mod.ToDense(L, kvLen);
            Assert.Equal(expected, FromTensor(dense));
        }
    }

    [Theory]
    [MemberData(nameof(Seeds))]
    public void DFlashMatchesTheSpecFormula(int seed)
    {
        var rng = new Random(seed);
        int L = rng.Next(30, 80), bs = 4, M = rng.Next(3, 8);
        var docs = RandomDocs(rng, L, 20, padding: true);
        // Anchors: sorted positions of real tokens, the tail padded with 0 (invalid anchors).
        var real = Enumerable.Range(0, L - bs).Where(i => docs[i] >= 0).OrderBy(_ => rng.Next()).Take(M - 1).Order().Select(i => (long)i).ToList();
        while (real.Count < M) real.Add(0);
        var anchors = real.ToArray();
        foreach (var (window, causal) in new (long?, bool)[] { (null, false), (null, true), (9, true) })
        {
            var mod = MaskMod.DFlash(anchors, docs, bs, window, causal);
            long qLen = M * bs, kvLen = L + M * bs;
            var expected = Dense(qLen, kvLen, (q, kv) => DFlash(q, kv, anchors, docs, bs, window, causal));
            using var dense = mod.ToDense(qLen, kvLen);
            Assert.Equal(expected, FromTensor(dense));
        }
    }

    [Fact]
    public void CombinatorsFollowBooleanAlgebra()
    {
        var a = MaskMod.Causal();
        var b = MaskMod.SlidingWindow(3);
        var c = MaskMod.KvRange(2, 7);
        using var da = a.ToDense(9, 9);
        using var db = b.ToDense(9, 9);
        using var dc = c.ToDense(9, 9);
        using var and = (a & b & c).ToDense(9, 9);
        using var or = (a | !b).ToDense(9, 9);
        using var expectAnd = da.logical_and(db).logical_and(dc);
        using var expectOr = da.logical_or(db.logical_not());
        Assert.True(Same(and, expectAnd));
        Assert.True(Same(or, expectOr));
        Assert.Equal(SixBySix, FromTensor(MaskMod.Causal().ToDense(6, 6).logical_and(MaskMod.Document(PackedDocs([1, 2, 3])).ToDense(6, 6))));
        Assert.Equal("!causal", (!MaskMod.Causal()).ToString());
        Assert.Equal("causal", (!!MaskMod.Causal()).ToString());
    }

    /// <summary>Masks whose Classify must be sound on arbitrary rectangles.</summary>
    static IEnumerable<(string name, MaskMod mod, long qLen, long kvLen)> ClassifiedMasks(Random rng)
    {
        int L = 70;
        var docs = RandomDocs(rng, L, 20, padding: true);
        var anchors = new long[] { 3, 10, 11, 30, 52, 0 };
        yield return ("causal", MaskMod.Causal(), L, L);
        yield return ("window", MaskMod.Causal() & MaskMod.SlidingWindow(9), L, L);
        yield return ("document", MaskMod.Document(docs), L, L + 5);
        yield return ("eagle3", MaskMod.Eagle3(docs), L, 3 * L);
        yield return ("eagle3-window", MaskMod.Eagle3(docs, 11), L, 3 * L);
        yield return ("not-eagle3", !MaskMod.Eagle3(docs), L, 2 * L);
        yield return ("ttt", MaskMod.TttDiagonal(13), 13, 50);
        yield return ("ranges", MaskMod.QRange(5, 40) | MaskMod.KvRange(20, 33), L, L);
        yield return ("dflash-bidir", MaskMod.DFlash(anchors, docs, 4), 24, L + 24);
        yield return ("dflash-causal-window", MaskMod.DFlash(anchors, docs, 4, 8, true), 24, L + 24);
        yield return ("all", MaskMod.All(), 10, 10);
        yield return ("none", MaskMod.None(), 10, 10);
    }

    [Fact]
    public void ClassifyNeverClaimsFullOrEmptyWrongly()
    {
        var rng = new Random(7);
        foreach (var (name, mod, qLen, kvLen) in ClassifiedMasks(rng))
        {
            var dense = FromTensor(mod.ToDense(qLen, kvLen));
            int decided = 0;
            for (int t = 0; t < 400; t++)
            {
                long q0 = rng.NextInt64(qLen), q1 = rng.NextInt64(q0 + 1, qLen + 1);
                long k0 = rng.NextInt64(kvLen), k1 = rng.NextInt64(k0 + 1, kvLen + 1);
                var kind = mod.Classify(q0, q1, k0, k1);
                if (kind == BlockKind.Partial) continue;
                decided++;
                for (long i = q0; i < q1; i++)
                    for (long j = k0; j < k1; j++)
                        Assert.True(dense[i, j] == (kind == BlockKind.Full), $"{name}: [{q0},{q1})x[{k0},{k1}) classified {kind} but ({i},{j}) = {dense[i, j]}");
            }
            Assert.True(decided > 0, $"{name}: no rectangle was ever decided; classification is useless");
        }
    }

    [Fact]
    public void PrimitiveClassificationOnKnownBlocks()
    {
        // Rectangles are [q0, q1) x [kv0, kv1). Both soundness (no wrong Full/Empty) and tightness
        // (obvious cases are decided) matter: the second keeps BlockMask building O(blocks).
        var doc = MaskMod.Document(PackedDocs([4, 4], padding: 2));    // 0 0 0 0 1 1 1 1 -1 -1
        Assert.Equal(BlockKind.Full, doc.Classify(4, 8, 4, 8));
        Assert.Equal(BlockKind.Partial, doc.Classify(4, 8, 6, 10));      // keys include padding
        Assert.Equal(BlockKind.Partial, doc.Classify(6, 10, 4, 8));      // queries include padding
        Assert.Equal(BlockKind.Empty, doc.Classify(8, 10, 0, 10));       // padding queries
        Assert.Equal(BlockKind.Empty, doc.Classify(0, 4, 4, 10));        // other document and padding
        Assert.Equal(BlockKind.Empty, doc.Classify(0, 4, 10, 20));       // keys past the ids
        Assert.Equal(BlockKind.Partial, doc.Classify(2, 6, 0, 4));

        var causal = MaskMod.Causal();
        Assert.Equal(BlockKind.Full, causal.Classify(8, 16, 0, 9));
        Assert.Equal(BlockKind.Partial, causal.Classify(8, 16, 0, 10));
        Assert.Equal(BlockKind.Empty, causal.Classify(8, 16, 16, 20));

        var window = MaskMod.SlidingWindow(4);                           // q - kv < 4
        Assert.Equal(BlockKind.Full, window.Classify(8, 10, 6, 12));
        Assert.Equal(BlockKind.Partial, window.Classify(8, 10, 5, 12));
        Assert.Equal(BlockKind.Empty, window.Classify(8, 10, 0, 5));

        var ttt = MaskMod.TttDiagonal(10);
        Assert.Equal(BlockKind.Partial, ttt.Classify(0, 4, 12, 16));      // keys 12..15 ≡ 2..5
        Assert.Equal(BlockKind.Empty, ttt.Classify(0, 2, 12, 20));        // ≡ 2..9
        Assert.Equal(BlockKind.Full, ttt.Classify(3, 4, 23, 24));
        Assert.Equal(BlockKind.Partial, ttt.Classify(0, 1, 5, 40));       // several copies

        var block = MaskMod.AnchorBlock(contextLen: 10, blockSize: 4, causal: false);
        Assert.Equal(BlockKind.Empty, block.Classify(0, 4, 0, 10));       // context keys
        Assert.Equal(BlockKind.Full, block.Classify(4, 8, 14, 18));       // anchor block 1 with itself
        Assert.Equal(BlockKind.Empty, block.Classify(4, 8, 18, 22));
        Assert.Equal(BlockKind.Partial, block.Classify(4, 8, 12, 16));
        var causalBlock = MaskMod.AnchorBlock(10, 4, causal: true);
        Assert.Equal(BlockKind.Partial, causalBlock.Classify(4, 8, 14, 18));
        Assert.Equal(BlockKind.Full, causalBlock.Classify(6, 8, 14, 16));

        // anchors 5 and 9 in document 0 (positions 0..7) and document 1 (8..11)
        var ctx = MaskMod.AnchorContext([5, 9], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1], blockSize: 4);
        Assert.Equal(BlockKind.Full, ctx.Classify(0, 4, 0, 5));
        Assert.Equal(BlockKind.Partial, ctx.Classify(0, 4, 0, 6));
        Assert.Equal(BlockKind.Empty, ctx.Classify(0, 4, 5, 12));
        Assert.Equal(BlockKind.Full, ctx.Classify(4, 8, 8, 9));
        Assert.Equal(BlockKind.Empty, ctx.Classify(8, 12, 0, 5));         // past the last anchor block

        var and = causal & doc;
        Assert.Equal(BlockKind.Full, and.Classify(4, 8, 4, 5));
        Assert.Equal(BlockKind.Empty, and.Classify(4, 8, 8, 10));
        Assert.Equal(BlockKind.Full, (and | ttt).Classify(4, 8, 4, 5));
        Assert.Equal(BlockKind.Empty, (!MaskMod.All()).Classify(0, 3, 0, 3));
    }

    [Fact]
    public void BlockMaskMetadataMatchesTheDenseMask()
    {
        var rng = new Random(11);
        foreach (var (name, mod, qLen, kvLen) in ClassifiedMasks(rng))
            foreach (var (bq, bkv) in new[] { (8, 8), (16, 8), (7, 32) })
            {
                using var bm = BlockMask.Create(mod, qLen, kvLen, bq, bkv);
                using var dense = mod.ToDense(qLen, kvLen);
                var d = FromTensor(dense);
                Assert.True(Same(bm.ToDense(), dense), $"{name} {bq}x{bkv}: block mask differs from the dense mask");
                for (int qb = 0; qb < bm.NumQBlocks; qb++)
                {
                    long q0 = (long)qb * bq, q1 = Math.Min(q0 + bq, qLen);
                    var full = bm.FullKvBlocks(qb);
                    var part = bm.PartialKvBlocks(qb);
                    Assert.Empty(full.Intersect(part));
                    for (int kb = 0; kb < bm.NumKvBlocks; kb++)
                    {
                        long k0 = (long)kb * bkv, k1 = Math.Min(k0 + bkv, kvLen);
                        bool any = false, all = k1 - k0 == bkv;
                        for (long i = q0; i < q1; i++)
                            for (long j = k0; j < k1; j++) { any |= d[i, j]; all &= d[i, j]; }
                        if (full.Contains(kb)) Assert.True(all, $"{name}: block ({qb},{kb}) listed full but is not");
                        else if (part.Contains(kb)) Assert.True(any && !all, $"{name}: block ({qb},{kb}) listed partial but is {(any ? "full" : "empty")}");
                        else Assert.False(any, $"{name}: block ({qb},{kb}) skipped but has visible pairs");
                    }
                }
            }
    }

    [Fact]
    public void ExtendKvEqualsBuildingFromScratch()
    {
        var rng = new Random(5);
        int L = 83;
        var docs = RandomDocs(rng, L, 30, padding: true);
        foreach (long? window in new long?[] { null, 10 })
        {
            var mod = MaskMod.Eagle3(docs, window);
            var extended = BlockMask.Create(mod, L, L, 16, 16);
            for (int step = 1; step < 3; step++)
            {
                var next = extended.ExtendKv((step + 1L) * L);
                extended.Dispose();
                extended = next;
                using var scratch = BlockMask.Create(mod, L, (step + 1L) * L, 16, 16);
                Assert.Equal(scratch.FullBlockCount, extended.FullBlockCount);
                Assert.Equal(scratch.PartialBlockCount, extended.PartialBlockCount);
                for (int qb = 0; qb < scratch.NumQBlocks; qb++)
                {
                    Assert.Equal(scratch.FullKvBlocks(qb), extended.FullKvBlocks(qb));
                    Assert.Equal(scratch.PartialKvBlocks(qb), extended.PartialKvBlocks(qb));
                    for (int j = 0; j < scratch.PartialKvBlocks(qb).Count; j++)
                        Assert.True(Same(scratch.PartialElementMask(qb, j), extended.PartialElementMask(qb, j)));
                }
                // Only the new key blocks (and the padded old last block) were classified again.
                Assert.True(extended.EvaluatedBlockCount < scratch.EvaluatedBlockCount);
            }
            extended.Dispose();
        }
    }

    [Fact]
    public void BuildingEvaluatesOnlyAFewBlocksForPackedDocuments()
    {
        // L = 2000 with ~20 documents, 3 TTT steps, 64-blocks: the grid has 32 × 94 blocks; only
        // blocks on the diagonal, on document edges or on the TTT diagonals are undecided.
        var rng = new Random(3);
        var docs = RandomDocs(rng, 2000, 200, padding: true);
        using var bm = BlockMask.Create(MaskMod.Eagle3(docs), 2000, 6000, 64, 64);
        long grid = (long)bm.NumQBlocks * bm.NumKvBlocks;
        Assert.True(bm.EvaluatedBlockCount * 8 < grid, $"{bm.EvaluatedBlockCount} of {grid} blocks evaluated element-wise");
        Assert.True(bm.Density < 0.25, bm.ToString());
        // Flex layout agrees with the per-block lists.
        var (kn, ki, fn, fi) = bm.ToFlexLayout();
        for (int qb = 0; qb < bm.NumQBlocks; qb++)
        {
            Assert.Equal(bm.PartialKvBlocks(qb).Count, kn[qb].item<int>());
            Assert.Equal(bm.FullKvBlocks(qb).Count, fn[qb].item<int>());
            Assert.Equal(bm.PartialKvBlocks(qb), ki[qb].data<int>().ToArray().Take(bm.PartialKvBlocks(qb).Count));
            Assert.Equal(bm.FullKvBlocks(qb), fi[qb].data<int>().ToArray().Take(bm.FullKvBlocks(qb).Count));
        }
    }

    [Fact]
    public void CustomMaskIsClassifiedByItsElements()
    {
        var mod = MaskMod.Custom((q, kv) => (q + kv).remainder(5).ne(0).logical_and(kv.le(q)), "odd-causal");
        using var bm = BlockMask.Create(mod, 40, 40, 8, 8);
        using var dense = mod.ToDense(40, 40);
        Assert.True(Same(bm.ToDense(), dense));
        Assert.Equal(40L * 40 / 64, bm.EvaluatedBlockCount);
        Assert.Equal(0, bm.FullBlockCount);                 // every causal block has a hole
        Assert.Equal(15, bm.PartialBlockCount);            // 5·6/2 lower-triangle blocks incl. diagonal
    }

    [Fact]
    public void BadArgumentsAreRejected()
    {
        Assert.Throws<ArgumentException>(() => MaskMod.Document([0, -2, 1]));
        Assert.Throws<ArgumentOutOfRangeException>(() => MaskMod.SlidingWindow(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => BlockMask.Create(MaskMod.Causal(), 0, 5));
        using var bm = BlockMask.Create(MaskMod.Causal(), 10, 10, 4, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => bm.ExtendKv(5));
        using var docs2d = tensor(new long[] { 0, 0, 1 }).view(1, 3);
        Assert.Equal("document(3)", MaskMod.Document(docs2d).ToString());
        using var bad = zeros(2, 3, dtype: ScalarType.Int64);
        Assert.Throws<ArgumentException>(() => MaskMod.Document(bad));
    }
}
