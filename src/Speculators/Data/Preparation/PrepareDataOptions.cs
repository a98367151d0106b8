using System.Text.Json.Nodes;
using Speculators.Hub;
using Speculators.Text;

namespace Speculators.Data.Preparation;

/// <summary>Inputs of <see cref="PrepareData.Run"/> (the flags of <c>speculators prepare-data</c>).</summary>
public sealed record PrepareDataOptions
{
    /// <summary>Target model: a local directory or a Hugging Face id (tokenizer, chat template, config vocab_size).</summary>
    public required string Model { get; init; }
    /// <summary>Inputs: local files/directories, presets (<c>sharegpt</c>, <c>ultrachat</c>, …) or <c>hf:&lt;id&gt;[:&lt;subset&gt;][:&lt;split&gt;]</c>.</summary>
    public required IReadOnlyList<string> Data { get; init; }
    /// <summary>Output directory (HF <c>save_to_disk</c> layout + token_freq.pt/.json).</summary>
    public required string Output { get; init; }
    /// <summary>Rows are clipped to this many tokens.</summary>
    public int SeqLength { get; init; } = 8192;
    /// <summary>Cap on output rows (each input is first cut to 3× this many conversations after its shuffle).</summary>
    public int? MaxSamples { get; init; }
    /// <summary>Shuffle seed (numpy <c>default_rng(seed).permutation</c>, as <c>datasets</c>' shuffle).</summary>
    public long Seed { get; init; }
    /// <summary>Drop rows with fewer supervised tokens.</summary>
    public int? MinimumValidTokens { get; init; }
    public LossMaskStrategy MaskStrategy { get; init; } = LossMaskStrategy.Auto;
    /// <summary>Assistant regex (group 1 supervised); implies the pattern strategy.</summary>
    public string? AssistantPattern { get; init; }
    /// <summary>Worker threads for rendering and tokenizing; 0 = all cores. The output does not depend on it.</summary>
    public int Workers { get; init; }
    /// <summary>Replace an existing prepared dataset (and token_freq files) in <see cref="Output"/>.</summary>
    public bool Overwrite { get; init; }
    /// <summary>A chat template file (.jinja, or .json with "chat_template") instead of the model's.</summary>
    public string? ChatTemplatePath { get; init; }
    /// <summary>Which of the model's named chat templates to use.</summary>
    public string? TemplateName { get; init; }
    /// <summary>Stop at the first bad row (malformed JSON, empty conversation, no assistant turn, bad content or tools,
    /// a template that raises, an unstable boundary, no assistant match) instead of skipping and counting it.</summary>
    public bool Strict { get; init; }
    /// <summary>Extra chat-template variables, e.g. <c>{"enable_thinking": false}</c>.</summary>
    public JsonObject? TemplateKwargs { get; init; }
    /// <summary>The model's tokenizer when the caller has it loaded already (loading a large tokenizer.json takes seconds); null = load it.</summary>
    public HfTokenizer? Tokenizer { get; init; }
    /// <summary>Hub client for model/dataset ids (default: from the environment).</summary>
    public HubClient? Hub { get; init; }
}
