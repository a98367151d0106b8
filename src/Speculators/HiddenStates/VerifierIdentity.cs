using System.Security.Cryptography;
using System.Text;
using Speculators.Formats;
using Speculators.Modeling;

namespace Speculators.HiddenStates;

/// <summary>
/// What a hidden-state store must agree with about its verifier: the name it was given as, its shape
/// (layers, hidden size, vocabulary, context) and a fingerprint of its weights.
/// </summary>
/// <param name="Name">the model argument as the user gave it (HF id or path); informational, paths differ between machines</param>
/// <param name="Fingerprint">"sha256:…" over a few small weight tensors (see <see cref="ComputeFingerprint"/>), or null</param>
public sealed record VerifierIdentity(string Name, int NumHiddenLayers, int HiddenSize, int VocabSize, int MaxPositionEmbeddings, string? Fingerprint)
{
    /// <summary>
    /// Reads config.json and fingerprints the weights of <paramref name="modelDirectory"/> without loading the model.
    /// </summary>
    public static VerifierIdentity FromDirectory(string modelDirectory, string? name = null)
    {
        var config = HfConfig.Load(modelDirectory).ToDecoderConfig();
        return FromConfig(config, name ?? modelDirectory, ComputeFingerprint(modelDirectory));
    }

    public static VerifierIdentity FromConfig(DecoderConfig config, string name, string? fingerprint) =>
        new(name, config.NumLayers, config.HiddenSize, config.VocabSize, config.MaxPositionEmbeddings, fingerprint);

    /// <summary>
    /// SHA-256 over the names, dtypes, shapes and raw bytes of the verifier's norm weights: the final norm
    /// (<c>…norm.weight</c> outside <c>layers.</c>) and the first layer's <c>input_layernorm</c>. These are a few KB to read
    /// and differ between a base model and its fine-tunes, so a store made with another checkpoint of the same
    /// architecture is caught. Not a proof of identity (a fine-tune that froze its norms would collide). Null when the
    /// directory has no safetensors weights or no such tensors.
    /// </summary>
    public static string? ComputeFingerprint(string modelDirectory)
    {
        if (!SafeTensorsCheckpoint.Exists(modelDirectory)) return null;
        using var ckpt = SafeTensorsCheckpoint.Open(modelDirectory);
        var keys = ckpt.Keys.Order(StringComparer.Ordinal).ToList();
        var finalNorm = keys.FirstOrDefault(k => k.EndsWith("norm.weight", StringComparison.Ordinal)
            && (k == "norm.weight" || k.EndsWith(".norm.weight", StringComparison.Ordinal)) && !k.Contains("layers.", StringComparison.Ordinal));
        var firstNorm = keys.FirstOrDefault(k => k.EndsWith("layers.0.input_layernorm.weight", StringComparison.Ordinal));
        var chosen = new[] { finalNorm, firstNorm }.Where(k => k != null).Select(k => k!).ToList();
        if (chosen.Count == 0) return null;
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var key in chosen)
        {
            var info = ckpt.Info(key);
            sha.AppendData(Encoding.UTF8.GetBytes($"{key}|{info.DType.Name()}|{info.ShapeText}|"));
            using var file = SafeTensorsFile.Open(ckpt.FileOf(key));
            sha.AppendData(file.ReadBytes(key));
        }
        return "sha256:" + Convert.ToHexStringLower(sha.GetHashAndReset());
    }
}
