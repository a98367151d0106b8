using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Speculators.Hub;
using Speculators.Text;
using Speculators.Util;

namespace Speculators.Data.Preparation;

/// <summary>
/// <c>speculators prepare-data</c> as a library call: conversations → chat template → tokens → assistant
/// loss masks → a prepared dataset in HF <c>save_to_disk</c> layout plus <c>token_freq.pt</c>/<c>.json</c>.
/// <para>
/// Assembly follows speculators (speculators.md §6.5): each input is shuffled with
/// <c>numpy.random.default_rng(seed).permutation</c> (<see cref="NumpyRandom"/>) (what <c>datasets</c>' <c>shuffle(seed)</c> does), cut to
/// 3 × <c>MaxSamples</c> records when larger, normalized and turned into rows (one per conversation, or one
/// per assistant turn for the boundary strategy; pre-tokenized <c>input_ids</c> + <c>loss_mask</c> rows pass
/// through); every row is clipped to <c>SeqLength</c> and dropped when it has no supervised token or fewer
/// than <c>MinimumValidTokens</c>; the inputs' rows are concatenated, shuffled again with the same seed, cut to
/// <c>MaxSamples</c>, and written. Token frequencies count the written rows' supervised tokens.
/// </para>
/// <para>
/// Rendering and tokenizing run on <c>Workers</c> threads; results are placed by record position, so the
/// output is identical for any worker count. With <c>MaxSamples</c>, each input is read twice (count, then
/// process only the selected records). Nothing is written until every row is built; a run whose rows have no
/// supervised token fails with the reasons instead of writing an all-zero dataset.
/// </para>
/// </summary>
public static class PrepareData
{
    /// <summary>Runs the whole preparation and returns what was written.</summary>
    public static PrepareDataSummary Run(PrepareDataOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Validate(options);
        var clock = Stopwatch.StartNew();
        string output = Path.GetFullPath(options.Output);
        CheckOutput(output, options.Overwrite);
        int workers = options.Workers > 0 ? options.Workers : Environment.ProcessorCount;

        string modelDir = options.Hub != null ? ModelLocator.Resolve(options.Model, options.Hub) : ModelLocator.Resolve(options.Model);
        Log.Info($"model: {modelDir}");
        int? targetVocab = File.Exists(Path.Combine(modelDir, "config.json")) ? VocabMapping.ReadTargetVocabSize(modelDir) : null;
        var masker = new MaskerHolder(modelDir, options);

        var ctx = new RunContext(options, masker, new Normalizer(options.Strict), targetVocab, workers);
        var inputs = new List<PrepareDataInputSummary>();
        var totals = new Totals();
        var allRows = new List<MaskedRow>();
        for (int k = 0; k < options.Data.Count; k++)
        {
            string spec = options.Data[k];
            var files = options.Hub != null ? DatasetLocator.Resolve(spec, options.Hub) : DatasetLocator.Resolve(spec);
            string label = options.Data.Count > 1 ? $"[{k + 1}/{options.Data.Count}] {spec}" : spec;
            Log.Info($"{label}: {files.Count} file(s)" + (files.Count <= 3 ? ": " + string.Join(", ", files) : ""));
            var (outcomes, records) = ProcessInput(label, files, ctx);
            long rowsBefore = allRows.Count;
            foreach (var o in outcomes)
            {
                totals.Add(o);
                allRows.AddRange(o.Rows);
            }
            totals.Records += records;
            inputs.Add(new PrepareDataInputSummary(spec, files, records, outcomes.Length, allRows.Count - rowsBefore));
        }

        var buildTime = clock.Elapsed;
        // concatenate → shuffle(seed) → first MaxSamples rows.
        int[] order = Shuffle(options.Seed, allRows.Count);
        long take = options.MaxSamples is int max ? Math.Min(max, allRows.Count) : allRows.Count;
        long supervised = 0;
        for (long p = 0; p < take; p++) supervised += allRows[order[p]].Supervised;
        totals.Dropped["OverMaxSamples"] = allRows.Count - take;
        var stats = ctx.Normalizer.Stats;
        if (supervised == 0) throw NothingSupervised(options, totals, masker, take);
        if (totals.Dropped["Unsupervised"] > 0)
            Log.Warn($"dropped {totals.Dropped["Unsupervised"]} rows with no supervised token within --seq-length {options.SeqLength}; " +
                     "if unexpected, raise --seq-length (the assistant text starts after the cut).");
        if (totals.Clipped > 0)
            Log.Warn($"{totals.Clipped} rows were clipped at --seq-length {options.SeqLength}: the tail of their assistant text (and its end-of-turn token) is not trained.");

        // Write (rows in final order), then token frequencies of exactly those rows.
        var freq = new TokenFrequencies();
        PreparedDatasetSummary written;
        long tokens = 0;
        using (var progress = new Progress("writing", take, "rows"))
        using (var writer = new PreparedDatasetWriter(output, new PreparedDatasetWriterOptions { Overwrite = options.Overwrite }))
        {
            long[] ids = new long[Math.Max(1, options.SeqLength)];
            long[] mask = new long[ids.Length];
            for (long p = 0; p < take; p++)
            {
                var row = allRows[order[p]];
                int n = row.Length;
                for (int i = 0; i < n; i++)
                {
                    ids[i] = row.InputIds[i];
                    mask[i] = row.LossMask[i];
                }
                writer.Append(ids.AsSpan(0, n), mask.AsSpan(0, n));
                freq.AddRow(ids.AsSpan(0, n), mask.AsSpan(0, n));
                tokens += n;
                progress.Advance();
            }
            written = writer.Complete();
        }
        freq.SaveBoth(output);

        var masking = masker.Masker;
        return new PrepareDataSummary
        {
            OutputDirectory = written.Directory,
            ShardFiles = written.ShardFiles,
            TokenFreqPt = Path.Combine(output, TokenFrequencies.PtFileName),
            TokenFreqJson = Path.Combine(output, TokenFrequencies.JsonFileName),
            Rows = written.Rows,
            Tokens = tokens,
            SupervisedTokens = supervised,
            Strategy = totals.Conversations > 0 ? masking?.Strategy : null,
            StrategyDescription = totals.Conversations > 0 ? masking?.Description : null,
            Records = totals.Records,
            Processed = totals.Processed,
            Conversations = totals.Conversations,
            PretokenizedRows = totals.Pretokenized,
            Skipped = new Dictionary<string, long>(totals.Skipped),
            DroppedRows = new Dictionary<string, long>(totals.Dropped),
            ClippedRows = totals.Clipped,
            TurnsSkippedForLength = totals.TurnsSkippedForLength,
            UnknownRoles = stats.UnknownRoles,
            ToolsIgnored = stats.ToolsIgnored,
            Inputs = inputs,
            Workers = workers,
            Elapsed = clock.Elapsed,
            BuildTime = buildTime,
        };
    }

