using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// vLLM's loader rules for Eagle-3 speculator checkpoints (vllm_and_eagle_formats.md §1–3), as a library
/// function returning every problem: required config fields, no top-level <c>model_type</c>, explicit
/// <c>norm_before_residual</c>, tensor names / shapes / dtypes, strictness (no unknown tensors; missing ones
/// are reported because vLLM would run silently with uninitialized weights), <c>d2t</c>/<c>t2d</c>
/// consistency, and, given the verifier, the fit (hidden size, vocabulary, aux ids within its layers).
/// Settings that the reference vLLM (9aaf83ef5) does not serve are listed separately (DESIGN.md §4).
/// </summary>
public static class Eagle3Validator
{
    const string ConfigFile = SpeculatorModelConfig.FileName;
    const string ReferenceVllm = "vLLM 9aaf83ef5";

    /// <summary>Validates a checkpoint directory; <paramref name="verifierDirectory"/> (a local model directory) adds the fit checks.</summary>
    public static ValidationReport Validate(string directory, string? verifierDirectory = null)
    {
        string dir = Path.GetFullPath(directory);
        var report = new ValidationReport(dir, verifierDirectory == null ? null : Path.GetFullPath(verifierDirectory));
        string configPath = Path.Combine(dir, ConfigFile);
        if (!File.Exists(configPath))
        {
            report.Add(ConfigFile, "", "missing: a speculator checkpoint needs config.json next to model.safetensors");
            return report;
        }
        string text = File.ReadAllText(configPath);
        JsonObject? raw = null;
        try
        {
            raw = JsonNode.Parse(text) as JsonObject;
        }
        catch (JsonException)
        {
            // TryParse reports it.
        }
        if (raw != null && raw.TryGetPropertyValue("model_type", out var mt) && !(mt is JsonValue mv && mv.TryGetValue<string>(out var ms) && ms == "speculators"))
            report.Add(ConfigFile, "model_type",
                $"top-level model_type {SpeculatorsJson.Show(mt)} must not be present: vLLM then loads the directory as a plain model of that type instead of a speculator (speculators strips it when saving)");

        var issues = new ConfigIssues(ConfigFile);
        var cfg = SpeculatorModelConfig.TryParse(text, configPath, issues) as Eagle3SpeculatorConfig;
        report.Problems.AddRange(issues.Problems);
        if (cfg == null) return report;
        CheckConfig(cfg, report);
        if (cfg.TransformerLayerConfig == null) return report;
        DecoderConfig dc;
        try
        {
            _ = cfg.LayerStyle;
            dc = cfg.ResolveDecoderConfig();
        }
        catch (SpeculatorsException e)
        {
            report.Add(ConfigFile, SpeculatorModelConfig.TransformerLayerConfigKey, e.Message);
            return report;
        }
        CheckDecoder(cfg, dc, report);
        if (cfg.DraftVocabSize <= 0 || cfg.DraftVocabSize > dc.VocabSize) return report; // shapes depend on it; already reported
        CheckTensors(dir, cfg, dc, report);
        if (verifierDirectory != null) CheckVerifier(verifierDirectory, dir, cfg, dc, report);
        return report;
    }

