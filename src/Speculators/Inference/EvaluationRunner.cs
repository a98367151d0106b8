using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Algorithms.Eagle3;
using Speculators.Formats;
using Speculators.Hub;
using Speculators.Modeling;
using Speculators.Util;
using static TorchSharp.torch;

namespace Speculators.Inference;

/// <summary>Inputs of <c>speculators evaluate</c> (see <see cref="EvaluationRunner.Run"/>).</summary>
public sealed record EvaluationRequest
{
    /// <summary>Speculator checkpoint: a local directory or a Hugging Face id.</summary>
    public required string Speculator { get; init; }
    /// <summary>Verifier override; default: the checkpoint's <c>speculators_config.verifier.name_or_path</c> (relative paths against the current directory, as vLLM).</summary>
    public string? Verifier { get; init; }
    /// <summary>Prompt file (see <see cref="PromptFile"/>); or give <see cref="PromptList"/>.</summary>
    public string? Prompts { get; init; }
    /// <summary>Prompts given directly (instead of <see cref="Prompts"/>).</summary>
    public IReadOnlyList<PromptSpec>? PromptList { get; init; }
    /// <summary>k; default: the checkpoint's <c>speculative_tokens</c>.</summary>
    public int? NumSpeculativeTokens { get; init; }
    public int MaxNewTokens { get; init; } = 256;
    public double Temperature { get; init; }
    public long Seed { get; init; }
    public string Device { get; init; } = "cpu";
    public bool AllTurns { get; init; }
    public int BatchSize { get; init; } = 1;
    public bool IgnoreEos { get; init; }
    /// <summary>Verifier dtype: float32 (the lossless check is defined for it) or bfloat16.</summary>
    public ScalarType VerifierDtype { get; init; } = ScalarType.Float32;
    /// <summary>Draft dtype; default: the verifier's.</summary>
    public ScalarType? DraftDtype { get; init; }
    /// <summary>Only the first N prompts (null = all).</summary>
    public int? Limit { get; init; }
    /// <summary>Extra chat-template variables (e.g. {"enable_thinking": false}).</summary>
    public JsonObject? ChatTemplateKwargs { get; init; }
    /// <summary>For the report.</summary>
    public string? Command { get; init; }
}

/// <summary>A finished evaluation with its JSON report.</summary>
public sealed record EvaluationOutcome(EvaluationResult Result, JsonObject Report, string SpeculatorDirectory, string VerifierDirectory);

/// <summary>A loaded verifier and draft (see <see cref="EvaluationRunner.LoadPair"/>); disposing frees both.</summary>
public sealed class LoadedPair : IDisposable
{
    public required CausalLmVerifier Verifier { get; init; }
    public required IDraftProposer Draft { get; init; }
    public required string SpeculatorDirectory { get; init; }
    public required string VerifierDirectory { get; init; }
    /// <summary><c>speculators_model_type</c> of the checkpoint.</summary>
    public required string ModelType { get; init; }
    public required SpeculatorModelConfig Config { get; init; }

    public void Dispose()
    {
        Draft.Dispose();
        Verifier.Dispose();
    }
}