    /// <summary><c>datasets</c>' <c>shuffle(seed)</c>: <c>numpy.random.default_rng(seed).permutation(n)</c>.</summary>
    static int[] Shuffle(long seed, long n)
    {
        if (n > Array.MaxLength) throw new SpeculatorsException($"{n} rows are more than one run can shuffle in memory ({Array.MaxLength}); split the input.");
        return new NumpyRandom(seed).Permutation((int)n);
    }

    static void Validate(PrepareDataOptions o)
    {
        if (o.Data.Count == 0) throw new SpeculatorsException("No input data: pass at least one --data (a file, a directory, a preset such as sharegpt, or hf:<id>).");
        if (o.SeqLength <= 0) throw new SpeculatorsException($"--seq-length must be positive; got {o.SeqLength}.");
        if (o.MaxSamples is int m && m <= 0) throw new SpeculatorsException($"--max-samples must be positive; got {m}.");
        if (o.MinimumValidTokens is int v && v < 0) throw new SpeculatorsException($"--minimum-valid-tokens must be >= 0; got {v}.");
        if (o.Seed < 0) throw new SpeculatorsException($"--seed must be >= 0 (numpy seeds are non-negative); got {o.Seed}.");
        if (o.Workers < 0) throw new SpeculatorsException($"--workers must be >= 0 (0 = all cores); got {o.Workers}.");
        if (o.ChatTemplatePath != null && o.TemplateName != null)
            throw new SpeculatorsException("--chat-template and --template-name exclude each other: --template-name picks one of the model's named templates.");
        if (o.AssistantPattern != null && o.MaskStrategy is LossMaskStrategy.Generation or LossMaskStrategy.Boundary)
            throw new SpeculatorsException($"--assistant-pattern applies to the pattern strategy; it cannot be combined with --mask-strategy {o.MaskStrategy.ToString().ToLowerInvariant()}.");
    }

