using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Speculators.Formats;
using Speculators.Modeling;

namespace Speculators.Algorithms.Eagle3;

/// <summary>The decoder layer style of an Eagle-3 draft (<c>transformer_layer_config.model_type</c>).</summary>
public enum Eagle3LayerStyle
{
    /// <summary><c>llama</c>: served by every vLLM with Eagle-3 (<c>Eagle3LlamaForCausalLM</c>).</summary>
    Llama,
    /// <summary><c>qwen3</c>: per-head <c>q_norm</c>/<c>k_norm</c>; needs vLLM with <c>qwen3_eagle3.py</c>.</summary>
    Qwen3,
}

/// <summary>
/// The Eagle-3 speculators config (speculators' <c>Eagle3SpeculatorConfig</c>): the common fields plus
/// <c>draft_vocab_size</c>, <c>target_hidden_size</c>, the norm flags, <c>embed_requires_grad</c> and
/// <c>eagle_aux_hidden_state_layer_ids</c>. Flags absent from a file take vLLM's defaults
/// (<c>norm_before_residual</c> true, the others false) and are listed in <see cref="SpeculatorModelConfig.MissingKeys"/>;
/// a missing <c>draft_vocab_size</c> means the full target vocabulary, as in vLLM. Every flag is written explicitly.
/// </summary>
public sealed class Eagle3SpeculatorConfig : SpeculatorModelConfig
{
    public const string ModelTypeName = "eagle3";
    /// <summary>The <c>architectures</c> value speculators' trainer writes (<c>save_pretrained</c> uses the model class name).</summary>
    public const string ArchitectureName = "Eagle3DraftModel";
    /// <summary>
    /// The speculators format generation we write (<c>speculators_version</c>); our own version goes to
    /// <c>speculators_dotnet_version</c>.
    /// </summary>
    public const string FormatVersion = "0.8.0";
    /// <summary>Eagle-3's aux feature count when a config lists no ids (vLLM 9aaf83ef5 fixes fc to 3·hidden).</summary>
    public const int DefaultAuxCount = 3;

    public Eagle3SpeculatorConfig() { SpeculatorsModelType = ModelTypeName; }

    /// <summary>Rows of <c>lm_head</c> (Vd). Absent → the target vocabulary size (vLLM falls back to <c>vocab_size</c>).</summary>
    [JsonPropertyName("draft_vocab_size")] public int DraftVocabSize { get; set; }
    /// <summary>Verifier hidden size when it differs from the draft's (fc input = A × this); null = the draft's hidden size.</summary>
    [JsonPropertyName("target_hidden_size")] public int? TargetHiddenSize { get; set; }
    /// <summary>First layer: the residual is taken after <c>hidden_norm</c>. vLLM's default when absent: true.</summary>
    [JsonPropertyName("norm_before_residual")] public bool NormBeforeResidual { get; set; } = true;
    /// <summary>One RMSNorm (<c>input_norm</c>, width A·T) over the concatenated aux states before <c>fc</c>.</summary>
    [JsonPropertyName("norm_before_fc")] public bool NormBeforeFc { get; set; }
    /// <summary>One RMSNorm per aux state (<c>fc_norm.{i}</c>, width T) before <c>fc</c>; exclusive with <see cref="NormBeforeFc"/>.</summary>
    [JsonPropertyName("fc_norm")] public bool FcNorm { get; set; }
    /// <summary>Feed the post-norm hidden state back to the next draft step ("Eagle 3.1").</summary>
    [JsonPropertyName("norm_output")] public bool NormOutput { get; set; }
    /// <summary>Train the embedding (otherwise frozen, a copy of the verifier's).</summary>
    [JsonPropertyName("embed_requires_grad")] public bool EmbedRequiresGrad { get; set; }
    /// <summary>Verifier layer ids whose hidden states feed <c>fc</c> (ascending); null = <c>[2, N//2, N−3]</c> of the verifier.</summary>
    [JsonPropertyName("eagle_aux_hidden_state_layer_ids")] public List<int>? AuxLayerIds { get; set; }

    /// <summary>Number of aux hidden states concatenated into fc's input (A).</summary>
    [JsonIgnore] public int NumAuxLayers => AuxLayerIds?.Count ?? DefaultAuxCount;

    /// <summary>The draft's hidden size H (from <c>transformer_layer_config</c>).</summary>
    [JsonIgnore] public int HiddenSize => TransformerLayerConfig?.HiddenSize ?? throw MissingDecoder();

    /// <summary>Width of one aux state T (= <see cref="TargetHiddenSize"/> or H).</summary>
    [JsonIgnore] public int AuxHiddenSize => TargetHiddenSize ?? HiddenSize;

    /// <summary>The target (verifier) vocabulary size V (<c>transformer_layer_config.vocab_size</c>).</summary>
    [JsonIgnore] public int TargetVocabSize => TransformerLayerConfig?.VocabSize ?? throw MissingDecoder();

    /// <summary>Tokens drafted per step (<c>proposal_methods[0].speculative_tokens</c>).</summary>
    [JsonIgnore] public int SpeculativeTokens => SpeculatorsConfig.SpeculativeTokens;

    SpeculatorsException MissingDecoder() =>
        new($"{SourcePath}: transformer_layer_config is missing or has no hidden_size/vocab_size.");

