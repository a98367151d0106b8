using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Inference;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Inference;

/// <summary>The decoder with our real verifier models and Eagle-3 drafts.</summary>
public class ModelDecodingTests
{
    public ModelDecodingTests()
    {
        // Tiny models: libtorch's thread pool only adds overhead (and noise on a shared machine).
        if (torch.get_num_threads() != 1) torch.set_num_threads(1);
    }

    static string ReferenceVerifier => TestPaths.Data("reference_models", "llama_default");

    sealed record TraceStep(long[] Proposed, int Accepted, long[] Emitted);
    sealed record Trace(long[] Prompt, long[] Output, List<TraceStep> Steps);

    static (int K, int MaxNew, List<Trace> Traces) ReadTraces(string draft)
    {
        var root = JsonNode.Parse(File.ReadAllText(TestPaths.Data("reference_eagle3", draft, "trace.json")))!.AsObject();
        long[] L(JsonNode? n) => n!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        var traces = root["traces"]!.AsArray().Select(t => new Trace(L(t!["prompt"]), L(t["output"]),
            t["steps"]!.AsArray().Select(s => new TraceStep(L(s!["proposed"]), s["accepted"]!.GetValue<int>(), L(s["emitted"]))).ToList())).ToList();
        return (root["num_speculative_tokens"]!.GetValue<int>(), root["max_new_tokens"]!.GetValue<int>(), traces);
    }

    /// <summary>
    /// The reference traces (vLLM-style greedy chain decoding, k = 3, 16 new tokens, 3 prompts): every step's proposals,
    /// accepted count and emitted tokens, and the outputs — all three prompts decoded together in one batch.
    /// </summary>
    [Theory]
    [InlineData("draft_classic")]
    [InlineData("draft_head_defaults")]
    public void ReproducesTheReferenceTraces(string name)
    {
        var (k, maxNew, traces) = ReadTraces(name);
        using var verifier = CausalLmVerifier.Load(ReferenceVerifier, ScalarType.Float64, torch.CPU);
        using var draft = Eagle3Draft.Load(TestPaths.Data("reference_eagle3", name), verifier.Model, ScalarType.Float64, torch.CPU);
        Assert.Equal(k, draft.DefaultNumSpeculativeTokens);
        var prompts = traces.Select(t => (IReadOnlyList<long>)t.Prompt).ToArray();
        var run = new SpeculativeDecoder(verifier, draft).Generate(prompts,
            new GenerationOptions { MaxNewTokens = maxNew, NumSpeculativeTokens = k, BatchSize = prompts.Length, RecordSteps = true });
        for (int s = 0; s < traces.Count; s++)
        {
            var r = run.Results[s];
            Assert.Equal(traces[s].Output, r.Tokens);
            Assert.Equal(traces[s].Steps.Count, r.Steps!.Count);
            for (int i = 0; i < r.Steps.Count; i++)
            {
                var want = traces[s].Steps[i];
                Assert.True(want.Proposed.SequenceEqual(r.Steps[i].Proposed),
                    $"{name} prompt {s} step {i}: proposed [{string.Join(", ", r.Steps[i].Proposed)}], expected [{string.Join(", ", want.Proposed)}]");
                Assert.Equal(want.Accepted, r.Steps[i].Accepted);
                Assert.Equal(want.Emitted, r.Steps[i].Emitted);
            }
        }
        // Counters: one draft per step, k tokens each; accepted from the trace.
        Assert.Equal(traces.Sum(t => t.Steps.Count), run.Stats.NumDrafts);
        Assert.Equal(traces.Sum(t => t.Steps.Sum(x => x.Accepted)), run.Stats.NumAcceptedTokens);
    }

    static readonly long[][] Prompts = [[5, 9, 33, 200, 17, 4], [1, 2, 3], [250, 17, 4, 99, 64, 3, 128, 7, 7, 12], [42]];

    public static IEnumerable<object[]> Families() =>
        Enum.GetValues<ModelFamily>().Select(f => new object[] { f });

    static TinyModelOptions Tiny(ModelFamily f) => new()
    {
        Family = f,
        NumLayers = 4,
        HiddenSize = 32,
        IntermediateSize = 64,
        NumHeads = 4,
        NumKvHeads = 2,
        VocabSize = 300,
        MaxPositionEmbeddings = 128,
        SlidingWindow = f is ModelFamily.Mistral or ModelFamily.Qwen2 ? 8 : null,
        Seed = 17 + (int)f,
        InitStd = 0.2, // peaky distributions: outputs are not dominated by near-ties
        WriteTokenizer = false,
    };