    static void CheckConfig(Eagle3SpeculatorConfig cfg, ValidationReport r)
    {
        var missing = cfg.MissingKeys;
        if (missing.Contains("norm_before_residual"))
            r.Add(ConfigFile, "norm_before_residual",
                "missing: vLLM defaults it to true, speculators' config class to false (and the EAGLE-3 reference behaviour is false), so it must be written explicitly");
        if (missing.Contains("speculators_config"))
        {
            r.Add(ConfigFile, "speculators_config", "missing: vLLM requires speculators_config with proposal_methods[0].speculative_tokens and verifier.name_or_path");
        }
        else
        {
            var sc = cfg.SpeculatorsConfig;
            if (missing.Contains("speculators_config.proposal_methods") || sc.ProposalMethods.Count == 0)
                r.Add(ConfigFile, "speculators_config.proposal_methods", "missing or empty: vLLM reads proposal_methods[0].speculative_tokens as num_speculative_tokens");
            else
            {
                if (missing.Contains("speculators_config.proposal_methods[0].speculative_tokens"))
                    r.Add(ConfigFile, "speculators_config.proposal_methods[0].speculative_tokens", "missing: vLLM requires it (num_speculative_tokens)");
                else if (sc.ProposalMethods[0].SpeculativeTokens < 1)
                    r.Add(ConfigFile, "speculators_config.proposal_methods[0].speculative_tokens", $"must be at least 1, found {sc.ProposalMethods[0].SpeculativeTokens}");
                if (!sc.ProposalMethods.Any(p => p.ProposalType == sc.DefaultProposalMethod))
                    r.Add(ConfigFile, "speculators_config.default_proposal_method",
                        $"'{sc.DefaultProposalMethod}' is not the proposal_type of any proposal method (found: {string.Join(", ", sc.ProposalMethods.Select(p => "'" + p.ProposalType + "'"))})");
            }
            if (missing.Contains("speculators_config.verifier") || missing.Contains("speculators_config.verifier.name_or_path") || sc.Verifier.NameOrPath == null)
                r.Add(ConfigFile, "speculators_config.verifier.name_or_path",
                    "missing or null: vLLM requires it (`vllm serve <draft>` serves this model as the target)");
            if (!missing.Contains("speculators_config.algorithm") && sc.Algorithm != Eagle3SpeculatorConfig.ModelTypeName)
                r.Add(ConfigFile, "speculators_config.algorithm", $"is '{sc.Algorithm}' but speculators_model_type is '{Eagle3SpeculatorConfig.ModelTypeName}'");
            else if (missing.Contains("speculators_config.algorithm"))
                r.Add(ConfigFile, "speculators_config.algorithm", $"missing: expected \"{Eagle3SpeculatorConfig.ModelTypeName}\"");
        }
        if (missing.Contains("draft_vocab_size"))
            r.Notes.Add("draft_vocab_size is missing: vLLM then uses the full target vocabulary (vocab_size)");
        if (cfg.FcNorm) r.NewerVllm.Add(new VllmRequirement("fc_norm=true", $"fc_norm.{{i}} weights need a vLLM with fc_norm support (later than {ReferenceVllm})"));
        if (cfg.NormOutput) r.NewerVllm.Add(new VllmRequirement("norm_output=true", $"feeding the post-norm hidden state back needs a vLLM with norm_output support (later than {ReferenceVllm}); older ones ignore the flag and draft worse"));
        if (cfg.AuxLayerIds is { } ids)
        {
            for (int i = 1; i < ids.Count; i++)
                if (ids[i] <= ids[i - 1])
                {
                    r.Add(ConfigFile, "eagle_aux_hidden_state_layer_ids",
                        $"must be unique and ascending (vLLM concatenates captured states in layer order), found [{string.Join(", ", ids)}]");
                    break;
                }
            if (ids.Count == 0) r.Add(ConfigFile, "eagle_aux_hidden_state_layer_ids", "is empty; list the verifier layer ids feeding fc, or omit the key");
            else if (ids.Count != Eagle3SpeculatorConfig.DefaultAuxCount)
                r.NewerVllm.Add(new VllmRequirement($"eagle_aux_hidden_state_layer_ids with {ids.Count} ids",
                    $"{ReferenceVllm} sizes fc for exactly 3 aux states; later vLLM (qwen3_eagle3.py) takes the count from the ids"));
        }
        else
        {
            r.Notes.Add("eagle_aux_hidden_state_layer_ids is null: vLLM captures the verifier's default layers (2, N//2, N-3)");
        }
    }

    static void CheckDecoder(Eagle3SpeculatorConfig cfg, DecoderConfig dc, ValidationReport r)
    {
        const string T = SpeculatorModelConfig.TransformerLayerConfigKey;
        if (cfg.DraftVocabSize <= 0 || cfg.DraftVocabSize > dc.VocabSize)
            r.Add(ConfigFile, "draft_vocab_size", $"must be in [1, {dc.VocabSize}] ({T}.vocab_size, the target vocabulary), found {cfg.DraftVocabSize}");
        if (cfg.LayerStyle == Eagle3LayerStyle.Qwen3)
            r.NewerVllm.Add(new VllmRequirement($"{T}.model_type=qwen3",
                $"q_norm/k_norm draft layers need a vLLM with qwen3_eagle3.py (Eagle3Qwen3ForCausalLM); {ReferenceVllm} rejects them as unexpected weights"));
        if (dc.HiddenAct != "silu")
            r.Add(ConfigFile, $"{T}.hidden_act", $"vLLM's Llama/Qwen3 MLP supports only silu, found '{dc.HiddenAct}'");
        if (cfg.TargetHiddenSize is int th && th <= 0)
            r.Add(ConfigFile, "target_hidden_size", $"must be a positive integer or null, found {th}");
        int sliding = Enumerable.Range(0, dc.NumLayers).Count(i => dc.SlidingWindowFor(i) != null);
        if (sliding > 0)
            r.Notes.Add($"{sliding} of {dc.NumLayers} draft layer(s) use sliding-window attention (window {dc.SlidingWindow}); it matters only for contexts longer than the window");
    }