/// <summary>
/// <c>speculators evaluate</c> as a library call: resolves and checks the checkpoint and verifier (vLLM's loader rules and
/// the fit of hidden size / vocabulary / layer count, before anything is decoded), loads both, reads the prompts (too long
/// ones are reported before decoding), and runs <see cref="SpeculativeEvaluation"/>.
/// </summary>
public static class EvaluationRunner
{
    public static EvaluationOutcome Run(EvaluationRequest req)
    {
        if (req.MaxNewTokens < 1) throw new SpeculatorsException($"--max-new-tokens must be ≥ 1; got {req.MaxNewTokens}.");
        if (req.BatchSize < 1) throw new SpeculatorsException($"--batch-size must be ≥ 1; got {req.BatchSize}.");
        if (req.NumSpeculativeTokens is int kk && kk < 1) throw new SpeculatorsException($"--num-speculative-tokens must be ≥ 1; got {kk}.");
        if (req.Temperature < 0 || double.IsNaN(req.Temperature)) throw new SpeculatorsException($"--temperature must be ≥ 0; got {req.Temperature}.");
        var device = Devices.Parse(req.Device);
        if ((req.Prompts == null) == (req.PromptList == null))
            throw new SpeculatorsException("give either a prompt file (--prompts) or a prompt list, not both and not neither.");
        var (specDir, verifierDir, type, cfg) = Resolve(req.Speculator, req.Verifier);
        CheckCheckpoint(specDir, verifierDir);

        var prompts = req.PromptList ?? PromptFile.Load(req.Prompts!);
        if (req.Limit is int limit) prompts = prompts.Take(Math.Max(1, limit)).ToList();
        IPromptRenderer? renderer = prompts.Any(p => p.NeedsChatTemplate) ? ChatPromptRenderer.FromModelDirectory(verifierDir, req.ChatTemplateKwargs) : null;

        using var pair = Load(specDir, verifierDir, type, cfg, req.VerifierDtype, req.DraftDtype, device);
        var verifier = pair.Verifier;
        var draft = pair.Draft;
        int k = req.NumSpeculativeTokens ?? draft.DefaultNumSpeculativeTokens ?? 3;
        if (req.VerifierDtype != ScalarType.Float32 && req.Temperature < 1e-5)
            Log.Warn($"the verifier runs in {req.VerifierDtype}: the lossless check is defined for float32 (rounding can flip argmaxes between the two decodes).");

        var settings = new EvaluationSettings
        {
            NumSpeculativeTokens = k,
            MaxNewTokens = req.MaxNewTokens,
            Temperature = req.Temperature,
            Seed = req.Seed,
            BatchSize = req.BatchSize,
            IgnoreEos = req.IgnoreEos,
            EosTokenIds = EosTokenIds(verifierDir, renderer as ChatPromptRenderer),
            AllTurns = req.AllTurns,
        };
        var result = SpeculativeEvaluation.Run(verifier, draft, prompts, renderer, settings);
        var speculatorFacts = new JsonObject
        {
            ["speculators_model_type"] = type,
            ["speculative_tokens"] = draft.DefaultNumSpeculativeTokens,
            ["verifier_layer_ids"] = new JsonArray(draft.VerifierLayerIds.Select(i => (JsonNode)i).ToArray()),
            ["verifier_name_or_path"] = cfg.SpeculatorsConfig.Verifier.NameOrPath,
        };
        if (draft is Eagle3Draft e3)
        {
            var c = e3.Model.Config;
            speculatorFacts["draft_vocab_size"] = c.DraftVocabSize;
            speculatorFacts["norm_before_residual"] = c.NormBeforeResidual;
            speculatorFacts["norm_before_fc"] = c.NormBeforeFc;
            speculatorFacts["fc_norm"] = c.FcNorm;
            speculatorFacts["norm_output"] = c.NormOutput;
            speculatorFacts["num_layers"] = e3.Model.Decoder.NumLayers;
        }
        var report = EvaluationReport.ToJson(result, new EvaluationProvenance
        {
            Command = req.Command,
            SpeculatorPath = specDir,
            VerifierPath = verifierDir,
            PromptsPath = req.Prompts == null ? null : Path.GetFullPath(req.Prompts),
            Device = device.ToString(),
            MaxNewTokens = req.MaxNewTokens,
            Seed = req.Seed,
            BatchSize = req.BatchSize,
            IgnoreEos = req.IgnoreEos,
            AllTurns = req.AllTurns,
            Speculator = speculatorFacts,
        });
        report["verifier"] = verifier.Description;
        report["verifier_dtype"] = req.VerifierDtype.ToString().ToLowerInvariant();
        return new EvaluationOutcome(result, report, specDir, verifierDir);
    }

    /// <summary>
    /// Resolves a speculator checkpoint (directory or HF id) and its verifier: <paramref name="verifier"/> when given, else the
    /// checkpoint's <c>speculators_config.verifier.name_or_path</c> (a relative path from the current directory, as vLLM does).
    /// </summary>
    public static (string SpeculatorDirectory, string VerifierDirectory, string ModelType, SpeculatorModelConfig Config) Resolve(string speculator, string? verifier)
    {
        string specDir = ModelLocator.Resolve(speculator);
        string type = SpeculatorsCheckpoint.DetectModelType(specDir)
            ?? throw new SpeculatorsException($"--speculator {speculator}: {specDir} is not a speculator checkpoint (its config.json has no speculators_model_type).");
        var cfg = SpeculatorModelConfig.Load(specDir);
        string? verifierSpec = verifier ?? cfg.SpeculatorsConfig.Verifier.NameOrPath;
        if (string.IsNullOrWhiteSpace(verifierSpec))
            throw new SpeculatorsException($"{Path.Combine(specDir, "config.json")}: speculators_config.verifier.name_or_path is missing; pass --verifier.");
        try
        {
            return (specDir, ModelLocator.Resolve(verifierSpec), type, cfg);
        }
        catch (SpeculatorsException e) when (verifier == null)
        {
            throw new SpeculatorsException(
                $"the checkpoint's verifier '{verifierSpec}' (speculators_config.verifier.name_or_path; a relative path is taken from the current directory, as vLLM does) " +
                $"cannot be resolved: {e.Message} Pass --verifier.", e);
        }
    }

