using System.Globalization;
using Speculators.Data;
using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>Element kinds of checkpoint tensors.</summary>
public enum TensorKind
{
    /// <summary>Any float dtype (vLLM casts weights to the serving dtype on load).</summary>
    Float,
    /// <summary>int64 (<c>d2t</c>: vLLM loads it into an int64 parameter).</summary>
    Int64,
    /// <summary>bool (<c>t2d</c>).</summary>
    Bool,
}

/// <summary>One tensor an Eagle-3 checkpoint may hold.</summary>
/// <param name="Name">key in model.safetensors</param>
/// <param name="Shape">expected shape</param>
/// <param name="Kind">element kind</param>
/// <param name="Required">vLLM needs it (its loader does not report missing weights, so we do)</param>
/// <param name="Written">part of what we write (exactly these tensors)</param>
public sealed record ExpectedTensor(string Name, long[] Shape, TensorKind Kind, bool Required, bool Written)
{
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}

/// <summary>
/// The speculators checkpoint directory of an Eagle-3 draft: <c>config.json</c> + <c>model.safetensors</c>
/// (sharded with an index above 5 GB). <see cref="Save"/> writes exactly the tensors vLLM expects (bf16 floats
/// by default, <c>d2t</c> int64, <c>t2d</c> bool, both omitted when Vd == V), checks completeness before writing
/// and validates the result; every file is written atomically. <see cref="Load"/> reads ours, Python
/// speculators' and research checkpoints with <c>midlayer.</c> names, filling a missing embedding or lm_head
/// from the verifier (speculators.md §2.5).
/// </summary>
public static class Eagle3Checkpoint
{
    public const string WeightsFileName = "model.safetensors";

    /// <summary>
    /// Every tensor an Eagle-3 checkpoint with this config may hold (vLLM's parameter set,
    /// vllm_and_eagle_formats.md §3.1): names, shapes, kinds, whether vLLM needs it and whether we write it.
    /// </summary>
    public static IReadOnlyList<ExpectedTensor> ExpectedTensors(Eagle3SpeculatorConfig cfg, DecoderConfig dc)
    {
        long h = dc.HiddenSize, v = dc.VocabSize, vd = cfg.DraftVocabSize, t = cfg.AuxHiddenSize, a = cfg.NumAuxLayers;
        long q = (long)dc.NumHeads * dc.HeadDim, kv = (long)dc.NumKvHeads * dc.HeadDim, inter = dc.IntermediateSize;
        bool mapped = vd != v;
        var list = new List<ExpectedTensor>
        {
            new("embed_tokens.weight", [v, h], TensorKind.Float, Required: false, Written: true),
            new("fc.weight", [h, a * t], TensorKind.Float, true, true),
        };
        if (cfg.NormBeforeFc) list.Add(new("input_norm.weight", [a * t], TensorKind.Float, true, true));
        if (cfg.FcNorm)
            for (int i = 0; i < a; i++) list.Add(new($"fc_norm.{i}.weight", [t], TensorKind.Float, true, true));
        for (int layer = 0; layer < dc.NumLayers; layer++)
        {
            string p = $"layers.{layer}.";
            long inW = layer == 0 ? 2 * h : h;
            list.Add(new(p + "input_layernorm.weight", [h], TensorKind.Float, true, true));
            if (layer == 0) list.Add(new(p + "hidden_norm.weight", [h], TensorKind.Float, true, true));
            list.Add(new(p + "self_attn.q_proj.weight", [q, inW], TensorKind.Float, true, true));
            list.Add(new(p + "self_attn.k_proj.weight", [kv, inW], TensorKind.Float, true, true));
            list.Add(new(p + "self_attn.v_proj.weight", [kv, inW], TensorKind.Float, true, true));
            list.Add(new(p + "self_attn.o_proj.weight", [h, q], TensorKind.Float, true, true));
            if (dc.QkvBias)
            {
                list.Add(new(p + "self_attn.q_proj.bias", [q], TensorKind.Float, true, true));
                list.Add(new(p + "self_attn.k_proj.bias", [kv], TensorKind.Float, true, true));
                list.Add(new(p + "self_attn.v_proj.bias", [kv], TensorKind.Float, true, true));
            }
            if (dc.OProjBias) list.Add(new(p + "self_attn.o_proj.bias", [h], TensorKind.Float, true, true));
            if (dc.QkNorm)
            {
                list.Add(new(p + "self_attn.q_norm.weight", [dc.HeadDim], TensorKind.Float, true, true));
                list.Add(new(p + "self_attn.k_norm.weight", [dc.HeadDim], TensorKind.Float, true, true));
            }
            list.Add(new(p + "post_attention_layernorm.weight", [h], TensorKind.Float, true, true));
            list.Add(new(p + "mlp.gate_proj.weight", [inter, h], TensorKind.Float, true, true));
            list.Add(new(p + "mlp.up_proj.weight", [inter, h], TensorKind.Float, true, true));
            list.Add(new(p + "mlp.down_proj.weight", [h, inter], TensorKind.Float, true, true));
            if (dc.MlpBias)
            {
                list.Add(new(p + "mlp.gate_proj.bias", [inter], TensorKind.Float, true, true));
                list.Add(new(p + "mlp.up_proj.bias", [inter], TensorKind.Float, true, true));
                list.Add(new(p + "mlp.down_proj.bias", [h], TensorKind.Float, true, true));
            }
        }
        list.Add(new("norm.weight", [h], TensorKind.Float, true, true));
        list.Add(new("lm_head.weight", [vd, h], TensorKind.Float, Required: mapped, Written: true));
        list.Add(new("d2t", [vd], TensorKind.Int64, Required: mapped, Written: mapped));
        list.Add(new("t2d", [v], TensorKind.Bool, Required: false, Written: mapped));
        return list;
    }

