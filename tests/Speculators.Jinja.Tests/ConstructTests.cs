using System.Text.Json.Nodes;

namespace Speculators.Jinja.Tests;

/// <summary>
/// Differential cases for each construct: Fixtures/constructs.json holds templates with the output (or the
/// error type, message and line) that Python jinja2 3.1 produced under transformers' settings on the
/// development machine (Fixtures/gen_cases.py regenerates it). Each case renders here and must match.
/// </summary>
public class ConstructTests
{
    static readonly Lazy<Dictionary<string, JsonObject>> Cases = new(() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "constructs.json")))!
            .AsArray().Select(n => n!.AsObject()).ToDictionary(o => (string)o["name"]!));

    public static IEnumerable<object[]> Names() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "constructs.json")))!
            .AsArray().Select(n => new object[] { (string)n!["name"]! });

    static TemplateOptions Options(JsonObject c) => new()
    {
        Now = () => new DateTime(2026, 1, 15, 12, 0, 0),
        TrimBlocks = (bool?)c["options"]?["trim_blocks"] ?? true,
        LstripBlocks = (bool?)c["options"]?["lstrip_blocks"] ?? true,
    };

    [Theory]
    [MemberData(nameof(Names))]
    public void MatchesPythonJinja2(string name)
    {
        var c = Cases.Value[name];
        string source = (string)c["template"]!;
        var vars = new Dictionary<string, object?>();
        foreach (var kv in c["vars"]!.AsObject()) vars[kv.Key] = kv.Value?.DeepClone();
        if ((bool)c["ok"]!)
        {
            var r = Template.Parse(source, Options(c)).Render(vars);
            Assert.Equal((string)c["text"]!, r.Text);
            var spans = c["spans"]!.AsArray().Select(s => ((int)s![0]!, (int)s[1]!)).ToList();
            Assert.Equal(spans, r.GenerationSpans);
            return;
        }
        var e = Assert.Throws<JinjaException>(() => Template.Parse(source, Options(c)).Render(vars));
        Assert.Equal((string)c["error_type"]! + ": " + (string)c["error"]!, e.ErrorType + ": " + e.Message);
        if (c["line"] is JsonValue line) Assert.Equal((int)line, e.Line);
    }
}
