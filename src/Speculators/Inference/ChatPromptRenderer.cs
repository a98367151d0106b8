using System.Text.Json.Nodes;
using Speculators.Text;

namespace Speculators.Inference;

/// <summary>
/// Prompts through the verifier's own chat template and tokenizer, as vLLM's chat endpoint does: the conversation is
/// rendered with <c>add_generation_prompt=true</c> and tokenized without extra special tokens (the template writes
/// BOS itself). Answers fed back as history are decoded without special tokens.
/// </summary>
public sealed class ChatPromptRenderer : IPromptRenderer
{
    readonly HfTokenizer _tokenizer;
    readonly ChatTemplate _template;
    readonly JsonObject? _kwargs;

    public ChatPromptRenderer(HfTokenizer tokenizer, ChatTemplate template, JsonObject? templateKwargs = null)
    {
        _tokenizer = tokenizer;
        _template = template;
        _kwargs = templateKwargs;
    }

    /// <summary>The tokenizer and chat template of a model directory (clear errors when either is missing).</summary>
    public static ChatPromptRenderer FromModelDirectory(string directory, JsonObject? templateKwargs = null)
    {
        if (!File.Exists(Path.Combine(directory, "tokenizer.json")))
            throw new SpeculatorsException(
                $"{directory}: no tokenizer.json; text and chat prompts need the verifier's tokenizer (or give prompts as {{\"input_ids\": [...]}}).");
        return new ChatPromptRenderer(HfTokenizer.Load(directory), ChatTemplate.FromModelDirectory(directory), templateKwargs);
    }

    public HfTokenizer Tokenizer => _tokenizer;

    public long[] RenderChat(JsonArray messages, JsonArray? tools)
    {
        var text = _template.Render(messages, tools, addGenerationPrompt: true, kwargs: (JsonObject?)_kwargs?.DeepClone()).Text;
        return _tokenizer.EncodeToIds(text, addSpecialTokens: false).Select(i => (long)i).ToArray();
    }

    public string DecodeAnswer(IReadOnlyList<long> tokens) =>
        _tokenizer.Decode(tokens.Select(t => (int)t).ToArray(), skipSpecialTokens: true);
}
