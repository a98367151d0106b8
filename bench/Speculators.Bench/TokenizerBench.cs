using System.Diagnostics;
using System.Text.Json;
using Speculators.Text;

namespace Speculators.Bench;

/// <summary>
/// Encode throughput of our tokenizer vs HF's Rust tokenizers (Tokenizers.DotNet) on the same
/// documents in the same run. Baseline: the Rust encoder's tokens/s; the figure is ours ÷ Rust.
/// Documents: the shared rendered chats, chat templates and this repository's sources/docs.
/// </summary>
public sealed class TokenizerBench : IBenchmark
{
    public string Name => "tokenizer";
    public string Description => "encode tokens/s of HfTokenizer vs HF Rust tokenizers (ratio), per real tokenizer";

    public int Run(string[] args)
    {
        string data = SharedData.Find();
        string[] names = args.Length > 0 ? args : ["qwen3", "llama3_1", "llama2"];
        var docs = LoadDocuments(data);
        long chars = docs.Sum(d => (long)d.Length);
        Console.WriteLine($"documents: {docs.Count}, {chars / 1e6:F2} M chars; {Environment.ProcessorCount} cores");
        foreach (var name in names)
        {
            string dir = Path.Combine(data, "tokenizers", name);
            var sw = Stopwatch.StartNew();
            var ours = HfTokenizer.Load(dir);
            double loadOurs = sw.Elapsed.TotalMilliseconds;
            sw.Restart();
            var rust = new Tokenizers.DotNet.Tokenizer(vocabPath: Path.Combine(dir, "tokenizer.json"));
            double loadRust = sw.Elapsed.TotalMilliseconds;

            // JIT warm-up, then a cold pass (empty word caches), then best of 3 warm passes, one thread each.
            foreach (var d in docs.Take(50)) { ours.EncodeToIds(d); ours.Encode(d); rust.Encode(d); }
            ours.ClearCache();
            long tokens = 0;
            sw.Restart();
            foreach (var d in docs) tokens += ours.EncodeToIds(d).Length;
            double oursCold = sw.Elapsed.TotalSeconds;
            long rustTokens = 0;
            sw.Restart();
            foreach (var d in docs) rustTokens += rust.Encode(d).Length;
            double rustCold = sw.Elapsed.TotalSeconds;
            if (rustTokens != tokens) Console.WriteLine($"  WARNING: token counts differ: ours {tokens}, rust {rustTokens}");

            double oursWarm = Best(3, () => { foreach (var d in docs) ours.EncodeToIds(d); });
            double oursOffsets = Best(3, () => { foreach (var d in docs) ours.Encode(d); });
            double rustWarm = Best(3, () => { foreach (var d in docs) rust.Encode(d); });
            double parallel = Best(3, () => Parallel.ForEach(docs, d => ours.EncodeToIds(d)));

            Console.WriteLine($"{name}: {tokens} tokens; load ours {loadOurs:F0} ms, rust {loadRust:F0} ms");
            Console.WriteLine($"  cold (1 thread):  ours {tokens / oursCold / 1e6:F2} M tok/s, rust {tokens / rustCold / 1e6:F2} M tok/s, ratio {rustCold / oursCold:F2}");
            Console.WriteLine($"  warm (1 thread):  ours {tokens / oursWarm / 1e6:F2} M tok/s (ids), {tokens / oursOffsets / 1e6:F2} M tok/s (ids+offsets), rust {tokens / rustWarm / 1e6:F2} M tok/s, ratio {rustWarm / oursWarm:F2}");
            Console.WriteLine($"  warm ({Environment.ProcessorCount} threads): ours {tokens / parallel / 1e6:F2} M tok/s, ratio to rust 1-thread {rustWarm / parallel:F2}");
        }
        return 0;
    }

    static double Best(int reps, Action a)
    {
        double best = double.MaxValue;
        for (int i = 0; i < reps; i++)
        {
            var sw = Stopwatch.StartNew();
            a();
            best = Math.Min(best, sw.Elapsed.TotalSeconds);
        }
        return best;
    }

    static List<string> LoadDocuments(string data)
    {
        var docs = new List<string>();
        foreach (var line in File.ReadLines(Path.Combine(data, "chat_templates", "goldens.jsonl")))
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.GetProperty("ok").GetBoolean()) docs.Add(doc.RootElement.GetProperty("text").GetString()!);
        }
        foreach (var f in Directory.EnumerateFiles(Path.Combine(data, "chat_templates"), "*.jinja")) docs.Add(File.ReadAllText(f));
        string? repo = FindUp("Speculators.slnx");
        if (repo != null)
            foreach (var f in Directory.EnumerateFiles(repo, "*.*", SearchOption.AllDirectories)
                         .Where(f => (f.EndsWith(".cs") || f.EndsWith(".md")) && !f.Contains("/bin/") && !f.Contains("/obj/") && !f.EndsWith(".g.cs"))
                         .Order(StringComparer.Ordinal))
                docs.Add(File.ReadAllText(f));
        return docs;
    }

    static string? FindUp(string marker)
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, marker))) return d.FullName;
        return null;
    }
}