    sealed record Present(string FileKey, string File, SafeTensorInfo Info);

    static void CheckTensors(string dir, Eagle3SpeculatorConfig cfg, DecoderConfig dc, ValidationReport r)
    {
        if (!SafeTensorsCheckpoint.Exists(dir))
        {
            r.Add(Eagle3Checkpoint.WeightsFileName, "", "missing: no model.safetensors or model.safetensors.index.json");
            return;
        }
        SafeTensorsCheckpoint ckpt;
        try
        {
            ckpt = SafeTensorsCheckpoint.Open(dir);
        }
        catch (SpeculatorsException e)
        {
            r.Add(Eagle3Checkpoint.WeightsFileName, "", e.Message);
            return;
        }
        using (ckpt)
        {
            var expected = Eagle3Checkpoint.ExpectedTensors(cfg, dc).ToDictionary(e => e.Name, StringComparer.Ordinal);
            var present = new Dictionary<string, Present>(StringComparer.Ordinal);
            bool renamed = false;
            foreach (var key in ckpt.Keys.Order(StringComparer.Ordinal))
            {
                string file = Path.GetFileName(ckpt.FileOf(key));
                SafeTensorInfo info;
                try
                {
                    info = ckpt.Info(key);
                }
                catch (SpeculatorsException e)
                {
                    r.Add(file, key, e.Message);
                    continue;
                }
                string name = Eagle3Checkpoint.VllmKey(key);
                renamed |= name != key;
                if (!expected.TryGetValue(name, out var e2))
                {
                    r.Add(file, key, UnknownMessage(key, name, cfg));
                    continue;
                }
                if (present.TryGetValue(name, out var other))
                {
                    r.Add(file, key, $"maps to '{name}' like '{other.FileKey}' (vLLM would load one over the other)");
                    continue;
                }
                present[name] = new Present(key, file, info);
                if (!info.Shape.SequenceEqual(e2.Shape))
                    r.Add(file, key, $"shape {info.ShapeText}, expected {e2.ShapeText}{ShapeReason(name, cfg, dc)}");
                if (!Eagle3Checkpoint.KindMatches(info.DType, e2.Kind))
                    r.Add(file, key, $"dtype {info.DType.Name()}, expected {Eagle3Checkpoint.KindText(e2.Kind)}{(name == "d2t" ? " (vLLM loads d2t into an int64 parameter)" : "")}");
            }
            if (renamed) r.Notes.Add("'midlayer.' tensor names are read as 'layers.0.' (vLLM does the same)");
            foreach (var e in expected.Values.Where(e => e.Required && !present.ContainsKey(e.Name)))
                r.Add(Eagle3Checkpoint.WeightsFileName, e.Name,
                    $"missing ({e.ShapeText}): vLLM does not report missing weights and would run with uninitialized values" +
                    (e.Name is "lm_head.weight" or "d2t" ? $" (draft_vocab_size {cfg.DraftVocabSize} < vocab_size {dc.VocabSize} needs the draft's own lm_head and d2t)" : ""));
            if (!present.ContainsKey("embed_tokens.weight"))
                r.Notes.Add("no embed_tokens.weight: vLLM uses the verifier's embedding");
            if (!present.ContainsKey("lm_head.weight") && cfg.DraftVocabSize == dc.VocabSize)
                r.Notes.Add("no lm_head.weight: vLLM uses the verifier's lm_head (draft_vocab_size = vocab_size)");
            CheckVocabMapping(ckpt, present, cfg, dc, r);
        }
    }

