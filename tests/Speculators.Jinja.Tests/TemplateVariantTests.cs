using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Speculators.Jinja.Tests;

/// <summary>
/// The 53 real templates over 21 further conversations (Fixtures/template_variants.json, generated with
/// Python jinja2 by Fixtures/gen_variants.py): SHA-256 of the text, its length and the generation spans,
/// or the same error.
/// </summary>
public class TemplateVariantTests
{
    static readonly Lazy<JsonObject> Fixture = new(() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "template_variants.json")))!.AsObject());

    static readonly Dictionary<string, Template> Parsed = new();

    public static IEnumerable<object[]> Templates() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "template_variants.json")))!["results"]!
            .AsArray().Select(r => (string)r!["template"]!).Distinct().Select(t => new object[] { t });

    [Theory]
    [MemberData(nameof(Templates))]
    public void RendersEveryVariantLikePython(string template)
    {
        var tpl = Template.Parse(File.ReadAllText(TestPaths.Data("chat_templates", template)),
            new TemplateOptions { Now = () => new DateTime(2026, 1, 15, 12, 0, 0) });
        var variants = Fixture.Value["variants"]!.AsObject();
        var failures = new List<string>();
        int n = 0;
        foreach (var r in Fixture.Value["results"]!.AsArray().Select(x => x!.AsObject()).Where(x => (string)x["template"]! == template))
        {
            n++;
            string variant = (string)r["variant"]!;
            var vars = new Dictionary<string, object?>();
            foreach (var kv in variants[variant]!.AsObject()) vars[kv.Key] = kv.Value?.DeepClone();
            string expected = (bool)r["ok"]!
                ? $"ok {(string)r["sha256"]!} {(int)r["length"]!} [{string.Join(",", r["spans"]!.AsArray().Select(s => $"({(int)s![0]!}, {(int)s[1]!})"))}]"
                : $"{(string)r["error_type"]!}: {(string)r["error"]!}";
            string actual;
            try
            {
                var res = tpl.Render(vars);
                var sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(res.Text)));
                actual = $"ok {sha} {res.Text.EnumerateRunes().Count()} [{string.Join(",", res.GenerationSpans)}]";
            }
            catch (JinjaException e)
            {
                actual = $"{e.ErrorType}: {e.Message}";
            }
            if (actual != expected) failures.Add($"{variant}: expected {expected}, got {actual}");
        }
        Assert.True(n > 0);
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