    protected override void OnRead(JsonObject raw, ConfigIssues issues)
    {
        if (issues.MissingKeys.Contains("draft_vocab_size") && TransformerLayerConfig?.VocabSize is int v) DraftVocabSize = v;
        if (NormBeforeFc && FcNorm)
            issues.Add("fc_norm", "norm_before_fc and fc_norm are both true; they are mutually exclusive (one norm over the concatenation, or one per aux state)");
    }

    protected override void OnWrite(JsonObject json)
    {
        json["speculators_dotnet_version"] = ProductInfo.Version;
    }

    /// <summary>
    /// The layer style from <c>transformer_layer_config.model_type</c> (vLLM picks the draft class from it).
    /// A missing or other model_type throws: speculators reads a config without model_type as qwen3, vLLM as llama.
    /// </summary>
    public Eagle3LayerStyle LayerStyle
    {
        get
        {
            var tlc = TransformerLayerConfig ?? throw MissingDecoder();
            return tlc.ModelType switch
            {
                "llama" => Eagle3LayerStyle.Llama,
                "qwen3" => Eagle3LayerStyle.Qwen3,
                null => throw new SpeculatorsException(
                    $"{SourcePath}: transformer_layer_config.model_type is missing; speculators reads such a config as qwen3 and vLLM as llama, so it must be \"llama\" or \"qwen3\"."),
                _ => throw new SpeculatorsException(
                    $"{SourcePath}: transformer_layer_config.model_type is '{tlc.ModelType}'; Eagle-3 drafts have \"llama\" or \"qwen3\" layers (vLLM rejects others)."),
            };
        }
    }

    /// <summary>
    /// The resolved draft decoder (heads, head_dim, RoPE, layer types...) of <c>transformer_layer_config</c>.
    /// Layer types and the sliding window are honoured for both layer styles (speculators' training masks
    /// use them for llama drafts too, although transformers' Llama config ignores them).
    /// </summary>
    public DecoderConfig ResolveDecoderConfig()
    {
        var style = LayerStyle;
        var tlc = TransformerLayerConfig!;
        // Resolve by model_type alone: an `architectures` entry inside must not override the layer style.
        var copy = HfConfig.Parse(tlc.ToJson(), tlc.SourcePath);
        copy.Architectures = null;
        var dc = copy.ToDecoderConfig();
        if (style == Eagle3LayerStyle.Llama && tlc.LayerTypes != null)
        {
            string where = $"{SourcePath} transformer_layer_config";
            if (tlc.LayerTypes.Count != dc.NumLayers)
                throw new SpeculatorsException($"{where}: layer_types has {tlc.LayerTypes.Count} entries but num_hidden_layers is {dc.NumLayers}.");
            bool sliding = tlc.LayerTypes.Contains(DecoderConfig.SlidingAttention);
            if (sliding && tlc.SlidingWindow is int w)
                dc = dc with { LayerTypes = tlc.LayerTypes.ToList(), SlidingWindow = w };
            else if (sliding)
                dc = dc with { LayerTypes = tlc.LayerTypes.Select(_ => DecoderConfig.FullAttention).ToList() };
            else
                dc = dc with { LayerTypes = tlc.LayerTypes.ToList() };
            dc.Validate(where);
        }
        return dc;
    }

    /// <summary>
    /// The <c>transformer_layer_config</c> we write for a draft decoder: transformers 4.x RoPE keys
    /// (<c>rope_theta</c> + <c>rope_scaling</c>, read by transformers 4.x and 5.x), explicit <c>head_dim</c>,
    /// <c>layer_types</c> for every layer, <c>sliding_window</c>/<c>use_sliding_window</c>; no
    /// <c>architectures</c> or dtype inside (speculators writes the decoder config's diff dict).
    /// </summary>
    public static HfConfig DecoderToHf(DecoderConfig dc)
    {
        if (dc.Family is not (ModelFamily.Llama or ModelFamily.Qwen3))
            throw new SpeculatorsException($"Eagle-3 draft layers are llama or qwen3 style; got {dc.Family}.");
        HfConfig hf;
        var types = Enumerable.Range(0, dc.NumLayers).Select(dc.LayerType).ToList();
        bool sliding = types.Contains(DecoderConfig.SlidingAttention);
        if (dc.Family == ModelFamily.Llama)
        {
            // HF's Llama config has no windows; write them as speculators does (layer_types + sliding_window).
            hf = HfConfig.FromDecoder(dc with { LayerTypes = null, SlidingWindow = null }, HfConfigForm.Transformers4);
            hf.LayerTypes = types;
            hf.UseSlidingWindow = sliding;
            if (sliding) hf.SlidingWindow = dc.SlidingWindow;
            else hf.ExplicitNullKeys.Add("sliding_window");
        }
        else
        {
            hf = HfConfig.FromDecoder(dc, HfConfigForm.Transformers4);
        }
        hf.Architectures = null;
        hf.TorchDtype = null;
        hf.Dtype = null;
        return hf;
    }

    /// <summary>Sets <see cref="SpeculatorModelConfig.TransformerLayerConfig"/> from a draft decoder config.</summary>
    public void SetDecoder(DecoderConfig dc) => TransformerLayerConfig = DecoderToHf(dc);

    /// <summary>Sets the dtype in both spellings (<c>torch_dtype</c> for transformers 4.x, <c>dtype</c> for 5.x).</summary>
    public void SetDtype(string dtype)
    {
        TorchDtype = dtype;
        Dtype = dtype;
    }
}
