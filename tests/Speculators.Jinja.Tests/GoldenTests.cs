using System.Text.Json.Nodes;

namespace Speculators.Jinja.Tests;

/// <summary>
/// Every (template, scenario) of shared/data/chat_templates/goldens.jsonl, rendered by Python jinja2 3.1
/// configured like transformers: byte-identical text and code-point generation spans, or an error of the
/// same type and message.
/// </summary>
public class GoldenTests
{
    static readonly Lazy<Dictionary<string, JsonObject>> Scenarios = new(() =>
    {
        var arr = JsonNode.Parse(File.ReadAllText(TestPaths.Data("chat_templates", "scenarios.json")))!.AsArray();
        return arr.Select(n => n!.AsObject()).ToDictionary(o => (string)o["id"]!);
    });

    static readonly Dictionary<string, Template> Parsed = new();

    static Template Load(string name)
    {
        lock (Parsed)
        {
            if (!Parsed.TryGetValue(name, out var t))
            {
                t = Template.Parse(File.ReadAllText(TestPaths.Data("chat_templates", name)),
                    new TemplateOptions { Now = () => new DateTime(2026, 1, 15, 12, 0, 0) });
                Parsed[name] = t;
            }
            return t;
        }
    }

    public static IEnumerable<object[]> Goldens()
    {
        foreach (var line in File.ReadLines(TestPaths.Data("chat_templates", "goldens.jsonl")))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            var g = JsonNode.Parse(line)!.AsObject();
            yield return [(string)g["template"]!, (string)g["scenario"]!];
        }
    }

    static readonly Lazy<Dictionary<(string, string), JsonObject>> GoldenIndex = new(() =>
        File.ReadLines(TestPaths.Data("chat_templates", "goldens.jsonl"))
            .Where(l => !string.IsNullOrWhiteSpace(l))
            .Select(l => JsonNode.Parse(l)!.AsObject())
            .ToDictionary(g => ((string)g["template"]!, (string)g["scenario"]!)));

    /// <summary>The variables transformers passes: messages, tools, documents, add_generation_prompt, special tokens, extra kwargs.</summary>
    internal static Dictionary<string, object?> Variables(JsonObject scenario)
    {
        var v = new Dictionary<string, object?>
        {
            ["messages"] = scenario["messages"]!.DeepClone(),
            ["tools"] = scenario["tools"]?.DeepClone(),
            ["documents"] = null,
            ["add_generation_prompt"] = (bool?)scenario["add_generation_prompt"] ?? false,
            ["bos_token"] = (string?)scenario["bos_token"] ?? "<s>",
            ["eos_token"] = (string?)scenario["eos_token"] ?? "</s>",
        };
        if (scenario["kwargs"] is JsonObject kw)
            foreach (var kv in kw) v[kv.Key] = kv.Value?.DeepClone();
        return v;
    }

    [Theory]
    [MemberData(nameof(Goldens))]
    public void RendersLikePythonJinja2(string template, string scenario)
    {
        var golden = GoldenIndex.Value[(template, scenario)];
        var tpl = Load(template);
        var vars = Variables(Scenarios.Value[scenario]);
        if ((bool)golden["ok"]!)
        {
            var r = tpl.Render(vars);
            Assert.Equal((string)golden["text"]!, r.Text);
            var spans = golden["generation_spans"]!.AsArray().Select(s => ((int)s![0]!, (int)s[1]!)).ToList();
            Assert.Equal(spans, r.GenerationSpans);
            // UTF-16 spans index the .NET string at the same text.
            Assert.Equal(spans.Count, r.GenerationSpansUtf16.Count);
            for (int i = 0; i < spans.Count; i++)
            {
                var (s16, e16) = r.GenerationSpansUtf16[i];
                Assert.Equal(CodePointSlice((string)golden["text"]!, spans[i].Item1, spans[i].Item2), r.Text[s16..e16]);
            }
        }
        else
        {
            var e = Assert.Throws<JinjaException>(() => tpl.Render(vars));
            Assert.Equal((string)golden["error"]!, e.ErrorType + ": " + e.Message);
            Assert.True(e.Line > 0, "error without a line: " + e.Describe());
        }
    }

    static string CodePointSlice(string s, int start, int end)
    {
        var cps = s.EnumerateRunes().ToArray();
        return string.Concat(cps[start..end].Select(r => r.ToString()));
    }
}
