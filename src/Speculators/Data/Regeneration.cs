using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Speculators.Hub;
using Speculators.Inference;
using Speculators.Util;
using static TorchSharp.torch;

namespace Speculators.Data;

/// <summary>Inputs of <see cref="Regeneration.Run"/> (the flags of <c>speculators regenerate</c>).</summary>
public sealed record RegenerationOptions
{
    /// <summary>The model that writes the new answers (local directory or Hugging Face id).</summary>
    public required string Model { get; init; }
    /// <summary>Conversations or prompts: any file or directory the data readers read.</summary>
    public required string Data { get; init; }
    /// <summary>Output JSON Lines file (appended to when resuming).</summary>
    public required string Output { get; init; }
    public int MaxNewTokens { get; init; } = 512;
    public double Temperature { get; init; }
    /// <summary>Sequences decoded together (the batched generator refills finished rows).</summary>
    public int BatchSize { get; init; } = 16;
    /// <summary>Regenerate only the first N usable rows.</summary>
    public int? MaxSamples { get; init; }
    public long Seed { get; init; }
    public string Device { get; init; } = "cpu";
    /// <summary>Model dtype (float32 by default; bfloat16 only where the device computes it natively).</summary>
    public ScalarType DType { get; init; } = ScalarType.Float32;
    /// <summary>Also write <c>input_ids</c> and <c>loss_mask</c> (prompt 0, generated tokens 1), as speculators' script does.</summary>
    public bool Tokenized { get; init; }
    /// <summary>Ignore what <see cref="Output"/> holds and start over.</summary>
    public bool Overwrite { get; init; }
}

/// <summary>What <see cref="Regeneration.Run"/> wrote.</summary>
public sealed record RegenerationSummary
{
    public required string Output { get; init; }
    /// <summary>Rows in the output file now.</summary>
    public int Rows { get; init; }
    /// <summary>Rows written by this call (the rest were there already).</summary>
    public int Generated { get; init; }
    /// <summary>Rows found in the output from an earlier, interrupted run and kept.</summary>
    public int Resumed { get; init; }
    /// <summary>Generated rows that stopped at an end-of-turn token (the rest hit max-new-tokens or the context).</summary>
    public int Finished { get; init; }
    public long PromptTokens { get; init; }
    public long GeneratedTokens { get; init; }
    /// <summary>Input rows that could not be used, by reason (bad row, prompt longer than the context).</summary>
    public required IReadOnlyDictionary<string, int> Skipped { get; init; }
    public double Seconds { get; init; }
    public double TokensPerSecond => Seconds > 0 ? GeneratedTokens / Seconds : 0;

    public string Format()
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"regenerated: {Output}");
        sb.AppendLine(string.Create(ci, $"  rows: {Rows} ({Generated} generated now, {Resumed} kept from an earlier run); {Finished} of the new rows ended with an end-of-turn token"));
        sb.AppendLine(string.Create(ci, $"  tokens: {PromptTokens} prompt, {GeneratedTokens} generated, {TokensPerSecond:F0} generated tokens/s"));
        sb.Append("  skipped input rows: " + (Skipped.Count == 0 ? "none" : string.Join(", ", Skipped.OrderBy(k => k.Key, StringComparer.Ordinal).Select(k => $"{k.Key}: {k.Value}"))));
        return sb.ToString();
    }
}