    /// <summary>
    /// Resolves, checks (<see cref="CheckCheckpoint"/>) and loads a speculator and its verifier, ready for
    /// <see cref="SpeculativeDecoder"/> or <see cref="SpeculativeEvaluation"/>.
    /// </summary>
    /// <param name="draftDtype">default: <paramref name="verifierDtype"/></param>
    public static LoadedPair LoadPair(string speculator, string? verifier, ScalarType verifierDtype, ScalarType? draftDtype, Device device)
    {
        var (specDir, verifierDir, type, cfg) = Resolve(speculator, verifier);
        CheckCheckpoint(specDir, verifierDir);
        return Load(specDir, verifierDir, type, cfg, verifierDtype, draftDtype, device);
    }

    static LoadedPair Load(string specDir, string verifierDir, string type, SpeculatorModelConfig cfg, ScalarType verifierDtype, ScalarType? draftDtype, Device device)
    {
        Log.Info($"loading verifier {verifierDir} ({verifierDtype}, {device})");
        var v = CausalLmVerifier.Load(verifierDir, verifierDtype, device);
        try
        {
            Log.Info($"loading speculator {specDir} ({type})");
            var d = LoadDraft(type, specDir, v.Model, draftDtype ?? verifierDtype, device);
            return new LoadedPair { Verifier = v, Draft = d, SpeculatorDirectory = specDir, VerifierDirectory = verifierDir, ModelType = type, Config = cfg };
        }
        catch
        {
            v.Dispose();
            throw;
        }
    }

    /// <summary>
    /// vLLM's loader rules and the verifier fit (hidden size, vocabulary, aux layer ids within its layers). Problems stop
    /// the evaluation before anything is loaded, except a missing <c>norm_before_residual</c>: vLLM serves such
    /// checkpoints with its default (true), and so do we.
    /// </summary>
    public static void CheckCheckpoint(string speculatorDir, string verifierDir)
    {
        var report = SpeculatorsCheckpoint.Validate(speculatorDir, verifierDir);
        var fatal = new List<CheckpointProblem>();
        foreach (var p in report.Problems)
        {
            if (p.Key == "norm_before_residual" && p.Message.StartsWith("missing", StringComparison.Ordinal))
                Log.Warn($"{Path.Combine(speculatorDir, p.File)}: norm_before_residual is missing; evaluating with vLLM's default (true).");
            else
                fatal.Add(p);
        }
        if (fatal.Count > 0)
            throw new SpeculatorsException(
                $"{speculatorDir}: the checkpoint does not pass `speculators validate` with verifier {verifierDir} " +
                $"({fatal.Count} problem{(fatal.Count > 1 ? "s" : "")}):\n  " + string.Join("\n  ", fatal));
    }

    /// <summary>The draft for a checkpoint of <paramref name="modelType"/> (<c>eagle3</c>; other algorithms plug in here).</summary>
    public static IDraftProposer LoadDraft(string modelType, string directory, CausalLM verifier, ScalarType dtype, Device device) => modelType switch
    {
        Eagle3SpeculatorConfig.ModelTypeName => Eagle3Draft.Load(directory, verifier, dtype, device),
        _ => throw new SpeculatorsException(
            $"{directory}: speculators_model_type '{modelType}' cannot be evaluated yet (supported: {Eagle3SpeculatorConfig.ModelTypeName})."),
    };

    /// <summary>
    /// Stop tokens as vLLM collects them: the tokenizer's EOS plus every <c>eos_token_id</c> of generation_config.json
    /// (and config.json when generation_config.json has none).
    /// </summary>
    public static IReadOnlySet<long> EosTokenIds(string modelDir, ChatPromptRenderer? renderer = null)
    {
        var ids = new HashSet<long>();
        if (renderer?.Tokenizer.EosTokenId is int t) ids.Add(t);
        else if (File.Exists(Path.Combine(modelDir, "tokenizer.json")))
        {
            try
            {
                if (Text.HfTokenizer.Load(modelDir).EosTokenId is int e) ids.Add(e);
            }
            catch (SpeculatorsException ex)
            {
                Log.Warn($"{modelDir}: tokenizer not loaded for its EOS token ({ex.Message}).");
            }
        }
        bool fromGeneration = AddEos(Path.Combine(modelDir, "generation_config.json"), ids);
        if (!fromGeneration) AddEos(Path.Combine(modelDir, "config.json"), ids);
        return ids;
    }

    static bool AddEos(string file, HashSet<long> ids)
    {
        if (!File.Exists(file)) return false;
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(File.ReadAllText(file))?["eos_token_id"];
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{file}: not valid JSON ({e.Message}).");
        }
        switch (node)
        {
            case JsonValue v when v.TryGetValue(out long id):
                ids.Add(id);
                return true;
            case JsonArray a:
                foreach (var x in a)
                    if (x is JsonValue xv && xv.TryGetValue(out long xi)) ids.Add(xi);
                return a.Count > 0;
            default:
                return false;
        }
    }
}
