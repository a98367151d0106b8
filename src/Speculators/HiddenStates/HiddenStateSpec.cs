using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>What to do with a prepared row longer than the verifier's context (<see cref="HiddenStateSpec.MaxTokens"/>).</summary>
public enum TooLongPolicy
{
    /// <summary>No file for the row; readers skip it (reason <see cref="HiddenStateSkipReason.TooLong"/>).</summary>
    Skip,
    /// <summary>The first <c>MaxTokens</c> tokens are run; the file's <c>token_ids</c> is that prefix of the row.</summary>
    Truncate,
}

/// <summary>
/// The layout of a hidden-state store: which capture ids the files hold on their second axis, the hidden
/// size, the element type, and how rows longer than the context were treated. Files are
/// <c>hidden_states</c> [T, A+1, H] (aux ids ascending, then N = the last layer's output before the final norm)
/// and <c>token_ids</c> [T] int64.
/// </summary>
public sealed record HiddenStateSpec
{
    /// <summary>Ids of the second axis of <c>hidden_states</c>: the aux ids ascending, then N (= num_hidden_layers).</summary>
    public required IReadOnlyList<int> LayerIds { get; init; }
    public required int HiddenSize { get; init; }
    /// <summary>Element type of <c>hidden_states</c> (bfloat16 by default, float32 on request).</summary>
    public required ScalarType DType { get; init; }
    /// <summary>Longest row (in tokens) the verifier was run on; null = no limit known (e.g. a Python-written store).</summary>
    public int? MaxTokens { get; init; }
    public TooLongPolicy TooLong { get; init; } = TooLongPolicy.Skip;

    /// <summary>A+1: number of captured layers per token.</summary>
    public int LayerCount => LayerIds.Count;
    /// <summary>The auxiliary ids (all but the last, which is N).</summary>
    public IReadOnlyList<int> AuxLayerIds => LayerIds.Take(LayerIds.Count - 1).ToArray();
    /// <summary>N, the verifier's number of decoder layers (the last capture id).</summary>
    public int NumHiddenLayers => LayerIds[^1];

    /// <summary>Bytes of one element of <c>hidden_states</c>.</summary>
    public int ElementBytes => ElementSize(DType);
    /// <summary>Bytes per token of <c>hidden_states</c> alone: (A+1) × H × element size.</summary>
    public long HiddenBytesPerToken => (long)LayerCount * HiddenSize * ElementBytes;
    /// <summary>Bytes per token of a file: hidden states plus the int64 token id.</summary>
    public long FileBytesPerToken => HiddenBytesPerToken + sizeof(long);

    /// <summary>
    /// Builds the spec for aux ids <paramref name="auxLayerIds"/> of an N-layer verifier. The aux ids must be
    /// unique, ascending and in [1, N−1] (DESIGN.md §4): N is always appended here and is never an aux id.
    /// </summary>
    public static HiddenStateSpec ForVerifier(IReadOnlyList<int> auxLayerIds, int numHiddenLayers, int hiddenSize, ScalarType dtype,
        int? maxTokens = null, TooLongPolicy tooLong = TooLongPolicy.Skip, string source = "--layer-ids")
    {
        Modeling.AuxLayerIds.ValidateEagle3(auxLayerIds, numHiddenLayers, source);
        CheckDType(dtype, source);
        if (hiddenSize <= 0) throw new SpeculatorsException($"hidden size must be positive, found {hiddenSize}.");
        if (maxTokens is <= 0) throw new SpeculatorsException($"maximum tokens per row must be positive, found {maxTokens}.");
        return new HiddenStateSpec
        {
            LayerIds = [.. auxLayerIds, numHiddenLayers],
            HiddenSize = hiddenSize,
            DType = dtype,
            MaxTokens = maxTokens,
            TooLong = tooLong,
        };
    }

    /// <summary>
    /// The token ids a file for a row with <paramref name="rowIds"/> must hold: the row itself, its first
    /// <see cref="MaxTokens"/> tokens when it is longer and the policy truncates, or null when it is longer and skipped.
    /// </summary>
    public long[]? ExpectedTokens(long[] rowIds)
    {
        if (MaxTokens is not int max || rowIds.Length <= max) return rowIds;
        return TooLong == TooLongPolicy.Truncate ? rowIds[..max] : null;
    }

    /// <summary>Tokens the verifier runs for a row of <paramref name="length"/> tokens (0 when skipped as too long).</summary>
    public int TokensFor(int length) =>
        MaxTokens is int max && length > max ? (TooLong == TooLongPolicy.Truncate ? max : 0) : length;

    public static int ElementSize(ScalarType t) => t switch
    {
        ScalarType.BFloat16 or ScalarType.Float16 => 2,
        ScalarType.Float32 => 4,
        ScalarType.Float64 => 8,
        _ => throw new SpeculatorsException($"hidden states must be a floating type, found {t}."),
    };

    /// <summary>Store dtypes: bfloat16 (default), float32; float16 is read (vLLM may write it) but never written on CPU.</summary>
    public static void CheckDType(ScalarType t, string source)
    {
        if (t is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16))
            throw new SpeculatorsException($"{source}: hidden-state dtype must be bfloat16 or float32, found {DTypeName(t)}.");
    }

    /// <summary>HF/torch name of a dtype ("bfloat16", "float32", "float16").</summary>
    public static string DTypeName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float32 => "float32",
        ScalarType.Float16 => "float16",
        ScalarType.Float64 => "float64",
        _ => t.ToString(),
    };

    /// <summary>Parses "bfloat16"/"bf16", "float32"/"fp32"/"f32", "float16"/"fp16"; <paramref name="source"/> names the flag or key.</summary>
    public static ScalarType ParseDType(string text, string source) => text.Trim().ToLowerInvariant() switch
    {
        "bfloat16" or "bf16" => ScalarType.BFloat16,
        "float32" or "fp32" or "f32" => ScalarType.Float32,
        "float16" or "fp16" or "f16" or "half" => ScalarType.Float16,
        _ => throw new SpeculatorsException($"{source}: unknown dtype '{text}'; expected bfloat16 or float32."),
    };

    public override string ToString() =>
        $"layer ids [{string.Join(", ", LayerIds)}], hidden size {HiddenSize}, {DTypeName(DType)}" +
        (MaxTokens is int m ? $", rows over {m} tokens {(TooLong == TooLongPolicy.Truncate ? "truncated" : "skipped")}" : "");
}