    static string UnknownMessage(string key, string name, Eagle3SpeculatorConfig cfg)
    {
        string reason = name switch
        {
            _ when name.StartsWith("verifier_", StringComparison.Ordinal) => "a training-only tensor that is never saved",
            "input_norm.weight" => "present but norm_before_fc is false: vLLM skips it, so the draft would be served without the norm it may have been trained with",
            _ when name.StartsWith("fc_norm.", StringComparison.Ordinal) && !cfg.FcNorm => "present but fc_norm is false",
            _ when name.StartsWith("fc_norm.", StringComparison.Ordinal) => $"fc_norm has one weight per aux state (fc_norm.0 .. fc_norm.{cfg.NumAuxLayers - 1})",
            "fc.bias" => "fc has no bias in vLLM's Eagle-3 (ReplicatedLinear without bias)",
            _ when key.StartsWith("midlayer.", StringComparison.Ordinal) => "ModelOpt's multi-layer 'midlayer.{i}.' names do not map to vLLM's 'layers.{i}.'",
            _ when name.StartsWith("model.", StringComparison.Ordinal) => "speculators checkpoint keys have no 'model.' prefix (vLLM adds it)",
            _ => "not an Eagle-3 draft parameter for this config",
        };
        return $"unknown tensor ({reason}); vLLM's loader raises \"There is no module or parameter named ...\" for any unexpected tensor";
    }

    static string ShapeReason(string name, Eagle3SpeculatorConfig cfg, DecoderConfig dc)
    {
        return name switch
        {
            "fc.weight" => $" = [hidden_size {dc.HiddenSize}, {cfg.NumAuxLayers} aux states × {cfg.AuxHiddenSize}]",
            "input_norm.weight" => $" = [{cfg.NumAuxLayers} aux states × {cfg.AuxHiddenSize}]",
            "lm_head.weight" => $" = [draft_vocab_size {cfg.DraftVocabSize}, hidden_size {dc.HiddenSize}]",
            "embed_tokens.weight" => $" = [vocab_size {dc.VocabSize}, hidden_size {dc.HiddenSize}]",
            "d2t" => $" = [draft_vocab_size {cfg.DraftVocabSize}]",
            "t2d" => $" = [vocab_size {dc.VocabSize}]",
            _ when name.StartsWith("layers.0.self_attn.", StringComparison.Ordinal) && name.EndsWith("_proj.weight", StringComparison.Ordinal) && !name.Contains("o_proj", StringComparison.Ordinal)
                => $" (layer 0 takes [embedding | hidden] = 2 × {dc.HiddenSize} inputs)",
            _ => "",
        };
    }

    static void CheckVocabMapping(SafeTensorsCheckpoint ckpt, Dictionary<string, Present> present, Eagle3SpeculatorConfig cfg, DecoderConfig dc, ValidationReport r)
    {
        bool OkFor(string name, TensorKind kind, long length) =>
            present.TryGetValue(name, out var p) && Eagle3Checkpoint.KindMatches(p.Info.DType, kind) && p.Info.Shape.Length == 1 && p.Info.Shape[0] == length;
        int vd = cfg.DraftVocabSize, v = dc.VocabSize;
        long[]? d2t = null;
        if (OkFor("d2t", TensorKind.Int64, vd))
        {
            var p = present["d2t"];
            using var t = ckpt.Load(p.FileKey);
            d2t = t.data<long>().ToArray();
            long prev = -1;
            for (int i = 0; i < d2t.Length; i++)
            {
                long target = i + d2t[i];
                if (target < 0 || target >= v)
                {
                    r.Add(p.File, "d2t", $"d2t[{i}] = {d2t[i]} maps draft id {i} to target id {target}, outside the target vocabulary [0, {v})");
                    d2t = null;
                    break;
                }
                if (target <= prev)
                {
                    r.Add(p.File, "d2t", $"target ids must be strictly ascending: draft id {i - 1} → {prev}, draft id {i} → {target} (d2t[{i}] = {d2t[i]})");
                    d2t = null;
                    break;
                }
                prev = target;
            }
        }
        if (OkFor("t2d", TensorKind.Bool, v))
        {
            var p = present["t2d"];
            using var t = ckpt.Load(p.FileKey);
            var t2d = t.data<bool>().ToArray();
            int trues = t2d.Count(b => b);
            if (trues != vd)
                r.Add(p.File, "t2d", $"has {trues} true entries but draft_vocab_size is {vd} (d2t has {vd} entries); they must be equal");
            else if (d2t != null)
            {
                int draft = 0;
                for (int target = 0; target < v; target++)
                {
                    if (!t2d[target]) continue;
                    long mapped = draft + d2t[draft];
                    if (mapped != target)
                    {
                        r.Add(p.File, "t2d",
                            $"disagrees with d2t: draft id {draft} maps to target id {mapped} (d2t[{draft}] = {d2t[draft]}), but the {draft}-th kept target id in t2d is {target}");
                        break;
                    }
                    draft++;
                }
            }
        }
    }