    /// <summary>Files this command writes into the output directory (what --overwrite replaces).</summary>
    static List<string> OwnFiles(string dir)
    {
        var found = new List<string>();
        foreach (var name in new[] { HfDatasetLayout.StateFile, HfDatasetLayout.DatasetInfoFile, HfDatasetLayout.DatasetDictFile, TokenFrequencies.PtFileName, TokenFrequencies.JsonFileName })
            if (File.Exists(Path.Combine(dir, name))) found.Add(name);
        found.AddRange(Directory.EnumerateFiles(dir, "data-*-of-*.arrow").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal));
        return found;
    }

    static void CheckOutput(string output, bool overwrite)
    {
        if (File.Exists(output)) throw new SpeculatorsException($"--output {output} is a file; expected a directory for the prepared dataset.");
        if (!Directory.Exists(output)) return;
        var own = OwnFiles(output);
        if (own.Count == 0) return;
        if (!overwrite)
            throw new SpeculatorsException(
                $"--output {output} already holds a prepared dataset ({string.Join(", ", own.Take(5))}{(own.Count > 5 ? ", …" : "")}); " +
                "pass --overwrite to replace it (only the dataset files and token_freq.* are replaced; other files are kept), or choose another directory.");
        var derived = Directory.EnumerateFiles(output, "*.npy").Select(Path.GetFileName).OfType<string>()
            .Where(n => n.StartsWith("d2t", StringComparison.Ordinal) || n.StartsWith("t2d", StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
        if (Directory.Exists(Path.Combine(output, "hidden_states"))) derived.Add("hidden_states/");
        if (derived.Count > 0)
            Log.Warn($"{output}: {string.Join(", ", derived)} were built from the dataset being replaced and will not match the new rows; " +
                     "they are left in place (this command deletes nothing it did not write) — delete or rebuild them.");
    }

    static SpeculatorsException NothingSupervised(PrepareDataOptions o, Totals t, MaskerHolder masker, long take)
    {
        var why = new List<string>();
        string Counts(Dictionary<string, long> d) =>
            string.Join(", ", d.Where(kv => kv.Value > 0).OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}: {kv.Value}"));
        string skipped = Counts(t.Skipped), dropped = Counts(t.Dropped);
        why.Add($"{t.Records} records read, {t.Processed} processed ({t.Conversations} conversations, {t.Pretokenized} pre-tokenized rows)");
        if (skipped.Length > 0) why.Add("skipped records: " + skipped);
        if (dropped.Length > 0) why.Add("dropped rows: " + dropped);
        if (t.Conversations > 0 && masker.Masker != null) why.Add("mask strategy: " + masker.Masker.Description);
        var hints = new List<string>();
        if (t.Dropped.GetValueOrDefault("Unsupervised") > 0) hints.Add($"rows lost all supervision at --seq-length {o.SeqLength} or their masks are empty: raise --seq-length, or check the mask strategy with `speculators show-masks`");
        if (t.Skipped.GetValueOrDefault("NoAssistantMatch") > 0) hints.Add("the assistant pattern matches none of the rendered conversations: pass --assistant-pattern or --mask-strategy boundary");
        if (t.Skipped.GetValueOrDefault("TemplateError") > 0) hints.Add("the chat template raises on these conversations (run with --strict to see the first error)");
        if (t.Dropped.GetValueOrDefault("BelowMinimumValidTokens") > 0) hints.Add($"--minimum-valid-tokens {o.MinimumValidTokens} removed rows");
        if (t.Records == 0) hints.Add("the inputs hold no records");
        return new SpeculatorsException(
            $"No supervised tokens to write (refusing to write a dataset of {take} rows whose loss masks are all zero): " +
            string.Join("; ", why) + "." + (hints.Count > 0 ? " Hint: " + string.Join("; ", hints) + "." : ""));
    }

    // ------------------------------------------------------------------ one input

    static (RecordOutcome[] Ordered, long Records) ProcessInput(string label, IReadOnlyList<string> files, RunContext ctx)
    {
        IEnumerable<RawRecord> Records() => files.SelectMany(ConversationReader.ReadFile);
        if (ctx.Options.MaxSamples is int max)
        {
            long n = 0;
            using (var counting = new Progress($"{label}: counting records", 0, "records"))
                foreach (var _ in Records()) { n++; counting.Advance(); }
            int[] perm = Shuffle(ctx.Options.Seed, n);
            long keep = n > 3L * max ? 3L * max : n;
            var slotOf = new long[n];
            Array.Fill(slotOf, -1L);
            for (long p = 0; p < keep; p++) slotOf[perm[p]] = p;
            Log.Info(keep < n
                ? $"{label}: {n} records; shuffled (seed {ctx.Options.Seed}), processing the first {keep} (3 × --max-samples)"
                : $"{label}: {n} records; shuffled (seed {ctx.Options.Seed})");
            var results = new RecordOutcome[keep];
            Execute(label, Records(), ctx, keep,
                index => index < n ? slotOf[index] : throw new SpeculatorsException($"{label}: the input changed while it was read (more than the {n} records counted a moment ago)."),
                (slot, outcome) => results[slot] = outcome);
            return (results, n);
        }
        else
        {
            var store = new List<RecordOutcome?>();
            var gate = new object();
            Execute(label, Records(), ctx, 0,
                index =>
                {
                    lock (gate) store.Add(null);
                    return index;
                },
                (slot, outcome) => { lock (gate) store[(int)slot] = outcome; });
            long n = store.Count;
            int[] perm = Shuffle(ctx.Options.Seed, n);
            Log.Info($"{label}: {n} records; shuffled (seed {ctx.Options.Seed})");
            var ordered = new RecordOutcome[n];
            for (long p = 0; p < n; p++) ordered[p] = store[perm[p]]!;
            return (ordered, n);
        }
    }

    /// <summary>
    /// Reads records on this thread and processes them on <c>ctx.Workers</c> threads. <paramref name="slotOf"/> maps a record
    /// index to its result slot (−1: not selected); <paramref name="store"/> receives each result. With --strict the
    /// reported row is the first bad one in file order, whatever the thread timing.
    /// </summary>
    static void Execute(string label, IEnumerable<RawRecord> records, RunContext ctx, long total, Func<long, long> slotOf, Action<long, RecordOutcome> store)
    {
        if (ctx.Workers == 1)
        {
            // One worker: process on this thread, no hand-off.
            using var single = new Progress(label, total, "records");
            long i = 0;
            foreach (var record in records)
            {
                long slot = slotOf(i++);
                if (slot < 0) continue;
                var outcome = ProcessRecord(record, ctx);
                store(slot, outcome);
                single.Advance();
                if (outcome.StrictError != null) throw new SpeculatorsException(outcome.StrictError);
            }
            return;
        }

        using var queue = new BlockingCollection<(long Index, long Slot, RawRecord Record)>(Math.Max(64, ctx.Workers * 32));
        using var cancel = new CancellationTokenSource();
        var strictFailures = new ConcurrentBag<(long Index, string Message)>();
        ExceptionDispatchInfo? fatal = null;
        var fatalGate = new object();
        using var progress = new Progress(label, total, "records");

        void Fail(Exception e)
        {
            lock (fatalGate) fatal ??= ExceptionDispatchInfo.Capture(e);
            cancel.Cancel();
        }

        void Work()
        {
            try
            {
                foreach (var (index, slot, record) in queue.GetConsumingEnumerable(cancel.Token))
                {
                    var outcome = ProcessRecord(record, ctx);
                    store(slot, outcome);
                    progress.Advance();
                    if (outcome.StrictError != null)
                    {
                        strictFailures.Add((index, outcome.StrictError));
                        cancel.Cancel();
                    }
                }
            }
            catch (OperationCanceledException) when (cancel.IsCancellationRequested) { }
            catch (Exception e) { Fail(e); }
        }

        var threads = new Thread[ctx.Workers];
        for (int i = 0; i < threads.Length; i++)
        {
            threads[i] = new Thread(Work) { IsBackground = true, Name = $"prepare-data worker {i}" };
            threads[i].Start();
        }
        try
        {
            long index = 0;
            foreach (var record in records)
            {
                if (cancel.IsCancellationRequested) break;
                long slot = slotOf(index);
                if (slot >= 0) queue.Add((index, slot, record), cancel.Token);
                index++;
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested) { }
        catch (Exception e) { Fail(e); }
        finally
        {
            queue.CompleteAdding();
            foreach (var t in threads) t.Join();
        }
        // Every record before the first failing one was taken before it (one FIFO queue) and finished, so the
        // smallest failing index is the first bad row in file order.
        if (!strictFailures.IsEmpty)
            throw new SpeculatorsException(strictFailures.MinBy(f => f.Index).Message);
        fatal?.Throw();
    }

    // ------------------------------------------------------------------ one record

    static readonly HashSet<MaskFailure> StrictMaskFailures = [MaskFailure.TemplateError, MaskFailure.BoundaryUnstable, MaskFailure.NoAssistantMatch];

    static RecordOutcome ProcessRecord(RawRecord record, RunContext ctx)
    {
        var outcome = new RecordOutcome();
        NormalizeResult nr;
        try
        {
            nr = ctx.Normalizer.Normalize(record);
        }
        catch (SpeculatorsException e) when (ctx.Options.Strict)
        {
            outcome.Skip = "Strict";
            outcome.StrictError = e.Message;
            return outcome;
        }
        outcome.Kind = nr.Kind;
        IReadOnlyList<MaskedRow> rows;
        switch (nr.Kind)
        {
            case NormalizedKind.Skipped:
                outcome.Skip = nr.Skip!.Value.ToString();
                return outcome;
            case NormalizedKind.Pretokenized:
                {
                    var (row, problem) = Pretokenized(nr.Pretokenized!.Value, ctx.TargetVocab);
                    if (row == null)
                    {
                        outcome.Skip = "InvalidPretokenized";
                        if (ctx.Options.Strict) outcome.StrictError = $"{record.Location}: {problem} (--strict stops at the first bad row)";
                        return outcome;
                    }
                    rows = [row];
                    break;
                }
            default:
                {
                    var masker = ctx.Masker.Get();
                    var conv = nr.Conversation!;
                    var mc = masker.Mask(conv.Messages, conv.Tools, ctx.Options.SeqLength);
                    outcome.TurnsSkippedForLength = mc.TurnsSkippedForLength;
                    if (mc.Failure != MaskFailure.None)
                    {
                        outcome.Skip = mc.Failure.ToString();
                        if (ctx.Options.Strict && StrictMaskFailures.Contains(mc.Failure))
                            outcome.StrictError = $"{record.Location}: {mc.Message} (--strict stops at the first bad row)";
                        return outcome;
                    }
                    rows = mc.Rows;
                    break;
                }
        }

        var kept = new List<MaskedRow>(rows.Count);
        int seq = ctx.Options.SeqLength;
        foreach (var r in rows)
        {
            var row = r;
            bool clipped = row.Length > seq;
            if (clipped) row = new MaskedRow(row.InputIds[..seq], row.LossMask[..seq]);
            int supervised = row.Supervised;
            if (supervised == 0) { outcome.Unsupervised++; continue; }
            if (ctx.Options.MinimumValidTokens is int min && supervised < min) { outcome.BelowMinimum++; continue; }
            if (clipped) outcome.Clipped++;
            kept.Add(row);
        }
        outcome.Rows = kept.ToArray();
        return outcome;
    }

    static (MaskedRow? Row, string? Problem) Pretokenized(PreparedRow row, int? vocab)
    {
        int n = row.Length;
        var ids = new int[n];
        var mask = new byte[n];
        for (int i = 0; i < n; i++)
        {
            long id = row.InputIds[i];
            if (id < 0 || id >= (vocab ?? int.MaxValue))
                return (null, $"input_ids[{i}] = {id} is outside the model's vocabulary [0, {vocab ?? int.MaxValue})");
            long m = row.LossMask[i];
            if (m is not (0 or 1)) return (null, $"loss_mask[{i}] = {m}; expected 0 or 1");
            ids[i] = (int)id;
            mask[i] = (byte)m;
        }
        return (new MaskedRow(ids, mask), null);
    }

    // ------------------------------------------------------------------ state

    sealed class RecordOutcome
    {
        public MaskedRow[] Rows = [];
        public NormalizedKind Kind = NormalizedKind.Skipped;
        public string? Skip;
        public string? StrictError;
        public int Unsupervised, BelowMinimum, Clipped, TurnsSkippedForLength;
    }

    sealed class Totals
    {
        public long Records, Processed, Conversations, Pretokenized, Clipped, TurnsSkippedForLength;
        public readonly Dictionary<string, long> Skipped = new(StringComparer.Ordinal);
        public readonly Dictionary<string, long> Dropped = new(StringComparer.Ordinal) { ["Unsupervised"] = 0, ["BelowMinimumValidTokens"] = 0, ["OverMaxSamples"] = 0 };

        public void Add(RecordOutcome o)
        {
            Processed++;
            if (o.Kind == NormalizedKind.Conversation) Conversations++;
            if (o.Kind == NormalizedKind.Pretokenized) Pretokenized++;
            if (o.Skip != null) Skipped[o.Skip] = Skipped.GetValueOrDefault(o.Skip) + 1;
            Dropped["Unsupervised"] += o.Unsupervised;
            Dropped["BelowMinimumValidTokens"] += o.BelowMinimum;
            Clipped += o.Clipped;
            TurnsSkippedForLength += o.TurnsSkippedForLength;
        }
    }

    sealed record RunContext(PrepareDataOptions Options, MaskerHolder Masker, Normalizer Normalizer, int? TargetVocab, int Workers);

    /// <summary>
    /// The tokenizer, chat template and mask strategy, set up once, when the first conversation needs them (inputs of
    /// pre-tokenized rows need none, so a model without a chat template still passes them through). A setup error is
    /// raised for every conversation, i.e. it stops the run.
    /// </summary>
    sealed class MaskerHolder(string modelDir, PrepareDataOptions o)
    {
        readonly Lazy<LossMasker> _masker = new(() => Build(modelDir, o), LazyThreadSafetyMode.ExecutionAndPublication);

        public LossMasker? Masker => _masker.IsValueCreated ? _masker.Value : null;

        public LossMasker Get()
        {
            try { return _masker.Value; }
            catch (SpeculatorsException e) { throw new SpeculatorsException(e.Message, e); }
        }

        static LossMasker Build(string modelDir, PrepareDataOptions o)
        {
            var tokenizer = o.Tokenizer ?? HfTokenizer.Load(modelDir);
            var template = LoadTemplate(modelDir, tokenizer, o);
            Log.Info($"chat template: {template.SourceName}");
            var masker = LossMasker.Create(template, tokenizer, new LossMaskOptions
            {
                Strategy = o.MaskStrategy,
                AssistantPattern = o.AssistantPattern,
                TemplateKwargs = o.TemplateKwargs,
            });
            Log.Info($"mask strategy: {masker.Description}");
            return masker;
        }
    }

    /// <summary>The model's chat template, or <c>ChatTemplatePath</c> with the model's special tokens.</summary>
    public static ChatTemplate LoadTemplate(string modelDir, HfTokenizer tokenizer, PrepareDataOptions o)
    {
        if (o.ChatTemplatePath == null) return ChatTemplate.FromModelDirectory(modelDir, o.TemplateName);
        string path = o.ChatTemplatePath;
        if (!File.Exists(path)) throw new SpeculatorsException($"--chat-template {path}: file not found.");
        if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase)) return ChatTemplate.FromFile(path, null, null);
        return ChatTemplate.FromString(File.ReadAllText(path), path, tokenizer.Config.SpecialTokensMap);
    }
}
