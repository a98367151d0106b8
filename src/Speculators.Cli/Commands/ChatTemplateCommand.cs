using System.CommandLine;
using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Hub;
using Speculators.Jinja;
using Speculators.Text;

namespace Speculators.Cli.Commands;

/// <summary><c>speculators chat-template render</c>: render a conversation with a model's chat template.</summary>
public sealed class ChatTemplateCommand : ICliVerb
{
    public Command Build()
    {
        var cmd = new Command("chat-template", "Work with Hugging Face chat templates (Jinja2, rendered exactly as Python jinja2/transformers do).");
        cmd.Subcommands.Add(BuildRender());
        return cmd;
    }

    static Command BuildRender()
    {
        var model = new Option<string?>("--model")
        {
            Description = "Model directory (or id) whose tokenizer_config.json / chat_template.jinja / chat_template.json supplies the template and special tokens.",
        };
        var template = new Option<string?>("--template")
        {
            Description = "A chat template file instead of --model: a .jinja file, or a JSON file with a \"chat_template\" key.",
        };
        var templateName = new Option<string?>("--template-name")
        {
            Description = "With --model: which named template to use when the model has several (default: 'default', or 'tool_use' when --tools is given).",
        };
        var messages = new Option<string>("--messages")
        {
            Description = "JSON file with the conversation: a list of {\"role\", \"content\", ...} messages (or an object with a \"messages\" list). '-' reads stdin.",
            Required = true,
        };
        var tools = new Option<string?>("--tools") { Description = "JSON file with the list of tool (function) schemas passed to the template as `tools`." };
        var addGen = new Option<bool>("--add-generation-prompt") { Description = "Append the assistant prompt (add_generation_prompt=True)." };
        var kwargs = new Option<string?>("--kwargs")
        {
            Description = "Extra template variables as a JSON object, e.g. '{\"enable_thinking\": false}'. A value starting with '@' names a JSON file.",
        };
        var bos = new Option<string?>("--bos-token") { Description = "bos_token for the template (overrides the model's or the JSON file's)." };
        var eos = new Option<string?>("--eos-token") { Description = "eos_token for the template (overrides the model's or the JSON file's)." };
        var now = new Option<string?>("--now")
        {
            Description = "Clock for strftime_now, e.g. 2026-01-15T12:00:00 (default: the current local time); makes date-stamping templates reproducible.",
        };
        var spans = new Option<bool>("--spans")
        {
            Description = "Print {\"text\": ..., \"generation_spans\": [[start, end], ...]} (code point offsets of {% generation %} blocks) instead of the bare text.",
        };
        var render = new Command("render",
            "Render a conversation to text exactly as transformers' apply_chat_template(..., tokenize=False) does. " +
            "The text goes to stdout unchanged (no newline added); template errors, including the template's own " +
            "raise_exception, exit non-zero with the template line and column.")
        {
            model, template, templateName, messages, tools, addGen, kwargs, bos, eos, now, spans,
        };
        render.SetAction(pr =>
        {
            string? modelArg = pr.GetValue(model), templateArg = pr.GetValue(template);
            if ((modelArg == null) == (templateArg == null))
                throw new SpeculatorsException("Pass exactly one of --model (a model directory) or --template (a template file).");
            if (templateArg != null && pr.GetValue(templateName) != null)
                throw new SpeculatorsException("--template-name selects a named template of --model; it cannot be used with --template.");
            var options = new TemplateOptions { Now = ParseNow(pr.GetValue(now)) };
            ChatTemplate ct;
            if (modelArg != null)
            {
                ct = ChatTemplate.FromModelDirectory(ModelLocator.Resolve(modelArg), pr.GetValue(templateName), options);
                if (pr.GetValue(bos) is { } b) ct = ct.WithSpecialToken("bos_token", b);
                if (pr.GetValue(eos) is { } e) ct = ct.WithSpecialToken("eos_token", e);
            }
            else
            {
                ct = ChatTemplate.FromFile(templateArg!, pr.GetValue(bos), pr.GetValue(eos), options);
            }
            var (msgs, toolsInFile) = ReadMessages(pr.GetValue(messages)!);
            var toolList = pr.GetValue(tools) is { } tp ? ReadArray(tp, "--tools") : toolsInFile;
            var kw = pr.GetValue(kwargs) is { } k ? ReadKwargs(k) : null;
            var result = ct.Render(msgs, toolList, pr.GetValue(addGen), kw);
            if (pr.GetValue(spans))
            {
                var o = new JsonObject
                {
                    ["text"] = result.Text,
                    ["generation_spans"] = new JsonArray(result.GenerationSpans.Select(s => (JsonNode)new JsonArray(s.Start, s.End)).ToArray()),
                };
                Console.Out.WriteLine(o.ToJsonString(new JsonSerializerOptions { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
            }
            else
            {
                Console.Out.Write(result.Text);
            }
            Console.Out.Flush();
            return 0;
        });
        return render;
    }

    static Func<DateTime> ParseNow(string? text)
    {
        if (text == null) return () => DateTime.Now;
        if (!DateTime.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.None, out var t))
            throw new SpeculatorsException($"--now: expected a date and time like 2026-01-15T12:00:00; found '{text}'.");
        return () => t;
    }

    static string ReadText(string path, string flag)
    {
        if (path == "-") return Console.In.ReadToEnd();
        if (!File.Exists(path)) throw new SpeculatorsException($"{flag}: file '{path}' does not exist.");
        return File.ReadAllText(path);
    }

    static JsonNode? ParseJson(string text, string what)
    {
        try
        {
            return JsonNode.Parse(text, documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{what}: invalid JSON ({e.Message}).", e);
        }
    }

    static (JsonArray messages, JsonArray? tools) ReadMessages(string path)
    {
        var node = ParseJson(ReadText(path, "--messages"), $"--messages {path}");
        switch (node)
        {
            case JsonArray a:
                return (a, null);
            case JsonObject o when o["messages"] is JsonArray m:
                return (m, o["tools"] as JsonArray);
        }
        throw new SpeculatorsException($"--messages {path}: expected a JSON list of messages or an object with a \"messages\" list; found {node?.GetValueKind().ToString() ?? "null"}.");
    }

    static JsonArray ReadArray(string path, string flag)
    {
        var node = ParseJson(ReadText(path, flag), $"{flag} {path}");
        return node as JsonArray ?? throw new SpeculatorsException($"{flag} {path}: expected a JSON list; found {node?.GetValueKind().ToString() ?? "null"}.");
    }

    static JsonObject ReadKwargs(string value)
    {
        string text = value.StartsWith('@') ? ReadText(value[1..], "--kwargs") : value;
        var node = ParseJson(text, "--kwargs");
        return node as JsonObject ?? throw new SpeculatorsException($"--kwargs: expected a JSON object like {{\"enable_thinking\": false}}; found {node?.GetValueKind().ToString() ?? "null"}.");
    }
}
