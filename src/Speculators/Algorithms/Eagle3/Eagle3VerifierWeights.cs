using Speculators.Formats;
using Speculators.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Algorithms.Eagle3;

/// <summary>
/// The three verifier tensors an Eagle-3 draft borrows (speculators' <c>load_verifier_weights</c>): the token
/// embedding [V, H], the lm_head [V, H] (the embedding when tied) and the final norm [H], with the verifier's
/// resolved config. From a loaded <see cref="CausalLM"/> (no copy) or straight from a model directory
/// (only these tensors are read, so a trainer with offline hidden states never loads the whole verifier).
/// </summary>
public sealed class Eagle3VerifierWeights : IDisposable
{
    readonly bool _owns;

    public DecoderConfig Config { get; }
    /// <summary>The verifier's <c>architectures</c> (written to <c>speculators_config.verifier</c>).</summary>
    public IReadOnlyList<string> Architectures { get; }
    /// <summary>Directory or description, for messages.</summary>
    public string Source { get; }
    public Tensor EmbedTokens { get; }
    public Tensor LmHead { get; }
    public Tensor FinalNorm { get; }

    Eagle3VerifierWeights(DecoderConfig config, IReadOnlyList<string> architectures, string source, Tensor embed, Tensor lmHead, Tensor norm, bool owns)
    {
        Config = config;
        Architectures = architectures;
        Source = source;
        EmbedTokens = embed;
        LmHead = lmHead;
        FinalNorm = norm;
        _owns = owns;
    }

    /// <summary>Views of a loaded verifier's tensors (the model must outlive this object).</summary>
    public static Eagle3VerifierWeights FromModel(CausalLM verifier) => new(
        verifier.Config,
        verifier.HfConfig?.Architectures is { Count: > 0 } a ? a.ToList() : [verifier.Config.Family.Architecture()],
        verifier.SourceDirectory ?? verifier.Config.Family.Architecture(),
        verifier.model.embed_tokens.weight, verifier.LmHeadWeight, verifier.model.norm.weight, owns: false);

    static readonly string[] EmbedCandidates =
    [
        "model.embed_tokens.weight", "model.language_model.embed_tokens.weight", "language_model.model.embed_tokens.weight",
        "model.model.embed_tokens.weight", "embed_tokens.weight", "tok_embeddings.weight", "llm.embed.weight",
    ];
    static readonly string[] LmHeadCandidates = ["lm_head.weight", "language_model.lm_head.weight", "model.lm_head.weight", "output.weight", "llm.unembed.weight"];
    static readonly string[] NormCandidates = ["model.norm.weight", "model.language_model.norm.weight", "language_model.model.norm.weight", "model.model.norm.weight", "norm.weight"];

    static string? FindKey(SafeTensorsCheckpoint ckpt, string[] candidates, string suffix)
    {
        foreach (var c in candidates)
            if (ckpt.Contains(c)) return c;
        var bySuffix = ckpt.Keys.Where(k => k.EndsWith(suffix, StringComparison.Ordinal)).ToList();
        return bySuffix.Count == 1 ? bySuffix[0] : null;
    }

    /// <summary>
    /// Reads the embedding, lm_head (embedding when tied or absent) and final norm from a verifier directory,
    /// as float tensors of <paramref name="dtype"/> on the CPU, with shapes checked against its config.json.
    /// </summary>
    public static Eagle3VerifierWeights FromDirectory(string directory, ScalarType dtype = ScalarType.Float32)
    {
        var hf = HfConfig.Load(directory);
        var dc = hf.ToDecoderConfig();
        var archs = hf.Architectures is { Count: > 0 } a ? a.ToList() : [dc.Family.Architecture()];
        using var ckpt = SafeTensorsCheckpoint.Open(directory);
        string embedKey = FindKey(ckpt, EmbedCandidates, "embed_tokens.weight")
            ?? throw new SpeculatorsException($"{ckpt.Source}: no token embedding (model.embed_tokens.weight) in the verifier's weights.");
        string normKey = FindKey(ckpt, NormCandidates, ".norm.weight")
            ?? throw new SpeculatorsException($"{ckpt.Source}: no final norm (model.norm.weight) in the verifier's weights.");
        string? headKey = dc.TieWordEmbeddings ? null : LmHeadCandidates.FirstOrDefault(ckpt.Contains);
        if (!dc.TieWordEmbeddings && headKey == null)
            throw new SpeculatorsException($"{ckpt.Source}: no lm_head.weight although config.json says tie_word_embeddings is false.");
        Tensor Read(string key, long[] shape)
        {
            var info = ckpt.Info(key);
            if (!info.Shape.SequenceEqual(shape))
                throw new SpeculatorsException($"{ckpt.FileOf(key)}: '{key}' has shape {info.ShapeText}; the verifier's config.json implies [{string.Join(", ", shape)}].");
            return ckpt.Load(key, dtype);
        }
        var embed = Read(embedKey, [dc.VocabSize, dc.HiddenSize]);
        var head = headKey == null ? embed.alias() : Read(headKey, [dc.VocabSize, dc.HiddenSize]);
        var norm = Read(normKey, [dc.HiddenSize]);
        return new Eagle3VerifierWeights(dc, archs, Path.GetFullPath(directory), embed, head, norm, owns: true);
    }

    /// <summary>lm_head rows of <paramref name="targetIds"/> [Vd] (the draft vocabulary in draft order): [Vd, H].</summary>
    public Tensor LmHeadRows(Tensor targetIds)
    {
        using var ids = targetIds.to(ScalarType.Int64, LmHead.device);
        return LmHead.index_select(0, ids);
    }

    public void Dispose()
    {
        if (!_owns) return;
        EmbedTokens.Dispose();
        LmHead.Dispose();
        FinalNorm.Dispose();
    }
}
