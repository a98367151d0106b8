using System.Globalization;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;

namespace Speculators.Algorithms.Eagle3;

/// <summary>Eagle-3's entry in the speculators format registry (<c>speculators_model_type: "eagle3"</c>).</summary>
public sealed class Eagle3Algorithm : ISpeculatorAlgorithm
{
    public string ModelType => Eagle3SpeculatorConfig.ModelTypeName;

    public SpeculatorModelConfig CreateConfig() => new Eagle3SpeculatorConfig();

    public ValidationReport Validate(string checkpointDirectory, string? verifierDirectory) =>
        Eagle3Validator.Validate(checkpointDirectory, verifierDirectory);

    public SpeculatorSummary Summarize(string checkpointDirectory) => Summary(checkpointDirectory);

    /// <summary>
    /// What <c>speculators inspect</c> shows for an Eagle-3 checkpoint: algorithm, verifier, k, draft vocabulary,
    /// flags, aux ids, draft layers, RoPE, dtypes and parameter counts (from the safetensors headers).
    /// </summary>
    public static SpeculatorSummary Summary(string directory)
    {
        var cfg = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(directory);
        var dc = cfg.ResolveDecoderConfig();
        var style = cfg.LayerStyle;
        long total = 0, frozen = 0, files = 0, bytes = 0;
        var dtypes = new SortedSet<string>(StringComparer.Ordinal);
        bool hasMapping = false;
        if (SafeTensorsCheckpoint.Exists(directory))
        {
            using var ckpt = SafeTensorsCheckpoint.Open(directory);
            files = ckpt.Files.Count;
            foreach (var info in ckpt.AllInfos())
            {
                dtypes.Add(info.DType.Name());
                bytes += info.ByteLength;
                string name = Eagle3Checkpoint.VllmKey(info.Name);
                if (name is "d2t" or "t2d")
                {
                    hasMapping = true;
                    continue;
                }
                total += info.NumElements;
                if (name == "lm_head.weight" || (name == "embed_tokens.weight" && !cfg.EmbedRequiresGrad)) frozen += info.NumElements;
            }
        }
        var sc = cfg.SpeculatorsConfig;
        string ids = cfg.AuxLayerIds is { } a ? "[" + string.Join(", ", a) + "]" : "null (verifier default [2, N//2, N-3])";
        int slidingLayers = Enumerable.Range(0, dc.NumLayers).Count(i => dc.SlidingWindowFor(i) != null);
        string attention = slidingLayers == 0 ? "full attention" : $"sliding window {dc.SlidingWindow} on {slidingLayers} of {dc.NumLayers} layers";
        string flags = string.Join(", ",
            $"norm_before_residual={Lower(cfg.NormBeforeResidual)}", $"norm_before_fc={Lower(cfg.NormBeforeFc)}", $"fc_norm={Lower(cfg.FcNorm)}",
            $"norm_output={Lower(cfg.NormOutput)}", $"embed_requires_grad={Lower(cfg.EmbedRequiresGrad)}");
        string I(long x) => x.ToString("N0", CultureInfo.InvariantCulture);
        var lines = new List<(string, string)>
        {
            ("checkpoint", Path.GetFullPath(directory)),
            ("algorithm", $"eagle3 (speculators_version {cfg.SpeculatorsVersion ?? "unknown"}, architectures [{string.Join(", ", cfg.Architectures)}])"),
            ("verifier", $"{sc.Verifier.NameOrPath ?? "(none)"} [{string.Join(", ", sc.Verifier.Architectures)}]"),
            ("speculative tokens (k)", cfg.SpeculativeTokens.ToString(CultureInfo.InvariantCulture)),
            ("draft vocabulary", $"{I(cfg.DraftVocabSize)} of {I(dc.VocabSize)} target tokens" + (cfg.DraftVocabSize != dc.VocabSize ? (hasMapping ? " (d2t/t2d)" : " (d2t missing!)") : "")),
            ("aux layer ids", $"{ids} → fc [{dc.HiddenSize}, {cfg.NumAuxLayers}×{cfg.AuxHiddenSize}]"),
            ("flags", flags),
            ("draft layers", $"{dc.NumLayers} {(style == Eagle3LayerStyle.Qwen3 ? "qwen3" : "llama")} layer(s), hidden {dc.HiddenSize}, {dc.NumHeads} heads / {dc.NumKvHeads} kv heads × {dc.HeadDim}, intermediate {dc.IntermediateSize}, {attention}"),
            ("rope", $"{RopeConfig.TypeName(dc.Rope.Type)} (theta {dc.Rope.Theta.ToString("G", CultureInfo.InvariantCulture)}" +
                     (dc.Rope.Type != RopeType.Default ? $", factor {dc.Rope.Factor.ToString("G", CultureInfo.InvariantCulture)}" : "") + ")"),
            ("dtype", $"{cfg.DtypeName ?? "unspecified"} (weights: {(dtypes.Count > 0 ? string.Join(", ", dtypes) : "none found")})"),
            ("parameters", files == 0 ? "no weights found" : $"{I(total)} in {files} file(s), {bytes / 1e6:F1} MB: {I(total - frozen)} trained, {I(frozen)} frozen (embedding, lm_head)"),
        };
        var json = new JsonObject
        {
            ["checkpoint"] = Path.GetFullPath(directory),
            ["algorithm"] = "eagle3",
            ["speculators_version"] = cfg.SpeculatorsVersion,
            ["verifier"] = sc.Verifier.NameOrPath,
            ["verifier_architectures"] = new JsonArray(sc.Verifier.Architectures.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["speculative_tokens"] = cfg.SpeculativeTokens,
            ["draft_vocab_size"] = cfg.DraftVocabSize,
            ["vocab_size"] = dc.VocabSize,
            ["aux_layer_ids"] = cfg.AuxLayerIds is { } l ? new JsonArray(l.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()) : null,
            ["norm_before_residual"] = cfg.NormBeforeResidual,
            ["norm_before_fc"] = cfg.NormBeforeFc,
            ["fc_norm"] = cfg.FcNorm,
            ["norm_output"] = cfg.NormOutput,
            ["embed_requires_grad"] = cfg.EmbedRequiresGrad,
            ["layer_style"] = style == Eagle3LayerStyle.Qwen3 ? "qwen3" : "llama",
            ["num_layers"] = dc.NumLayers,
            ["hidden_size"] = dc.HiddenSize,
            ["rope_type"] = RopeConfig.TypeName(dc.Rope.Type),
            ["dtype"] = cfg.DtypeName,
            ["weight_dtypes"] = new JsonArray(dtypes.Select(x => (JsonNode)JsonValue.Create(x)).ToArray()),
            ["parameter_count"] = total,
            ["trainable_parameter_count"] = total - frozen,
            ["frozen_parameter_count"] = frozen,
        };
        return new SpeculatorSummary(lines, json);
    }

    static string Lower(bool b) => b ? "true" : "false";
}
