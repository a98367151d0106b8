using System.Text.Json;
using System.Text.Json.Nodes;

namespace Speculators.Jinja.Tests;

/// <summary>The public API: inputs from .NET and System.Text.Json, options, results, thread safety.</summary>
public class ApiTests
{
    static string R(string src, Dictionary<string, object?>? vars = null, TemplateOptions? o = null) =>
        Template.Parse(src, o).Render(vars ?? new()).Text;

    [Fact]
    public void DotNetValuesBecomePythonValues()
    {
        var vars = new Dictionary<string, object?>
        {
            ["i"] = 3, ["l"] = 5L, ["d"] = 2.0, ["f"] = 0.5f, ["b"] = true, ["n"] = null, ["s"] = "x",
            ["list"] = new List<object?> { 1, "a", null, false },
            ["arr"] = new[] { "p", "q" },
            ["dict"] = new Dictionary<string, object?> { ["z"] = 1, ["a"] = new Dictionary<string, object?> { ["k"] = "v" } },
        };
        // Python: str() of each value; dicts keep insertion order; 2.0 stays a float.
        Assert.Equal("3 5 2.0 0.5 True None x [1, 'a', None, False] ['p', 'q'] {'z': 1, 'a': {'k': 'v'}} True True",
            R("{{ i }} {{ l }} {{ d }} {{ f }} {{ b }} {{ n }} {{ s }} {{ list }} {{ arr }} {{ dict }} {{ i is integer }} {{ d is float }}", vars));
    }

    [Fact]
    public void JsonInputsKeepKeyOrderAndNumberKinds()
    {
        const string json = """{"z": 1, "a": 1.0, "m": [true, null, "é🙂"], "e": 1e2, "big": 9007199254740993}""";
        var node = JsonNode.Parse(json);
        var element = JsonDocument.Parse(json).RootElement;
        const string tpl = "{{ v }}|{{ v|tojson }}|{{ v.a is float }}{{ v.z is integer }}";
        const string expected = "{'z': 1, 'a': 1.0, 'm': [True, None, 'é🙂'], 'e': 100.0, 'big': 9007199254740993}|"
            + "{\"z\": 1, \"a\": 1.0, \"m\": [true, null, \"é🙂\"], \"e\": 100.0, \"big\": 9007199254740993}|TrueTrue";
        Assert.Equal(expected, R(tpl, new() { ["v"] = node }));
        Assert.Equal(expected, R(tpl, new() { ["v"] = element }));
    }

    [Fact]
    public void ClrBackedJsonValuesKeepTheirType()
    {
        var o = new JsonObject { ["f"] = 1.0, ["i"] = 1, ["s"] = "t", ["b"] = false };
        Assert.Equal("1.0 1 t False", R("{{ o.f }} {{ o.i }} {{ o.s }} {{ o.b }}", new() { ["o"] = o }));
    }

    [Fact]
    public void UnsupportedDotNetObjectsAreRejectedWithThePath()
    {
        var e = Assert.Throws<JinjaException>(() => R("{{ x }}", new() { ["x"] = new Dictionary<string, object?> { ["when"] = DateTime.Now } }));
        Assert.Equal("TypeError", e.ErrorType);
        Assert.Contains("x.when", e.Message);
        Assert.Contains("System.DateTime", e.Message);
    }

    [Fact]
    public void VariablesNotReferencedAreNotConverted()
    {
        // Only names the template uses are converted, so unrelated caller values cannot fail a render.
        Assert.Equal("ok", R("ok", new() { ["unused"] = new object() }));
    }

    [Fact]
    public void StrftimeNowUsesTheInjectedClock()
    {
        var o = new TemplateOptions { Now = () => new DateTime(2024, 7, 4, 9, 5, 3) };
        Assert.Equal("2024-07-04 04 Jul 2024 Thursday 09:05:03 AM", R("{{ strftime_now('%Y-%m-%d %d %b %Y %A %H:%M:%S %p') }}", null, o));
    }

    [Fact]
    public void HasGenerationBlocks()
    {
        Assert.True(Template.Parse("{% for m in x %}{% if m %}{% generation %}a{% endgeneration %}{% endif %}{% endfor %}").HasGenerationBlocks);
        Assert.False(Template.Parse("{{ generation }}").HasGenerationBlocks);
    }

    [Fact]
    public void SpansAreCodePointsAndUtf16()
    {
        // "🙂" is one code point (Python len) but two UTF-16 units.
        var r = Template.Parse("🙂{% generation %}é🙂x{% endgeneration %}🙂{% generation %}y{% endgeneration %}").Render(new Dictionary<string, object?>());
        Assert.Equal("🙂é🙂x🙂y", r.Text);
        Assert.Equal([(1, 4), (5, 6)], r.GenerationSpans);
        Assert.Equal([(2, 6), (8, 9)], r.GenerationSpansUtf16);
        Assert.Equal("é🙂x", r.Text[2..6]);
        Assert.Equal("y", r.Text[8..9]);
    }

    [Fact]
    public void ConcurrentRendersOfOneTemplateAgree()
    {
        var src = File.ReadAllText(TestPaths.Data("chat_templates", "qwen3_training.jinja"));
        var tpl = Template.Parse(src);
        var scenarios = JsonNode.Parse(File.ReadAllText(TestPaths.Data("chat_templates", "scenarios.json")))!.AsArray()
            .Select(s => GoldenTests.Variables(s!.AsObject())).ToArray();
        var expected = scenarios.Select(v => tpl.Render(v)).ToArray();
        var results = new RenderResult[scenarios.Length * 16];
        Parallel.For(0, results.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i => results[i] = tpl.Render(scenarios[i % scenarios.Length]));
        for (int i = 0; i < results.Length; i++)
        {
            Assert.Equal(expected[i % scenarios.Length].Text, results[i].Text);
            Assert.Equal(expected[i % scenarios.Length].GenerationSpans, results[i].GenerationSpans);
        }
    }

    [Fact]
    public void RenderDoesNotMutateInputs()
    {
        var messages = JsonNode.Parse("""[{"role": "user", "content": "a"}]""")!;
        string before = messages.ToJsonString();
        R("{% set ns = namespace(x=messages) %}{% set ns.x = 1 %}{{ messages|tojson }}", new() { ["messages"] = messages });
        Assert.Equal(before, messages.ToJsonString());
    }
}