/// <summary>
/// Response regeneration (speculators' <c>scripts/response_regeneration</c>): every conversation's last assistant turn
/// is rewritten by the target model itself, so a draft trained on the result learns what the target actually says (the
/// way production drafts are trained). The prompt of a row is every turn before its last assistant turn (or all turns
/// when it ends on the user; <c>prompt</c>/<c>turns</c> rows are one user turn), rendered with the model's chat template
/// and the generation prompt; answers come from the batched generator (<see cref="SpeculativeDecoder.GeneratePlain"/>).
/// Rows are written in input order as <c>{"id", "conversations", "metadata"}</c> (plus <c>input_ids</c>/<c>loss_mask</c> with
/// <see cref="RegenerationOptions.Tokenized"/>); a killed run resumes after the last complete row.
/// </summary>
public static class Regeneration
{
    static readonly JsonSerializerOptions Compact = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static RegenerationSummary Run(RegenerationOptions o, CancellationToken cancellation = default)
    {
        if (o.MaxNewTokens < 1) throw new SpeculatorsException($"--max-new-tokens must be ≥ 1; got {o.MaxNewTokens}.");
        if (o.BatchSize < 1) throw new SpeculatorsException($"--batch-size must be ≥ 1; got {o.BatchSize}.");
        if (o.MaxSamples is int m && m < 1) throw new SpeculatorsException($"--max-samples must be ≥ 1; got {m}.");
        if (!(o.Temperature >= 0)) throw new SpeculatorsException($"--temperature must be ≥ 0; got {o.Temperature}.");
        if (!File.Exists(o.Data) && !Directory.Exists(o.Data)) throw new SpeculatorsException($"--data {o.Data}: file or directory not found.");
        var device = Devices.Parse(o.Device);
        string modelDir = ModelLocator.Resolve(o.Model);
        var renderer = ChatPromptRenderer.FromModelDirectory(modelDir);
        var eos = EvaluationRunner.EosTokenIds(modelDir, renderer);
        if (eos.Count == 0)
            Log.Warn($"{modelDir}: no EOS token in tokenizer_config.json or generation_config.json; every answer runs to --max-new-tokens.");

        string output = Path.GetFullPath(o.Output);
        Directory.CreateDirectory(Path.GetDirectoryName(output)!);
        var (resumedRows, lastIndex) = o.Overwrite ? (0, -1L) : ResumePoint(output);
        if (o.Overwrite && File.Exists(output)) File.Delete(output);
        if (resumedRows > 0) Log.Info($"{output}: {resumedRows} rows from an earlier run kept; continuing after input row {lastIndex}.");

        // Read and render every prompt first (cheap next to generation), so progress has a total.
        var skipped = new Dictionary<string, int>(StringComparer.Ordinal);
        var work = new List<Item>();
        var normalizer = new Normalizer(strict: false);
        long usable = 0;
        using var verifier = CausalLmVerifier.Load(modelDir, o.DType, device);
        int context = verifier.MaxContextLength;
        foreach (var record in ConversationReader.Read(o.Data))
        {
            if (o.MaxSamples is int max && usable >= max) break;
            long index = usable;
            if (record.Error != null || record.Row == null)
            {
                Count(skipped, "BadRow");
                continue;
            }
            PromptSpec spec;
            long[] ids;
            try
            {
                spec = PromptFile.Parse(record, normalizer);
                ids = PromptBuilder.Build(spec, 0, [], renderer);
            }
            catch (SpeculatorsException e)
            {
                Count(skipped, "BadRow");
                Log.WarnOnce("regenerate-bad-row", $"{record.Location}: skipped ({e.Message}); further bad rows are counted silently.");
                continue;
            }
            if (ids.Length >= context)
            {
                Count(skipped, "PromptTooLong");
                continue;
            }
            usable++;
            if (index <= lastIndex) continue;
            work.Add(new Item(index, record, spec, ids));
        }
        Log.Info($"regenerating {work.Count} rows with {modelDir} (batch {o.BatchSize}, max {o.MaxNewTokens} new tokens, temperature {o.Temperature.ToString(CultureInfo.InvariantCulture)})");

        int chunk = Math.Max(o.BatchSize * 4, 32);
        int generated = 0, finished = 0;
        long promptTokens = 0, newTokens = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var progress = new Progress("regenerate", work.Count, "rows"))
        using (var stream = new FileStream(output, FileMode.Append, FileAccess.Write, FileShare.Read))
        {
            for (int start = 0; start < work.Count; start += chunk)
            {
                cancellation.ThrowIfCancellationRequested();
                var part = work.Skip(start).Take(chunk).ToList();
                var options = new GenerationOptions
                {
                    MaxNewTokens = o.MaxNewTokens,
                    Temperature = o.Temperature,
                    // Sampling seeds depend on the position of the chunk in the input, so a resumed run samples like one run through.
                    Seed = o.Seed ^ unchecked(part[0].Index * (long)0x9E3779B97F4A7C15UL),
                    EosTokenIds = eos,
                    BatchSize = o.BatchSize,
                };
                var run = SpeculativeDecoder.GeneratePlain(verifier, part.Select(p => (IReadOnlyList<long>)p.PromptIds).ToList(), options);
                var sb = new StringBuilder();
                for (int i = 0; i < part.Count; i++)
                {
                    var r = run.Results[i];
                    sb.Append(RowJson(part[i], r, renderer, eos, modelDir, o.Tokenized)).Append('\n');
                    promptTokens += part[i].PromptIds.Length;
                    newTokens += r.Tokens.Length;
                    if (r.Finished) finished++;
                }
                var bytes = Encoding.UTF8.GetBytes(sb.ToString());
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
                generated += part.Count;
                progress.Advance(part.Count);
                progress.SetStatus(string.Create(CultureInfo.InvariantCulture, $"{newTokens / Math.Max(clock.Elapsed.TotalSeconds, 1e-9):F0} tokens/s"));
            }
        }
        return new RegenerationSummary
        {
            Output = output,
            Rows = resumedRows + generated,
            Generated = generated,
            Resumed = resumedRows,
            Finished = finished,
            PromptTokens = promptTokens,
            GeneratedTokens = newTokens,
            Skipped = skipped,
            Seconds = clock.Elapsed.TotalSeconds,
        };
    }

    sealed record Item(long Index, RawRecord Record, PromptSpec Spec, long[] PromptIds);

    static void Count(Dictionary<string, int> d, string key) => d[key] = d.TryGetValue(key, out int v) ? v + 1 : 1;

    static string RowJson(Item item, GenerationResult r, ChatPromptRenderer renderer, IReadOnlySet<long> eos, string model, bool tokenized)
    {
        var row = new JsonObject();
        string id = item.Record.Row?["id"] is JsonValue v && v.GetValueKind() is JsonValueKind.String or JsonValueKind.Number
            ? v.ToJsonString().Trim('"') : $"row-{item.Index}";
        row["id"] = id;
        // The answer's text without its end-of-turn token: the chat template writes that again when the row is rendered.
        var answerIds = r.Tokens.Where(t => !eos.Contains(t)).ToList();
        string answer = renderer.DecodeAnswer(answerIds);
        if (item.Spec.Kind != PromptKind.TokenIds)
        {
            JsonArray conversation = item.Spec.Kind == PromptKind.Messages
                ? (JsonArray)item.Spec.Messages!.DeepClone()
                : new JsonArray(new JsonObject { ["role"] = "user", ["content"] = item.Spec.Turns![0] });
            conversation.Add(new JsonObject { ["role"] = "assistant", ["content"] = answer });
            row["conversations"] = conversation;
            if (item.Spec.Tools != null) row["tools"] = item.Spec.Tools.DeepClone();
        }
        if (tokenized || item.Spec.Kind == PromptKind.TokenIds)
        {
            var ids = new JsonArray();
            var mask = new JsonArray();
            foreach (long t in item.PromptIds) { ids.Add(t); mask.Add(0); }
            foreach (long t in r.Tokens) { ids.Add(t); mask.Add(1); }
            row["input_ids"] = ids;
            row["loss_mask"] = mask;
        }
        row["metadata"] = new JsonObject
        {
            ["index"] = item.Index,
            ["source"] = item.Record.Location,
            ["model"] = model,
            ["finish_reason"] = r.FinishReason.ToString().ToLowerInvariant(),
            ["prompt_tokens"] = item.PromptIds.Length,
            ["completion_tokens"] = r.Tokens.Length,
        };
        return row.ToJsonString(Compact);
    }

    /// <summary>
    /// Rows already in <paramref name="path"/> and the input index of the last one. A torn last line (a run killed while
    /// writing) is cut off so appending continues on a clean line.
    /// </summary>
    public static (int Rows, long LastIndex) ResumePoint(string path)
    {
        if (!File.Exists(path)) return (0, -1);
        byte[] bytes = File.ReadAllBytes(path);
        int end = Array.LastIndexOf(bytes, (byte)'\n') + 1;
        if (end < bytes.Length)
        {
            Log.Warn($"{path}: the last line is incomplete (an interrupted run); it is removed and regenerated.");
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
            fs.SetLength(end);
        }
        int rows = 0;
        long last = -1;
        foreach (var line in Encoding.UTF8.GetString(bytes, 0, end).Split('\n'))
        {
            if (line.Length == 0) continue;
            try
            {
                if (JsonNode.Parse(line)?["metadata"]?["index"] is JsonValue idx && idx.TryGetValue(out long i))
                {
                    rows++;
                    last = Math.Max(last, i);
                    continue;
                }
            }
            catch (JsonException) { }
            throw new SpeculatorsException($"{path}: line {rows + 1} is not a row this tool wrote (no metadata.index); pass --overwrite to start over or choose another --output.");
        }
        return (rows, last);
    }
}