    /// <summary>
    /// The key vLLM's Eagle-3 loader maps a checkpoint key to: <c>midlayer.</c> → <c>layers.0.</c> (official
    /// EAGLE-3 checkpoints). ModelOpt's <c>midlayer.{i}.</c> is kept as <c>layers.0.{i}.</c>, like vLLM's plain
    /// string replace, so such names are reported as unknown.
    /// </summary>
    public static string VllmKey(string key) => key.Replace("midlayer.", "layers.0.", StringComparison.Ordinal);

    /// <summary>Whether a safetensors dtype has the expected kind.</summary>
    public static bool KindMatches(SafeTensorsDType d, TensorKind kind) => kind switch
    {
        TensorKind.Float => d is SafeTensorsDType.F32 or SafeTensorsDType.BF16 or SafeTensorsDType.F16 or SafeTensorsDType.F64,
        TensorKind.Int64 => d == SafeTensorsDType.I64,
        TensorKind.Bool => d == SafeTensorsDType.BOOL,
        _ => false,
    };

    public static string KindText(TensorKind kind) => kind switch
    {
        TensorKind.Float => "a float dtype (BF16, F32, F16)",
        TensorKind.Int64 => "I64 (int64)",
        TensorKind.Bool => "BOOL",
        _ => kind.ToString(),
    };

