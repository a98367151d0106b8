using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Modeling;
using Speculators.Text;
using Speculators.Util;

namespace Speculators.Quickstart;

/// <summary>
/// Builds the quickstart model's tokenizer files as a Hugging Face model directory holds them: a byte-level BPE
/// <c>tokenizer.json</c> trained on the synthetic corpus, <c>tokenizer_config.json</c> with the special tokens and a
/// ChatML chat template (assistant turns inside <c>{% generation %}</c>, so prepare-data's generation-span mask
/// strategy applies), <c>special_tokens_map.json</c> and <c>generation_config.json</c> (EOS = <c>&lt;|im_end|&gt;</c>).
/// Every later step loads these files through the same code as a downloaded model's.
/// </summary>
public static class QuickstartTokenizer
{
    public const string EndOfText = TinyTokenizer.EndOfText;
    public const string ImStart = TinyTokenizer.ImStart;
    public const string ImEnd = TinyTokenizer.ImEnd;

    /// <summary>Special tokens in id order after the learned vocabulary.</summary>
    public static readonly IReadOnlyList<string> SpecialTokens = [EndOfText, ImStart, ImEnd];

    /// <summary>
    /// ChatML (as Qwen2 writes it), with the assistant content and its end tag inside <c>{% generation %}</c>: the
    /// tokens a model must learn to produce, including the stop token, are exactly the generation span. The same
    /// template as the test-model factory's.
    /// </summary>
    public const string ChatTemplate = TinyTokenizer.ChatTemplate;

    static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>
    /// Trains the tokenizer on <paramref name="texts"/> (plus the chat markup, so role names and newlines merge like
    /// real chat text) and writes the four files into <paramref name="directory"/> (created if needed; each file atomic).
    /// </summary>
    /// <param name="vocabSize">total vocabulary including the three special tokens</param>
    /// <param name="modelMaxLength">the context the model is trained for (tokenizer_config's model_max_length)</param>
    public static HfTokenizer Build(IEnumerable<string> texts, int vocabSize, string directory, int modelMaxLength)
    {
        Directory.CreateDirectory(directory);
        // The chat markup around each turn is part of every rendered conversation; training on it keeps
        // "user\n" / "assistant\n" as the few tokens they are in real ChatML tokenizers.
        var corpus = texts.Select(t => t).Concat(Enumerable.Repeat("user\nassistant\n", 64));
        var tok = ByteLevelBpeTrainer.Train(corpus, vocabSize, SpecialTokens.ToList(), Path.Combine(directory, "tokenizer.json"));
        int eot = Id(tok, EndOfText), imEnd = Id(tok, ImEnd);
        AtomicFile.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), TokenizerConfigJson(tok, modelMaxLength));
        AtomicFile.WriteAllText(Path.Combine(directory, "special_tokens_map.json"), SpecialTokensMapJson());
        AtomicFile.WriteAllText(Path.Combine(directory, "generation_config.json"), GenerationConfigJson(imEnd, eot));
        return HfTokenizer.Load(directory);
    }

    static int Id(HfTokenizer tok, string token) =>
        tok.TokenToId(token) ?? throw new SpeculatorsException($"the trained tokenizer lacks the special token {token}.");

    /// <summary>tokenizer_config.json as transformers writes it for a fast tokenizer without BOS.</summary>
    public static string TokenizerConfigJson(HfTokenizer tok, int modelMaxLength) =>
        TinyTokenizer.ChatMlTokenizerConfigJson(SpecialTokens.Select(t => (t, Id(tok, t))), ChatTemplate, modelMaxLength, [ImStart, ImEnd]);

    static string SpecialTokensMapJson() => new JsonObject
    {
        ["additional_special_tokens"] = new JsonArray(ImStart, ImEnd),
        ["eos_token"] = ImEnd,
        ["pad_token"] = EndOfText,
    }.ToJsonString(Indented) + "\n";

    static string GenerationConfigJson(int eos, int pad) => new JsonObject
    {
        ["do_sample"] = false,
        ["eos_token_id"] = eos,
        ["pad_token_id"] = pad,
    }.ToJsonString(Indented) + "\n";
}