    /// <summary>
    /// Greedy speculative decoding is lossless on fp32 tiny models of every supported family (sliding windows included):
    /// a random Eagle-3 draft (mostly rejected: rollbacks every step) and a perfect oracle (acceptance length exactly k + 1)
    /// both reproduce plain greedy decoding, four prompts of different lengths in one batch.
    /// </summary>
    [Theory]
    [MemberData(nameof(Families))]
    public void GreedySpeculativeDecodingIsLosslessForEveryFamily(ModelFamily family)
    {
        using var model = TinyModelFactory.CreateInMemory(Tiny(family));
        var verifier = new CausalLmVerifier(model);
        const int k = 3, maxNew = 1 + 4 * (k + 1);
        var o = new GenerationOptions { MaxNewTokens = maxNew, NumSpeculativeTokens = k, BatchSize = Prompts.Length, IgnoreEos = true };
        var prompts = Prompts.Select(p => (IReadOnlyList<long>)p).ToArray();
        var reference = SpeculativeDecoder.GeneratePlain(verifier, prompts, o with { MaxNewTokens = maxNew + k });
        using var weights = Eagle3VerifierWeights.FromModel(model);
        using var eagle = new Eagle3Draft(Eagle3Builder.FromVerifier(weights, Eagle3DraftOptions.HeadDefaults with { Seed = 3 }, null, "tiny"), ownsModel: true);
        using var oracle = new OracleDraft(OracleDraft.ReferencesFrom(prompts, reference), verifier.VocabSize);
        foreach (IDraftProposer draft in new IDraftProposer[] { eagle, oracle })
        {
            var spec = new SpeculativeDecoder(verifier, draft).Generate(prompts, o);
            for (int i = 0; i < prompts.Length; i++)
                Assert.True(reference.Results[i].Tokens[..maxNew].SequenceEqual(spec.Results[i].Tokens),
                    $"{family} with {draft.Name}, prompt {i}: [{string.Join(", ", spec.Results[i].Tokens)}] vs plain [{string.Join(", ", reference.Results[i].Tokens[..maxNew])}]");
            if (draft == oracle) Assert.Equal(k + 1, spec.Stats.MeanAcceptanceLength, 12);
        }
    }

    /// <summary>
    /// Batching on a real model (sliding-window Mistral): rows of different lengths, padded, finishing at different times,
    /// give the same tokens as one prompt at a time — plain, and speculative with partially right drafts.
    /// </summary>
    [Fact]
    public void BatchedEqualsOneAtATimeOnARealModel()
    {
        using var model = TinyModelFactory.CreateInMemory(Tiny(ModelFamily.Mistral));
        var verifier = new CausalLmVerifier(model);
        var prompts = Prompts.Select(p => (IReadOnlyList<long>)p).ToArray();
        // EOS = a token the model produces early for some prompts only, so rows finish at different times.
        var probe = SpeculativeDecoder.GeneratePlain(verifier, prompts, new GenerationOptions { MaxNewTokens = 12, BatchSize = 4 });
        long eos = probe.Results[0].Tokens[4];
        var o = new GenerationOptions { MaxNewTokens = 12, NumSpeculativeTokens = 3, EosTokenIds = new HashSet<long> { eos } };
        var plainBatched = SpeculativeDecoder.GeneratePlain(verifier, prompts, o with { BatchSize = 4 });
        var plainSingle = SpeculativeDecoder.GeneratePlain(verifier, prompts, o with { BatchSize = 1 });
        Assert.Contains(plainBatched.Results, r => r.FinishReason == FinishReason.Stop);
        var references = OracleDraft.ReferencesFrom(prompts, SpeculativeDecoder.GeneratePlain(verifier, prompts, o with { IgnoreEos = true, MaxNewTokens = 16, BatchSize = 4 }));
        GenerationRun Spec(int batch)
        {
            using var half = new OracleDraft(references, verifier.VocabSize, corruption: 0.4, seed: 9);
            return new SpeculativeDecoder(verifier, half).Generate(prompts, o with { BatchSize = batch });
        }
        var specBatched = Spec(4);
        var specSingle = Spec(1);
        for (int i = 0; i < prompts.Length; i++)
        {
            Assert.Equal(plainSingle.Results[i].Tokens, plainBatched.Results[i].Tokens);
            Assert.Equal(plainSingle.Results[i].Tokens, specBatched.Results[i].Tokens);
            Assert.Equal(plainSingle.Results[i].Tokens, specSingle.Results[i].Tokens);
        }
        Assert.InRange(specBatched.Stats.MeanAcceptanceLength, 1.2, 3.5);
    }

    /// <summary>
    /// KV-cache rollback: extend with wrong tokens, roll back, extend with the right ones — the logits equal a fresh forward
    /// of the whole sequence, per sequence, with rows of different lengths and rollback amounts in one batch.
    /// </summary>
    [Fact]
    public void RollbackLeavesNoTraceOfRejectedTokens()
    {
        using var model = TinyModelFactory.CreateInMemory(Tiny(ModelFamily.Qwen3));
        var verifier = new CausalLmVerifier(model);
        long[][] prefix = [[3, 4, 5, 6, 7], [9, 8]];
        long[][] wrong = [[100, 101, 102], [50]];
        long[][] right = [[11, 12], [13, 14, 15, 16]];
        using var session = verifier.StartSession(2, [1, 3]);
        using (session.Extend(prefix, lastOnly: true)) { }
        using (session.Extend(wrong, lastOnly: false)) { }
        Assert.Equal(new long[] { 8, 3 }, session.Lengths);
        session.Truncate([5, 2]);
        using var step = session.Extend(right, lastOnly: false);
        Assert.Equal(new long[] { 7, 6 }, session.Lengths);
        for (int b = 0; b < 2; b++)
        {
            var full = prefix[b].Concat(right[b]).ToArray();
            using var fresh = model.Forward(torch.tensor(full).unsqueeze(0), captureLayerIds: [1, 3]);
            int n = right[b].Length;
            using var expectLogits = fresh.Logits![0].narrow(0, prefix[b].Length, n);
            using var gotLogits = step.Logits[b].narrow(0, 0, n);
            Assert.True(torch.allclose(gotLogits, expectLogits, 1e-4, 1e-5), $"row {b} logits differ after rollback");
            using var expectAux = fresh.HiddenStates![0].narrow(0, prefix[b].Length, n).reshape(n, -1);
            using var gotAux = step.AuxHidden![b].narrow(0, 0, n);
            Assert.True(torch.allclose(gotAux, expectAux, 1e-4, 1e-5), $"row {b} hidden states differ after rollback");
        }
    }
}
