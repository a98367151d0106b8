using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Speculators.Jinja;

namespace Speculators.Bench;

/// <summary>
/// Chat-template render throughput of our Jinja engine against Python jinja2 measured in the same run
/// (python3 configured like transformers' chat templates). Each template renders the 8 conversations of
/// shared/data/chat_templates/scenarios.json (those it accepts) over and over from a parsed template;
/// our side includes converting the System.Text.Json messages, Python's gets native dicts.
/// Usage: speculators-bench jinja-render [--seconds 3] [--templates qwen3.jinja,llama3_1.jinja] [--data DIR] [--python python3]
/// </summary>
public sealed class JinjaRenderBench : IBenchmark
{
    public string Name => "jinja-render";
    public string Description => "chat-template renders/s (Qwen3, Llama-3) vs Python jinja2 in the same run";

    const string PythonScript = """
import json, sys, time
from datetime import datetime
try:
    import jinja2
    from jinja2 import nodes
    from jinja2.ext import Extension
    from jinja2.sandbox import ImmutableSandboxedEnvironment
except ImportError as e:
    print(json.dumps({"error": "jinja2 not importable: %s" % e})); sys.exit(0)
class AssistantTracker(Extension):
    tags = {"generation"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)
    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()
def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
def strftime_now(fmt):
    return datetime.now().strftime(fmt)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now
template_path, scenarios_path, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
t = env.from_string(open(template_path, encoding="utf-8").read())
variables = []
for s in json.load(open(scenarios_path, encoding="utf-8")):
    v = dict(s.get("kwargs", {}))
    v.update(messages=s["messages"], tools=s.get("tools"), documents=None,
             add_generation_prompt=s.get("add_generation_prompt", False), bos_token="<s>", eos_token="</s>")
    try:
        t.render(**v); variables.append(v)
    except Exception:
        pass
end = time.perf_counter() + min(1.0, seconds)
while time.perf_counter() < end:
    for v in variables: t.render(**v)
n = 0; c0 = time.process_time(); t0 = time.perf_counter()
while time.perf_counter() - t0 < seconds:
    for v in variables: t.render(**v); n += 1
wall = time.perf_counter() - t0; cpu = time.process_time() - c0
print(json.dumps({"renders": n, "wall": wall, "cpu": cpu, "scenarios": len(variables), "jinja2": jinja2.__version__}))
""";

    public int Run(string[] args)
    {
        double seconds = 3;
        string[] templates = ["qwen3.jinja", "llama3_1.jinja"];
        string? data = null;
        string python = "python3";
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--seconds": seconds = double.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--templates": templates = args[++i].Split(','); break;
                case "--data": data = args[++i]; break;
                case "--python": python = args[++i]; break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
            }
        }
        data ??= SharedData.Find();
        string dir = Path.Combine(data, "chat_templates");
        string scenariosPath = Path.Combine(dir, "scenarios.json");
        var scenarios = JsonNode.Parse(File.ReadAllText(scenariosPath))!.AsArray();
        Console.WriteLine($"jinja-render: {seconds:F1} s per measurement, {Environment.ProcessorCount} logical CPUs, templates from {dir}");
        foreach (var name in templates)
        {
            string path = Path.Combine(dir, name);
            var tpl = Template.Parse(File.ReadAllText(path));
            var vars = new List<Dictionary<string, object?>>();
            foreach (var s in scenarios)
            {
                var v = new Dictionary<string, object?>
                {
                    ["messages"] = s!["messages"]!.DeepClone(), ["tools"] = s["tools"]?.DeepClone(), ["documents"] = null,
                    ["add_generation_prompt"] = (bool?)s["add_generation_prompt"] ?? false, ["bos_token"] = "<s>", ["eos_token"] = "</s>",
                };
                if (s["kwargs"] is JsonObject kw) foreach (var kv in kw) v[kv.Key] = kv.Value?.DeepClone();
                try { tpl.Render(v); vars.Add(v); } catch (JinjaException) { }
            }
            // Warm up until the JIT has tiered up, then measure twice (before and after Python) and keep the best.
            Measure(tpl, vars, Math.Max(2, seconds));
            var ours1 = Measure(tpl, vars, seconds);
            var py = RunPython(python, path, scenariosPath, seconds);
            var ours2 = Measure(tpl, vars, seconds);
            var ours = ours1.Rate >= ours2.Rate ? ours1 : ours2;
            Console.WriteLine($"{name,-16} ours   {ours.Rate,10:F0} renders/s  ({1e6 / ours.Rate,7:F1} us wall, {ours.CpuUs,7:F1} us CPU per render, {vars.Count} scenarios)");
            if (py.Error != null)
            {
                Console.WriteLine($"{name,-16} python unavailable ({py.Error}); only our figure is reported");
                continue;
            }
            Console.WriteLine($"{name,-16} python {py.Rate,10:F0} renders/s  ({1e6 / py.Rate,7:F1} us wall, {py.CpuUs,7:F1} us CPU per render, jinja2 {py.Version})");
            Console.WriteLine($"{name,-16} ratio ours/python: {ours.Rate / py.Rate:F1}x by wall time, {py.CpuUs / ours.CpuUs:F1}x by CPU time");
        }
        return 0;
    }

    readonly record struct Figure(double Rate, double CpuUs, string? Error = null, string? Version = null);

    static Figure Measure(Template tpl, List<Dictionary<string, object?>> vars, double seconds)
    {
        var proc = Process.GetCurrentProcess();
        proc.Refresh();
        var cpu0 = proc.TotalProcessorTime;
        long n = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
            foreach (var v in vars) { tpl.Render(v); n++; }
        double wall = sw.Elapsed.TotalSeconds;
        proc.Refresh();
        double cpu = (proc.TotalProcessorTime - cpu0).TotalSeconds;
        return new Figure(n / wall, 1e6 * cpu / n);
    }

    static Figure RunPython(string python, string templatePath, string scenariosPath, double seconds)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(PythonScript);
        psi.ArgumentList.Add(templatePath);
        psi.ArgumentList.Add(scenariosPath);
        psi.ArgumentList.Add(seconds.ToString(CultureInfo.InvariantCulture));
        try
        {
            using var p = Process.Start(psi)!;
            string stdout = p.StandardOutput.ReadToEnd();
            string stderr = p.StandardError.ReadToEnd();
            p.WaitForExit();
            var o = JsonNode.Parse(stdout.Trim().Split('\n').Last()) as JsonObject;
            if (o == null) return new Figure(0, 0, $"no result; exit {p.ExitCode}: {stderr.Trim()}");
            if (o["error"] is JsonNode err) return new Figure(0, 0, (string)err!);
            double n = (double)o["renders"]!, wall = (double)o["wall"]!, cpu = (double)o["cpu"]!;
            return new Figure(n / wall, 1e6 * cpu / n, null, (string?)o["jinja2"]);
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or System.Text.Json.JsonException or InvalidOperationException)
        {
            return new Figure(0, 0, $"{python}: {e.Message}");
        }
    }
}
