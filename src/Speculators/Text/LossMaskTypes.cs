using System.Text.Json.Nodes;

namespace Speculators.Text;

/// <summary>How assistant (supervised) tokens are found in a rendered conversation.</summary>
public enum LossMaskStrategy
{
    /// <summary><see cref="AssistantPattern"/> if one is given, else <see cref="Generation"/> when the template's
    /// <c>{% generation %}</c> blocks mark the probe conversation, else an auto-detected <see cref="Pattern"/>.</summary>
    Auto,
    /// <summary>The template's <c>{% generation %}</c> spans, mapped to tokens by offsets (transformers' <c>return_assistant_tokens_mask</c>).</summary>
    Generation,
    /// <summary>An assistant regex (given, or detected from probe renders as legacy speculators does); tokens overlapping group 1 are supervised.</summary>
    Pattern,
    /// <summary>One row per assistant turn: everything after the generation-prompt render of the preceding messages (speculators HEAD).</summary>
    Boundary,
}

/// <summary>Settings for <see cref="LossMasker.Create"/>.</summary>
public sealed record LossMaskOptions
{
    public LossMaskStrategy Strategy { get; init; } = LossMaskStrategy.Auto;
    /// <summary>A regex whose group 1 is the supervised text (<c>--assistant-pattern</c>); Python syntax such as <c>(?P&lt;name&gt;…)</c> is accepted.</summary>
    public string? AssistantPattern { get; init; }
    /// <summary>Extra template variables for every render (e.g. <c>{"enable_thinking": false}</c>).</summary>
    public JsonObject? TemplateKwargs { get; init; }
}

/// <summary>One tokenized training row: token ids and a 0/1 loss mask of the same length.</summary>
public sealed record MaskedRow(int[] InputIds, byte[] LossMask)
{
    public int Length => InputIds.Length;

    /// <summary>Number of supervised tokens.</summary>
    public int Supervised
    {
        get
        {
            int n = 0;
            foreach (byte b in LossMask) n += b;
            return n;
        }
    }
}

/// <summary>Why a conversation gave no rows (besides the rows' own filtering by the pipeline).</summary>
public enum MaskFailure
{
    None,
    /// <summary>The chat template raised (its own <c>raise_exception</c>, or a type/undefined error) on this conversation.</summary>
    TemplateError,
    /// <summary>Boundary strategy: the prompt and full renders diverge inside the history (speculators' BoundaryUnstableError).</summary>
    BoundaryUnstable,
    /// <summary>Pattern strategy: the assistant regex matched nothing in the rendered conversation.</summary>
    NoAssistantMatch,
    /// <summary>Boundary strategy: no assistant turn after the first message whose prompt fits in the sequence length.</summary>
    NoTrainableTurn,
}

/// <summary>The rows of one conversation, or why there are none.</summary>
public sealed record MaskedConversation(IReadOnlyList<MaskedRow> Rows, MaskFailure Failure = MaskFailure.None, string? Message = null)
{
    /// <summary>Boundary strategy: assistant turns skipped because their prompt alone fills the sequence length.</summary>
    public int TurnsSkippedForLength { get; init; }

    public static MaskedConversation Failed(MaskFailure failure, string message) => new([], failure, message);
}
