using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Algorithms.Eagle3;

/// <summary>The reference Eagle-3 drafts (../shared/data/reference_eagle3) and a greedy verification loop around them.</summary>
internal static class Eagle3Fixtures
{
    public const string Classic = "draft_classic";
    public const string HeadDefaults = "draft_head_defaults";

    public static string DraftDir(string name) => TestPaths.Data("reference_eagle3", name);
    public static string VerifierDir => TestPaths.Data("reference_models", "llama_default");

    public sealed record TraceStep(long[] Proposed, int Accepted, long[] Emitted);
    public sealed record Trace(long[] Prompt, long[] Output, List<TraceStep> Steps);

    public static (int K, int MaxNew, List<Trace> Traces) ReadTraces(string name)
    {
        var root = JsonNode.Parse(File.ReadAllText(Path.Combine(DraftDir(name), "trace.json")))!.AsObject();
        long[] L(JsonNode? n) => n!.AsArray().Select(x => x!.GetValue<long>()).ToArray();
        var traces = root["traces"]!.AsArray().Select(t => new Trace(
            L(t!["prompt"]), L(t["output"]),
            t["steps"]!.AsArray().Select(s => new TraceStep(L(s!["proposed"]), s["accepted"]!.GetValue<int>(), L(s["emitted"]))).ToList())).ToList();
        return (root["num_speculative_tokens"]!.GetValue<int>(), root["max_new_tokens"]!.GetValue<int>(), traces);
    }

    /// <summary>[n, A·H] aux states of a forward output (ascending capture ids, concatenated).</summary>
    public static Tensor AuxRows(ModelOutput output, int rows)
    {
        var hs = output.HiddenStates![0]; // [T, A, H]
        return hs.narrow(0, 0, rows).reshape(rows, -1);
    }

    sealed class Sequence
    {
        public required Trace Expected;
        public required KvCache Cache;
        public List<long> Output = [];
        public List<TraceStep> Steps = [];
        public long Length;
        public long Last;
        public bool Done;
    }

    /// <summary>
    /// Greedy chain speculative decoding as vLLM does it: verifier prefill with aux capture, then per step
    /// propose k, verify [last, d1..dk] in one verifier forward, accept while the draft matches the verifier's
    /// argmax, append the verifier's token at the first mismatch (or the bonus), roll the verifier cache back and
    /// tell the proposer which positions were verified. All sequences share one batched proposer.
    /// Returns the steps and outputs per sequence.
    /// </summary>
    public static List<(List<long> Output, List<TraceStep> Steps)> RunGreedy(CausalLM verifier, Eagle3Proposer proposer, IReadOnlyList<int> auxIds,
        IReadOnlyList<Trace> expected, int k, int maxNew)
    {
        var seqs = expected.Select(t => new Sequence { Expected = t, Cache = verifier.CreateCache(1) }).ToList();
        try
        {
            for (int s = 0; s < seqs.Count; s++)
            {
                using var scope = NewDisposeScope();
                var q = seqs[s];
                var prompt = q.Expected.Prompt;
                using var pre = verifier.Forward(torch.tensor(prompt).unsqueeze(0), cache: q.Cache, captureLayerIds: auxIds, logits: LogitsSelection.Last);
                long first = pre.Logits![0, 0].argmax().item<long>();
                q.Output.Add(first);
                q.Last = first;
                q.Length = prompt.Length;
                proposer.Observe(s, AuxRows(pre, prompt.Length), prompt.Skip(1).Append(first).ToArray(), 0);
            }
            while (seqs.Any(q => !q.Done))
            {
                var proposals = proposer.Propose(k);
                for (int s = 0; s < seqs.Count; s++)
                {
                    var q = seqs[s];
                    if (q.Done)
                    {
                        Assert.Empty(proposals[s]);
                        continue;
                    }
                    using var scope = NewDisposeScope();
                    var d = proposals[s];
                    Assert.Equal(k, d.Length);
                    long[] input = [q.Last, .. d];
                    using var ver = verifier.Forward(torch.tensor(input).unsqueeze(0), cache: q.Cache, captureLayerIds: auxIds);
                    var g = ver.Logits![0].argmax(-1).data<long>().ToArray();
                    int a = 0;
                    while (a < k && d[a] == g[a]) a++;
                    var emitted = d.Take(a).Append(g[a]).ToArray();
                    q.Cache.Truncate(q.Length + 1 + a);
                    proposer.Observe(s, AuxRows(ver, a + 1), emitted, q.Length);
                    q.Length += 1 + a;
                    q.Last = g[a];
                    q.Steps.Add(new TraceStep(d, a, emitted));
                    q.Output.AddRange(emitted);
                    if (q.Output.Count >= maxNew)
                    {
                        q.Done = true;
                        proposer.Reset(s);
                    }
                }
            }
            return seqs.Select(q => (q.Output, q.Steps)).ToList();
        }
        finally
        {
            foreach (var q in seqs) q.Cache.Dispose();
        }
    }

    /// <summary>Writes a copy of a checkpoint with tensors and config edited.</summary>
    public static string CopyCheckpoint(string source, string destination,
        Func<Dictionary<string, Tensor>, Dictionary<string, Tensor>>? editTensors = null, Action<JsonObject>? editConfig = null)
    {
        Directory.CreateDirectory(destination);
        var cfg = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!.AsObject();
        editConfig?.Invoke(cfg);
        File.WriteAllText(Path.Combine(destination, "config.json"), cfg.ToJsonString());
        using var scope = NewDisposeScope();
        using var f = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var tensors = f.LoadAll();
        if (editTensors != null) tensors = editTensors(tensors);
        SafeTensorsWriter.Save(Path.Combine(destination, "model.safetensors"), tensors);
        return destination;
    }
}
