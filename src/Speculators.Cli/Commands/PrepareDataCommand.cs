using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Data.Preparation;
using Speculators.Text;

namespace Speculators.Cli.Commands;

/// <summary>
/// <c>speculators prepare-data --model M --data D [--data D2 …] --output DIR …</c>: conversations → chat template →
/// tokens → assistant loss masks → HF <c>save_to_disk</c> dataset + token_freq.pt/.json (<see cref="PrepareData.Run"/>).
/// </summary>
public sealed class PrepareDataCommand : ICliVerb
{
    public Command Build()
    {
        var model = new Option<string>("--model") { Description = "Target model: local directory or Hugging Face id (tokenizer, chat template, vocab_size).", Required = true };
        var data = new Option<string[]>("--data")
        {
            Description = "Input (repeatable): a .jsonl/.json/.parquet/.arrow file (or .gz), a directory, a preset (sharegpt, ultrachat, gsm8k, magpie, nemotron, open-perfectblend, hermes-fc) or hf:<id>[:<subset>][:<split>].",
            Required = true,
            AllowMultipleArgumentsPerToken = false,
        };
        var output = new Option<string>("--output") { Description = "Output directory (HF datasets save_to_disk layout, token_freq.pt, token_freq.json).", Required = true };
        var seqLength = new Option<int>("--seq-length") { Description = "Rows are clipped to this many tokens.", DefaultValueFactory = _ => 8192 };
        var maxSamples = new Option<int?>("--max-samples") { Description = "Cap on output rows (each input is first cut to 3x this many records after its shuffle)." };
        var seed = new Option<long>("--seed") { Description = "Shuffle seed (numpy default_rng permutation, as the datasets library).", DefaultValueFactory = _ => 0 };
        var minValid = new Option<int?>("--minimum-valid-tokens") { Description = "Drop rows with fewer supervised tokens." };
        var strategy = new Option<string>("--mask-strategy")
        {
            Description = "auto: --assistant-pattern if given, else the template's {% generation %} spans when it has them, else an assistant pattern detected from probe renders; " +
                          "generation, pattern (detected, or --assistant-pattern), boundary (one row per assistant turn, supervised after the generation-prompt render of the preceding messages).",
            DefaultValueFactory = _ => "auto",
        };
        strategy.AcceptOnlyFromAmong("auto", "generation", "pattern", "boundary");
        var pattern = new Option<string?>("--assistant-pattern") { Description = "Regex whose group 1 is the assistant text to supervise (matched with DOTALL), e.g. '<\\|im_start\\|>assistant\\n(.*?)<\\|im_end\\|>'." };
        var workers = new Option<int>("--workers", "--num-preprocessing-workers") { Description = "Worker threads (0 = all cores). The output does not depend on it.", DefaultValueFactory = _ => 0 };
        var overwrite = new Option<bool>("--overwrite") { Description = "Replace a dataset already in --output (only its dataset files and token_freq.*; nothing else is deleted)." };
        var chatTemplate = new Option<string?>("--chat-template") { Description = "Chat template file (.jinja, or .json with \"chat_template\") to use instead of the model's, with the model's special tokens." };
        var templateName = new Option<string?>("--template-name") { Description = "Which of the model's named chat templates to use (e.g. tool_use)." };
        var strict = new Option<bool>("--strict") { Description = "Stop at the first bad row (malformed JSON, empty conversation, no assistant turn, non-string content, a template that raises) instead of skipping and counting it." };
        var kwargs = new Option<string?>("--kwargs") { Description = "Extra chat-template variables as a JSON object, e.g. '{\"enable_thinking\": false}'; '@FILE' reads a file." };

        var cmd = new Command("prepare-data",
            "Prepare training data: conversations → chat template → tokens → assistant loss masks → a prepared dataset (HF datasets Arrow layout) " +
            "plus token frequencies (token_freq.pt for Python speculators, token_freq.json).")
        {
            model, data, output, seqLength, maxSamples, seed, minValid, strategy, pattern, workers, overwrite, chatTemplate, templateName, strict, kwargs,
        };
        cmd.SetAction(pr =>
        {
            var options = new PrepareDataOptions
            {
                Model = pr.GetValue(model)!,
                Data = pr.GetValue(data) ?? [],
                Output = pr.GetValue(output)!,
                SeqLength = pr.GetValue(seqLength),
                MaxSamples = pr.GetValue(maxSamples),
                Seed = pr.GetValue(seed),
                MinimumValidTokens = pr.GetValue(minValid),
                MaskStrategy = Enum.Parse<LossMaskStrategy>(pr.GetValue(strategy)!, ignoreCase: true),
                AssistantPattern = pr.GetValue(pattern),
                Workers = pr.GetValue(workers),
                Overwrite = pr.GetValue(overwrite),
                ChatTemplatePath = pr.GetValue(chatTemplate),
                TemplateName = pr.GetValue(templateName),
                Strict = pr.GetValue(strict),
                TemplateKwargs = pr.GetValue(kwargs) is { } k ? ParseKwargs(k) : null,
            };
            var summary = PrepareData.Run(options);
            Console.Out.WriteLine(summary.Format());
            return 0;
        });
        return cmd;
    }

    internal static JsonObject ParseKwargs(string value)
    {
        string text = value;
        if (value.StartsWith('@'))
        {
            string path = value[1..];
            if (!File.Exists(path)) throw new SpeculatorsException($"--kwargs: file '{path}' does not exist.");
            text = File.ReadAllText(path);
        }
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"--kwargs: invalid JSON ({e.Message}).", e);
        }
        return node as JsonObject
            ?? throw new SpeculatorsException($"--kwargs: expected a JSON object like {{\"enable_thinking\": false}}; found {node?.GetValueKind().ToString() ?? "null"}.");
    }
}
