using Speculators.Algorithms.Eagle3;
using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>
/// The draft forward and the chain proposer against ../shared/data/reference_eagle3: first-pass logits from an
/// independent float64 implementation, and vLLM-style greedy speculative decoding traces (proposals of every
/// step) driven by the reference verifier.
/// </summary>
public class Eagle3ReferenceTests
{
    public Eagle3ReferenceTests() => TestTorch.SingleThreaded();

    [Theory]
    [InlineData(Eagle3Fixtures.Classic)]
    [InlineData(Eagle3Fixtures.HeadDefaults)]
    public void FirstPassLogitsMatchReference(string name)
    {
        using var scope = NewDisposeScope();
        using var verifier = CausalLM.LoadFromDirectory(Eagle3Fixtures.VerifierDir, ScalarType.Float64, torch.CPU);
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        using var draft = Eagle3Checkpoint.Load(Eagle3Fixtures.DraftDir(name), vw, ScalarType.Float64);
        var (_, _, traces) = Eagle3Fixtures.ReadTraces(name);
        var prompt = traces[0].Prompt;
        var aux = draft.Config.AuxLayerIds!;
        using var pre = verifier.Forward(torch.tensor(prompt).unsqueeze(0), captureLayerIds: aux, logits: LogitsSelection.Last);
        long sampled = pre.Logits![0, 0].argmax().item<long>();
        Assert.Equal(traces[0].Output[0], sampled);
        int t = prompt.Length;
        var hidden = draft.CombineAuxHidden(Eagle3Fixtures.AuxRows(pre, t)).unsqueeze(0);
        var embeds = draft.Embed(torch.tensor(prompt.Skip(1).Append(sampled).ToArray()).unsqueeze(0));
        using var backend = new SdpaAttentionBackend(null, null, 1, t);
        var x = draft.RunLayers(embeds, hidden, torch.arange(t, ScalarType.Int64).unsqueeze(0), backend);
        var (logits, _) = draft.Head(x);
        using var expected = SafeTensorsFile.Open(Path.Combine(Eagle3Fixtures.DraftDir(name), "expected_first_pass.safetensors"));
        ReferenceModelTests.AssertClose(expected.Load("draft_logits"), logits[0], 1e-5, $"{name} first-pass logits");
    }

    [Theory]
    [InlineData(Eagle3Fixtures.Classic)]
    [InlineData(Eagle3Fixtures.HeadDefaults)]
    public void BatchedChainProposalsReproduceEveryTraceStep(string name)
    {
        using var verifier = CausalLM.LoadFromDirectory(Eagle3Fixtures.VerifierDir, ScalarType.Float64, torch.CPU);
        using var vw = Eagle3VerifierWeights.FromModel(verifier);
        using var draft = Eagle3Checkpoint.Load(Eagle3Fixtures.DraftDir(name), vw, ScalarType.Float64);
        var (k, maxNew, traces) = Eagle3Fixtures.ReadTraces(name);
        // All three prompts (lengths 5, 8, 7) share one batched proposer.
        using var proposer = new Eagle3Proposer(draft, traces.Count);
        var results = Eagle3Fixtures.RunGreedy(verifier, proposer, draft.Config.AuxLayerIds!, traces, k, maxNew);
        for (int s = 0; s < traces.Count; s++)
        {
            var (output, steps) = results[s];
            var want = traces[s];
            Assert.Equal(want.Steps.Count, steps.Count);
            for (int i = 0; i < steps.Count; i++)
            {
                Assert.True(want.Steps[i].Proposed.SequenceEqual(steps[i].Proposed),
                    $"{name} prompt {s} step {i}: proposed [{string.Join(", ", steps[i].Proposed)}], expected [{string.Join(", ", want.Steps[i].Proposed)}]");
                Assert.Equal(want.Steps[i].Accepted, steps[i].Accepted);
                Assert.Equal(want.Steps[i].Emitted, steps[i].Emitted);
            }
            Assert.Equal(want.Output, output);
        }
    }
}