    static void CheckVerifier(string verifierDirectory, string dir, Eagle3SpeculatorConfig cfg, DecoderConfig dc, ValidationReport r)
    {
        string vfile = Path.Combine(verifierDirectory, "config.json");
        HfConfig hf;
        DecoderConfig vc;
        try
        {
            hf = HfConfig.Load(verifierDirectory);
            vc = hf.ToDecoderConfig();
        }
        catch (SpeculatorsException e)
        {
            r.Add("verifier", "", e.Message);
            return;
        }
        if (cfg.AuxHiddenSize != vc.HiddenSize)
            r.Add(ConfigFile, cfg.TargetHiddenSize != null ? "target_hidden_size" : "transformer_layer_config.hidden_size",
                $"{cfg.AuxHiddenSize} does not match the verifier's hidden_size {vc.HiddenSize} ({vfile}); fc takes the verifier's aux states");
        if (dc.VocabSize != vc.VocabSize)
            r.Add(ConfigFile, "transformer_layer_config.vocab_size", $"{dc.VocabSize} does not match the verifier's vocab_size {vc.VocabSize} ({vfile})");
        var ids = cfg.AuxLayerIds;
        if (ids == null)
        {
            if (vc.NumLayers < 4)
                r.Add(ConfigFile, "eagle_aux_hidden_state_layer_ids", $"null, and the verifier has only {vc.NumLayers} layers (the default (2, N//2, N-3) needs N ≥ 4)");
            else if (cfg.NumAuxLayers != 3)
                r.Add(ConfigFile, "eagle_aux_hidden_state_layer_ids", "null, but fc is not sized for the 3 default layers");
        }
        else
        {
            foreach (var id in ids)
                if (id < 1 || id > vc.NumLayers - 1)
                    r.Add(ConfigFile, "eagle_aux_hidden_state_layer_ids",
                        $"layer id {id} is outside [1, {vc.NumLayers - 1}] for the verifier's {vc.NumLayers} layers (id k is the input of layer k; N is appended by data generation, never listed)");
        }
        bool needsShared = !WeightsHave(dir, "embed_tokens.weight") || (cfg.DraftVocabSize == dc.VocabSize && !WeightsHave(dir, "lm_head.weight"));
        if (needsShared && dc.HiddenSize != vc.HiddenSize)
            r.Add(ConfigFile, "transformer_layer_config.hidden_size",
                $"{dc.HiddenSize} differs from the verifier's {vc.HiddenSize}, but the checkpoint relies on the verifier's embedding/lm_head");
        var archs = cfg.SpeculatorsConfig.Verifier.Architectures;
        if (hf.Architectures is { Count: > 0 } va && archs.Count > 0 && !archs.SequenceEqual(va))
            r.Notes.Add($"speculators_config.verifier.architectures [{string.Join(", ", archs)}] differ from the verifier's [{string.Join(", ", va)}]");
        if (cfg.SpeculatorsConfig.Verifier.NameOrPath is string np)
            r.Notes.Add($"`vllm serve <checkpoint>` serves speculators_config.verifier.name_or_path = '{np}' as the target; check that it is this verifier");
    }

    static bool WeightsHave(string dir, string name)
    {
        try
        {
            using var ckpt = SafeTensorsCheckpoint.Open(dir);
            return ckpt.Keys.Any(k => Eagle3Checkpoint.VllmKey(k) == name);
        }
        catch (SpeculatorsException)
        {
            return false;
        }
    }
}
