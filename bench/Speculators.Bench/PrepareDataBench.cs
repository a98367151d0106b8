using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Data;
using Speculators.Data.Preparation;
using Speculators.Text;
using Speculators.Util;

namespace Speculators.Bench;

/// <summary>
/// prepare-data conversations/s, as ratios against work measured in the same run on the same conversations: the
/// chat-template render alone and the tokenizer alone (one thread each), and their serial sum, so the pipeline's own
/// overhead (reading JSON Lines, normalization, masks, Arrow writing, token frequencies) is visible; then the pipeline
/// with 1 worker and with all cores, for the pattern (Qwen3's own template), generation (qwen3_training.jinja) and
/// boundary strategies.
/// Usage: speculators-bench prepare-data [--conversations 2000] [--turns 3] [--words 120] [--strategies pattern,generation,boundary]
/// </summary>
public sealed class PrepareDataBench : IBenchmark
{
    public string Name => "prepare-data";
    public string Description => "prepare-data conversations/s vs render-only and tokenize-only throughput (1 worker and all cores)";

    public int Run(string[] args)
    {
        int conversations = 2000, turns = 3, words = 120;
        string[] strategies = ["pattern", "generation", "boundary"];
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--conversations": conversations = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--turns": turns = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--words": words = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--strategies": strategies = args[++i].Split(','); break;
                default: Console.Error.WriteLine($"unknown option {args[i]}"); return 1;
            }
        }
        string data = SharedData.Find();
        string model = Path.Combine(data, "tokenizers", "qwen3");
        string work = Path.Combine(Path.GetTempPath(), "prepare-bench-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(work);
        try
        {
            var lines = Corpus(conversations, turns, words, seed: 1);
            string input = Path.Combine(work, "in.jsonl");
            File.WriteAllLines(input, lines);
            var sw = Stopwatch.StartNew();
            var tok = HfTokenizer.Load(model);
            Console.WriteLine($"{conversations} conversations × {turns} exchanges × ~{words} words, {new FileInfo(input).Length / 1e6:F1} MB JSONL; " +
                              $"Qwen3 tokenizer loaded in {sw.Elapsed.TotalSeconds:F1} s; {Environment.ProcessorCount} cores");

            var normalizer = new Normalizer();
            var convs = ConversationReader.Read(input).Select(r => normalizer.Normalize(r).Conversation!).ToList();
            var template = ChatTemplate.FromModelDirectory(model);

            // Baselines, one thread, warm (a first pass fills the tokenizer's word cache and JITs).
            var texts = convs.Select(c => template.Render(c.Messages, c.Tools).Text).ToList();
            foreach (var t in texts) tok.Encode(t, addSpecialTokens: false);
            double render = Best(3, () => { foreach (var c in convs) template.Render(c.Messages, c.Tools); });
            double tokenize = Best(3, () => { foreach (var t in texts) tok.Encode(t, addSpecialTokens: false); });
            long tokens = texts.Sum(t => (long)tok.EncodeToIds(t, false).Length);
            double serial = render + tokenize;
            double n = conversations;
            Console.WriteLine($"{tokens / n:F0} tokens per conversation");
            Console.WriteLine($"render only   (1 thread): {n / render,9:F0} conv/s");
            Console.WriteLine($"tokenize only (1 thread): {n / tokenize,9:F0} conv/s ({tokens / tokenize / 1e6:F2} M tok/s, ids + offsets)");
            Console.WriteLine($"render+tokenize (serial): {n / serial,9:F0} conv/s  ← baseline");
            double read = Best(3, () => { var nz = new Normalizer(); foreach (var r in ConversationReader.Read(input)) nz.Normalize(r); });
            Console.WriteLine($"read + normalize JSONL  : {n / read,9:F0} conv/s");
            var patternMasker = LossMasker.Create(template, tok);
            double mask = Best(3, () => { foreach (var c in convs) patternMasker.Mask(c.Messages, c.Tools, 8192); });
            Console.WriteLine($"pattern masker (1 thread): {n / mask,8:F0} conv/s = {serial / mask:F2}× baseline");
            var pat = patternMasker.Pattern!;
            var asRegex = AssistantPattern.FromUser(pat.Pattern); // the same pattern, run by the regex engine
            double rx = Best(3, () => { foreach (var t in texts) asRegex.Spans(t, "bench"); });
            double lit = Best(3, () => { foreach (var t in texts) pat.Spans(t, "bench"); });
            Console.WriteLine($"detected pattern spans: regex {n / rx:F0} conv/s, ordinal scan {n / lit:F0} conv/s ({rx / lit:F1}× faster)");

            Log.Quiet = true;
            foreach (var strategy in strategies)
            {
                var (kind, templatePath) = strategy switch
                {
                    "pattern" => (LossMaskStrategy.Pattern, (string?)null),
                    "generation" => (LossMaskStrategy.Generation, Path.Combine(data, "chat_templates", "qwen3_training.jinja")),
                    "boundary" => (LossMaskStrategy.Boundary, null),
                    _ => throw new ArgumentException($"unknown strategy {strategy}"),
                };
                double one = 0, all = 0;
                long rows = 0;
                foreach (int workers in new[] { 1, Environment.ProcessorCount })
                {
                    double best = double.MaxValue;
                    for (int rep = 0; rep < 2; rep++)
                    {
                        string outDir = Path.Combine(work, $"out-{strategy}-{workers}-{rep}");
                        sw.Restart();
                        var s = PrepareData.Run(new PrepareDataOptions
                        {
                            Model = model, Tokenizer = tok, Data = [input], Output = outDir, MaskStrategy = kind, ChatTemplatePath = templatePath, Workers = workers,
                        });
                        best = Math.Min(best, sw.Elapsed.TotalSeconds);
                        Console.WriteLine($"    {strategy} workers {workers}: total {sw.Elapsed.TotalSeconds:F2} s, building rows {s.BuildTime.TotalSeconds:F2} s");
                        rows = s.Rows;
                        Directory.Delete(outDir, true);
                    }
                    if (workers == 1) one = best; else all = best;
                }
                Console.WriteLine($"prepare-data {strategy,-10}: 1 worker {n / one,7:F0} conv/s = {serial / one:F2}× baseline; " +
                                  $"{Environment.ProcessorCount} workers {n / all,7:F0} conv/s = {serial / all:F2}× baseline, {one / all:F2}× 1 worker ({rows} rows)");
            }
            Log.Quiet = false;
            return 0;
        }
        finally
        {
            Log.Quiet = false;
            Directory.Delete(work, true);
        }
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

    static readonly string[] Vocabulary =
    [
        "the", "model", "data", "training", "token", "speculative", "decoding", "draft", "verifier", "accepts", "about", "which", "because",
        "function", "returns", "value", "error", "cache", "memory", "faster", "example", "question", "answer", "think", "step", "first",
        "then", "finally", "result", "is", "a", "of", "to", "in", "and", "for", "with", "on", "that", "this", "we", "can", "use",
        "42", "3.14", "2026", "naïve", "café", "日本語", "数据", "🙂", "✓", "→", "x²", "(see below)", "e.g.,", "—", "`code`", "{\"k\": 1}",
    ];

    /// <summary>Deterministic multi-turn conversations: ShareGPT and OpenAI forms, some with reasoning and tools-free.</summary>
    static List<string> Corpus(int count, int turns, int words, int seed)
    {
        var rng = new Random(seed);
        string Text(int n)
        {
            var sb = new StringBuilder();
            int len = Math.Max(3, n / 2 + rng.Next(n));
            for (int i = 0; i < len; i++)
            {
                if (i > 0) sb.Append(rng.Next(12) == 0 ? ".\n" : " ");
                sb.Append(Vocabulary[rng.Next(Vocabulary.Length)]);
            }
            return sb.ToString();
        }
        var lines = new List<string>(count);
        for (int c = 0; c < count; c++)
        {
            var msgs = new JsonArray();
            if (c % 3 == 0) msgs.Add(new JsonObject { ["role"] = "system", ["content"] = "You are a helpful assistant." });
            for (int t = 0; t < turns; t++)
            {
                msgs.Add(new JsonObject { ["role"] = "user", ["content"] = Text(words / 3) });
                var a = new JsonObject { ["role"] = "assistant", ["content"] = Text(words) };
                if (c % 4 == 1 && t == turns - 1) a["reasoning_content"] = Text(words / 2);
                msgs.Add(a);
            }
            lines.Add(new JsonObject { ["messages"] = msgs }.ToJsonString());
        }
        return lines;
    }
}