    /// <summary>
    /// Writes <paramref name="model"/> to <paramref name="directory"/>: <c>model.safetensors</c> (floats in
    /// <paramref name="saveDtype"/>, bf16 by default; <c>d2t</c> int64 and <c>t2d</c> bool when Vd ≠ V) and
    /// <c>config.json</c> (dtype keys set to the saved dtype). The tensor set is checked against
    /// <see cref="ExpectedTensors"/> before anything is written, and the written directory is validated
    /// against vLLM's loader rules. Returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> Save(Eagle3DraftModel model, string directory, ScalarType saveDtype = ScalarType.BFloat16,
        long maxShardBytes = 5_000_000_000)
    {
        if (saveDtype is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16))
            throw new SpeculatorsException($"checkpoint dtype must be bfloat16, float32 or float16, found {saveDtype}.");
        var tensors = model.StateDictForSaving();
        CheckComplete(model, tensors);
        _ = model.VocabMapping(); // throws when d2t/t2d disagree
        Directory.CreateDirectory(directory);
        var written = new List<string>();
        using (var scope = NewDisposeScope())
        {
            var converted = tensors.Select(kv =>
            {
                var t = kv.Value.detach();
                if (t.is_floating_point() && t.dtype != saveDtype) t = t.to(saveDtype);
                return KeyValuePair.Create(kv.Key, t.cpu().contiguous());
            }).ToList();
            written.AddRange(SafeTensorsWriter.SaveSharded(directory, converted, maxShardBytes));
        }
        model.Config.SetDtype(DTypeName(saveDtype));
        model.Config.Save(directory);
        written.Add(SpeculatorModelConfig.FileName);
        SpeculatorsCheckpoint.Validate(directory).ThrowIfInvalid();
        return written;
    }

    /// <summary>HF's dtype name (<c>bfloat16</c>, <c>float32</c>, <c>float16</c>).</summary>
    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => throw new SpeculatorsException($"{t} is not a checkpoint float dtype."),
    };

    /// <summary>Throws unless <paramref name="tensors"/> are exactly the tensors we write for this model's config.</summary>
    static void CheckComplete(Eagle3DraftModel model, IReadOnlyList<KeyValuePair<string, Tensor>> tensors)
    {
        var expected = ExpectedTensors(model.Config, model.Decoder).Where(e => e.Written).ToDictionary(e => e.Name, StringComparer.Ordinal);
        var problems = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (name, t) in tensors)
        {
            seen.Add(name);
            if (!expected.TryGetValue(name, out var e))
            {
                problems.Add($"'{name}' is not part of an Eagle-3 checkpoint with this config (vLLM rejects unknown tensors)");
                continue;
            }
            if (!t.shape.SequenceEqual(e.Shape))
                problems.Add($"'{name}' has shape [{string.Join(", ", t.shape)}], expected {e.ShapeText}");
            bool kindOk = e.Kind switch
            {
                TensorKind.Float => t.is_floating_point(),
                TensorKind.Int64 => t.dtype == ScalarType.Int64,
                _ => t.dtype == ScalarType.Bool,
            };
            if (!kindOk) problems.Add($"'{name}' is {t.dtype}, expected {KindText(e.Kind)}");
        }
        foreach (var e in expected.Values)
            if (!seen.Contains(e.Name)) problems.Add($"'{e.Name}' {e.ShapeText} is missing");
        if (problems.Count > 0)
            throw new SpeculatorsException("cannot save the Eagle-3 checkpoint, its tensors are incomplete or wrong:\n  " + string.Join("\n  ", problems));
    }

    /// <summary>
    /// Loads an Eagle-3 checkpoint directory (ours, Python speculators', or with <c>midlayer.</c> names) into a
    /// draft of <paramref name="dtype"/> on <paramref name="device"/>. Unknown tensors, wrong shapes or dtypes
    /// and inconsistent <c>d2t</c>/<c>t2d</c> throw, naming the tensor and both values. A missing
    /// <c>embed_tokens</c> or <c>lm_head</c> is filled from <paramref name="verifier"/> (error without one);
    /// a missing <c>t2d</c> is rebuilt from <c>d2t</c>. With a verifier, aux ids absent from the config resolve
    /// to its defaults and the training targets (<c>verifier_norm</c>, <c>verifier_lm_head</c>) are attached.
    /// </summary>
    public static Eagle3DraftModel Load(string directory, Eagle3VerifierWeights? verifier = null, ScalarType dtype = ScalarType.Float32, Device? device = null)
    {
        var cfg = SpeculatorModelConfig.Load<Eagle3SpeculatorConfig>(directory);
        if (cfg.AuxLayerIds == null && verifier != null)
            cfg.AuxLayerIds = AuxLayerIds.Default(verifier.Config.NumLayers).ToList();
        var model = new Eagle3DraftModel(cfg, dtype, device ?? torch.CPU);
        try
        {
            LoadWeights(model, directory, verifier);
            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    static void LoadWeights(Eagle3DraftModel model, string directory, Eagle3VerifierWeights? verifier)
    {
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        var expected = ExpectedTensors(model.Config, model.Decoder).ToDictionary(e => e.Name, StringComparer.Ordinal);
        var fileKeyOf = new Dictionary<string, string>(StringComparer.Ordinal);
        var problems = new List<string>();
        foreach (var key in ckpt.Keys.Order(StringComparer.Ordinal))
        {
            string name = VllmKey(key);
            if (!expected.ContainsKey(name))
            {
                problems.Add($"unknown tensor '{key}'" + (name != key ? $" (read as '{name}')" : "") + " — not part of an Eagle-3 checkpoint with this config.json (vLLM rejects it)");
                continue;
            }
            if (!fileKeyOf.TryAdd(name, key))
                problems.Add($"tensors '{fileKeyOf[name]}' and '{key}' both map to '{name}'");
        }
        var targets = model.StateDictForSaving().ToDictionary(kv => kv.Key, kv => kv.Value, StringComparer.Ordinal);
        foreach (var (name, fileKey) in fileKeyOf)
        {
            var info = ckpt.Info(fileKey);
            var e = expected[name];
            if (!info.Shape.SequenceEqual(e.Shape))
                problems.Add($"'{fileKey}' has shape {info.ShapeText}, but config.json implies {e.ShapeText}");
            bool kindOk = e.Kind switch
            {
                TensorKind.Float => KindMatches(info.DType, TensorKind.Float),
                // Integer d2t / byte t2d load without loss; validate reports them as format problems.
                TensorKind.Int64 => info.DType is SafeTensorsDType.I64 or SafeTensorsDType.I32,
                _ => info.DType is SafeTensorsDType.BOOL or SafeTensorsDType.U8,
            };
            if (!kindOk) problems.Add($"'{fileKey}' is {info.DType.Name()}, expected {KindText(e.Kind)}");
            if (!targets.ContainsKey(name) && kindOk && info.Shape.SequenceEqual(e.Shape) && !IsIdentityMapping(ckpt, fileKey, name))
                problems.Add($"'{fileKey}' is not the identity, but draft_vocab_size {model.DraftVocabSize} equals vocab_size {model.TargetVocabSize} (the draft keeps every target id in order)");
        }
        // A missing embedding or lm_head is taken from the verifier below (speculators.md §2.5).
        var missing = expected.Values.Where(e => e.Required && !fileKeyOf.ContainsKey(e.Name) && e.Name is not ("embed_tokens.weight" or "lm_head.weight"))
            .Select(e => $"'{e.Name}' {e.ShapeText}").ToList();
        if (missing.Count > 0) problems.Add($"missing {string.Join(", ", missing)}");
        if (problems.Count > 0)
            throw new SpeculatorsException($"{ckpt.Source}: cannot load the Eagle-3 draft:\n  " + string.Join("\n  ", problems));

        using (torch.no_grad())
        {
            foreach (var (name, fileKey) in fileKeyOf)
            {
                if (name == "t2d" || name == "d2t") continue;
                ckpt.ReadInto(fileKey, targets[name], $"draft parameter '{name}'");
            }
            if (model.HasVocabMapping)
            {
                var d2t = ReadInt64(ckpt, fileKeyOf["d2t"]);
                bool[] t2d;
                if (fileKeyOf.TryGetValue("t2d", out var t2dKey))
                {
                    using var t = ckpt.Load(t2dKey);
                    using var b = t.to(ScalarType.Bool);
                    t2d = b.data<bool>().ToArray();
                }
                else
                {
                    t2d = T2DFromD2T(d2t, model.TargetVocabSize, ckpt.Source);
                }
                model.SetVocabMapping(new VocabMapping(d2t, t2d, $"{ckpt.Source} d2t/t2d"));
            }
        }

        bool needEmbed = !fileKeyOf.ContainsKey("embed_tokens.weight"), needHead = !fileKeyOf.ContainsKey("lm_head.weight");
        if ((needEmbed || needHead) && verifier == null)
            throw new SpeculatorsException(
                $"{ckpt.Source}: {string.Join(" and ", new[] { needEmbed ? "embed_tokens.weight" : null, needHead ? "lm_head.weight" : null }.Where(x => x != null))} " +
                "not in the checkpoint; they come from the verifier: pass it (--verifier).");
        if (verifier != null)
        {
            if (needEmbed || needHead) Eagle3Builder.CopyVerifierParts(model, verifier, needEmbed, needHead);
            model.AttachVerifier(verifier);
        }
        model.ApplyFreezing();
    }

    /// <summary>True for an all-zero d2t or an all-true t2d (what a full-vocabulary draft would hold).</summary>
    static bool IsIdentityMapping(SafeTensorsCheckpoint ckpt, string fileKey, string name)
    {
        using var t = ckpt.Load(fileKey);
        using var check = name == "d2t" ? t.to(ScalarType.Int64).eq(0).all() : t.to(ScalarType.Bool).all();
        return check.item<bool>();
    }

    static long[] ReadInt64(SafeTensorsCheckpoint ckpt, string key)
    {
        using var t = ckpt.Load(key);
        using var l = t.to(ScalarType.Int64);
        return l.data<long>().ToArray();
    }

    /// <summary>t2d rebuilt from d2t (target ids i + d2t[i] are the kept ones).</summary>
    public static bool[] T2DFromD2T(long[] d2t, int targetVocabSize, string source)
    {
        var t2d = new bool[targetVocabSize];
        for (int i = 0; i < d2t.Length; i++)
        {
            long target = i + d2t[i];
            if (target < 0 || target >= targetVocabSize)
                throw new SpeculatorsException(
                    $"{source}: d2t[{i}] = {d2t[i]} maps draft id {i} to target id {target.ToString(CultureInfo.InvariantCulture)}, outside the target vocabulary [0, {targetVocabSize}).");
            t2d[target] = true;
        }
        return t2d;
    }
}
