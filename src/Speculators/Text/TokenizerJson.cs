using System.Text.Json;
using Speculators.Text.Unicode;

namespace Speculators.Text;

/// <summary>The pipeline read from a tokenizer.json (HF <c>tokenizers</c> serialization).</summary>
internal sealed class TokenizerPipeline
{
    public required BpeModel Model { get; init; }
    public TextNormalizer? Normalizer { get; init; }
    public PreTokenizerStep? PreTokenizer { get; init; }
    public PostProcessorStep? PostProcessor { get; init; }
    public TokenDecoder? Decoder { get; init; }
    public required IReadOnlyList<AddedToken> AddedTokens { get; init; }
}

/// <summary>
/// Reads tokenizer.json into our components. Supported: model BPE; normalizers NFC/NFD/NFKC/NFKD,
/// Lowercase, Strip, StripAccents, Prepend, Replace, Sequence; pre-tokenizers Split, ByteLevel,
/// Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, CharDelimiterSplit,
/// BertPreTokenizer, Sequence; post-processors TemplateProcessing, ByteLevel, BertProcessing,
/// RobertaProcessing, Sequence; decoders ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace,
/// BPEDecoder, WordPiece, Sequence. Anything else is rejected with a message naming it.
/// </summary>
internal static class TokenizerJson
{
    public static TokenizerPipeline Parse(string json, string source) => Parse(System.Text.Encoding.UTF8.GetBytes(json), source);

    public static TokenizerPipeline Parse(ReadOnlyMemory<byte> utf8Json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(utf8Json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new SpeculatorsException($"{source}: invalid JSON ({e.Message}).", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new SpeculatorsException($"{source}: expected a JSON object at the top level.");
            if (!root.TryGetProperty("model", out var model) || model.ValueKind != JsonValueKind.Object)
                throw new SpeculatorsException($"{source}: missing the 'model' object.");
            var bpe = ParseModel(model, source);
            var normalizer = ParseNormalizer(Get(root, "normalizer"), source, "normalizer");
            var pre = ParsePreTokenizer(Get(root, "pre_tokenizer"), source, "pre_tokenizer");
            CheckByteLevelLast(pre, source);
            var added = ParseAddedTokens(Get(root, "added_tokens"), source);
            var post = ParsePostProcessor(Get(root, "post_processor"), source, "post_processor", bpe, added);
            var decoder = ParseDecoder(Get(root, "decoder"), source, "decoder");
            return new TokenizerPipeline
            {
                Model = bpe, Normalizer = normalizer, PreTokenizer = pre, PostProcessor = post, Decoder = decoder, AddedTokens = added,
            };
        }
    }

    static JsonElement? Get(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    static string? Str(JsonElement o, string name) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    static bool Bool(JsonElement o, string name, bool dflt) =>
        o.TryGetProperty(name, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : dflt;

    static int Int(JsonElement o, string name, int dflt) =>
        o.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : dflt;

    static string TypeOf(JsonElement o, string source, string path) =>
        Str(o, "type") ?? throw new SpeculatorsException($"{source}: {path} has no 'type'.");

    static BpeModel ParseModel(JsonElement m, string source)
    {
        string type = Str(m, "type") ?? (m.TryGetProperty("merges", out _) ? "BPE" : "?");
        if (type != "BPE")
            throw new SpeculatorsException($"{source}: model.type '{type}' is not supported; only BPE tokenizers (Llama, Mistral, Qwen, GPT-2 style) are.");
        if (m.TryGetProperty("dropout", out var d) && d.ValueKind == JsonValueKind.Number && d.GetDouble() > 0)
            throw new SpeculatorsException($"{source}: model.dropout is {d.GetDouble()}; BPE dropout (random segmentation) is not supported for encoding.");
        if (!m.TryGetProperty("vocab", out var vocabEl) || vocabEl.ValueKind != JsonValueKind.Object)
            throw new SpeculatorsException($"{source}: model.vocab must be an object of token → id.");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabEl.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id))
                throw new SpeculatorsException($"{source}: model.vocab['{p.Name}'] must be an integer id.");
            vocab[p.Name] = id;
        }
        int mergeCount = m.TryGetProperty("merges", out var mergesEl) && mergesEl.ValueKind == JsonValueKind.Array ? mergesEl.GetArrayLength() : 0;
        var model = new BpeModel(vocab, mergeCount, Str(m, "unk_token"), Str(m, "continuing_subword_prefix"), Str(m, "end_of_word_suffix"),
            Bool(m, "fuse_unk", false), Bool(m, "byte_fallback", false), Bool(m, "ignore_merges", false), source);
        if (mergeCount == 0) return model;
        char[] buf = new char[512];
        int i = 0;
        foreach (var e in mergesEl.EnumerateArray())
        {
            if (e.ValueKind == JsonValueKind.String)
            {
                var line = Chars(e, ref buf, 0);
                int sp = line.IndexOf(' ');
                if (sp < 0 || line[(sp + 1)..].IndexOf(' ') >= 0)
                    throw new SpeculatorsException($"{source}: model.merges[{i}] '{line}' must be two tokens separated by one space.");
                model.AddMerge(line[..sp], line[(sp + 1)..]);
            }
            else if (e.ValueKind == JsonValueKind.Array && e.GetArrayLength() == 2
                     && e[0].ValueKind == JsonValueKind.String && e[1].ValueKind == JsonValueKind.String)
            {
                int la = Chars(e[0], ref buf, 0).Length;
                int lb = Chars(e[1], ref buf, la).Length;
                model.AddMerge(buf.AsSpan(0, la), buf.AsSpan(la, lb));
            }
            else
                throw new SpeculatorsException($"{source}: model.merges[{i}] must be \"a b\" or [\"a\", \"b\"]; found {e.GetRawText()}.");
            i++;
        }
        return model;
    }

    /// <summary>A JSON string's characters written into <paramref name="buf"/> at <paramref name="at"/>, without allocating for unescaped strings.</summary>
    static ReadOnlySpan<char> Chars(JsonElement e, ref char[] buf, int at)
    {
        var raw = System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(e);
        raw = raw[1..^1]; // the quotes
        if (raw.IndexOf((byte)'\\') < 0)
        {
            int n = System.Text.Encoding.UTF8.GetMaxCharCount(raw.Length);
            if (buf.Length < at + n) Array.Resize(ref buf, (at + n) * 2);
            int written = System.Text.Encoding.UTF8.GetChars(raw, buf.AsSpan(at));
            return buf.AsSpan(at, written);
        }
        string s = e.GetString()!;
        if (buf.Length < at + s.Length) Array.Resize(ref buf, (at + s.Length) * 2);
        s.CopyTo(buf.AsSpan(at));
        return buf.AsSpan(at, s.Length);
    }

    static (string? Literal, CodePointRegex? Regex) ParsePattern(JsonElement o, string source, string path)
    {
        if (!o.TryGetProperty("pattern", out var p) || p.ValueKind != JsonValueKind.Object)
            throw new SpeculatorsException($"{source}: {path}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}.");
        if (p.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String) return (s.GetString()!, null);
        if (p.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
            return (null, new CodePointRegex(r.GetString()!, $"{source}: {path}.pattern"));
        throw new SpeculatorsException($"{source}: {path}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}; found {p.GetRawText()}.");
    }

    static TextNormalizer? ParseNormalizer(JsonElement? el, string source, string path)
    {
        if (el is not { } n) return null;
        string type = TypeOf(n, source, path);
        switch (type)
        {
            case "NFC": return new UnicodeFormNormalizer(UnicodeForm.NFC);
            case "NFD": return new UnicodeFormNormalizer(UnicodeForm.NFD);
            case "NFKC": return new UnicodeFormNormalizer(UnicodeForm.NFKC);
            case "NFKD": return new UnicodeFormNormalizer(UnicodeForm.NFKD);
            case "Lowercase": return new LowercaseNormalizer();
            case "StripAccents": return new StripAccentsNormalizer();
            case "Strip": return new StripNormalizer(Bool(n, "strip_left", true), Bool(n, "strip_right", true));
            case "Prepend": return new PrependNormalizer(Str(n, "prepend") ?? throw new SpeculatorsException($"{source}: {path}.prepend missing."));
            case "Replace":
            {
                var (lit, re) = ParsePattern(n, source, path);
                return new ReplaceNormalizer(lit, re, Str(n, "content") ?? "");
            }
            case "Sequence":
            {
                if (!n.TryGetProperty("normalizers", out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new SpeculatorsException($"{source}: {path}.normalizers must be a list.");
                var steps = new List<TextNormalizer>();
                int i = 0;
                foreach (var s in arr.EnumerateArray())
                {
                    var step = ParseNormalizer(s.ValueKind == JsonValueKind.Null ? null : s, source, $"{path}.normalizers[{i++}]");
                    if (step != null) steps.Add(step);
                }
                return new SequenceNormalizer(steps);
            }
            default:
                throw new SpeculatorsException($"{source}: {path}.type '{type}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Replace, Sequence).");
        }
    }

    static SplitBehavior ParseBehavior(JsonElement o, string source, string path, SplitBehavior dflt)
    {
        string? b = Str(o, "behavior");
        if (b == null) return dflt;
        return b switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw new SpeculatorsException($"{source}: {path}.behavior '{b}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous."),
        };
    }

    static PreTokenizerStep? ParsePreTokenizer(JsonElement? el, string source, string path)
    {
        if (el is not { } p) return null;
        string type = TypeOf(p, source, path);
        switch (type)
        {
            case "Split":
            {
                var (lit, re) = ParsePattern(p, source, path);
                var regex = re ?? new CodePointRegex(lit!, $"{source}: {path}.pattern", escape: true);
                return new SplitPreTokenizer(regex, ParseBehavior(p, source, path, SplitBehavior.Isolated), Bool(p, "invert", false));
            }
            case "ByteLevel":
                return new ByteLevelPreTokenizer(Bool(p, "add_prefix_space", true), Bool(p, "use_regex", true));
            case "Metaspace":
            {
                string rep = Str(p, "replacement") ?? "\u2581";
                if (rep.Length != 1) throw new SpeculatorsException($"{source}: {path}.replacement must be one character; found '{rep}'.");
                string scheme = Str(p, "prepend_scheme") ?? "always";
                if (p.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.False) scheme = "never";
                if (scheme is not ("always" or "first" or "never"))
                    throw new SpeculatorsException($"{source}: {path}.prepend_scheme '{scheme}' is not one of always, first, never.");
                return new MetaspacePreTokenizer(rep[0], scheme, Bool(p, "split", true));
            }
            case "Digits": return new DigitsPreTokenizer(Bool(p, "individual_digits", false));
            case "Punctuation": return new PunctuationPreTokenizer(ParseBehavior(p, source, path, SplitBehavior.Isolated));
            case "Whitespace": return new WhitespacePreTokenizer();
            case "WhitespaceSplit": return new CharSplitPreTokenizer(System.Text.Rune.IsWhiteSpace);
            case "CharDelimiterSplit":
            {
                string d = Str(p, "delimiter") ?? throw new SpeculatorsException($"{source}: {path}.delimiter missing.");
                var rune = System.Text.Rune.GetRuneAt(d, 0);
                return new CharSplitPreTokenizer(r => r == rune);
            }
            case "BertPreTokenizer":
                return new SequencePreTokenizer([new CharSplitPreTokenizer(System.Text.Rune.IsWhiteSpace), new PunctuationPreTokenizer(SplitBehavior.Isolated)]);
            case "Sequence":
            {
                if (!p.TryGetProperty("pretokenizers", out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new SpeculatorsException($"{source}: {path}.pretokenizers must be a list.");
                var steps = new List<PreTokenizerStep>();
                int i = 0;
                foreach (var s in arr.EnumerateArray())
                {
                    var step = ParsePreTokenizer(s.ValueKind == JsonValueKind.Null ? null : s, source, $"{path}.pretokenizers[{i++}]");
                    if (step != null) steps.Add(step);
                }
                return new SequencePreTokenizer(steps);
            }
            default:
                throw new SpeculatorsException($"{source}: {path}.type '{type}' is not supported (supported: Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, CharDelimiterSplit, BertPreTokenizer, Sequence).");
        }
    }

    /// <summary>The byte mapping is applied by the model, so nothing may split after ByteLevel.</summary>
    static void CheckByteLevelLast(PreTokenizerStep? pre, string source)
    {
        var flat = new List<PreTokenizerStep>();
        void Flatten(PreTokenizerStep s) { if (s is SequencePreTokenizer q) foreach (var x in q.Steps) Flatten(x); else flat.Add(s); }
        if (pre != null) Flatten(pre);
        int idx = flat.FindIndex(s => s is ByteLevelPreTokenizer);
        if (idx >= 0 && idx != flat.Count - 1)
            throw new SpeculatorsException($"{source}: pre_tokenizer has a {flat[idx + 1].GetType().Name.Replace("PreTokenizer", "")} step after ByteLevel; only pipelines where ByteLevel comes last are supported.");
    }

    static List<AddedToken> ParseAddedTokens(JsonElement? el, string source)
    {
        var list = new List<AddedToken>();
        if (el is not { } arr) return list;
        if (arr.ValueKind != JsonValueKind.Array) throw new SpeculatorsException($"{source}: added_tokens must be a list.");
        int i = 0;
        foreach (var t in arr.EnumerateArray())
        {
            if (t.ValueKind != JsonValueKind.Object || !t.TryGetProperty("id", out var idEl) || !idEl.TryGetInt32(out int id) || Str(t, "content") is not { } content)
                throw new SpeculatorsException($"{source}: added_tokens[{i}] must have an integer 'id' and a string 'content'.");
            bool special = Bool(t, "special", false);
            list.Add(new AddedToken(id, content, special, Bool(t, "normalized", !special), Bool(t, "lstrip", false), Bool(t, "rstrip", false), Bool(t, "single_word", false)));
            i++;
        }
        return list;
    }

    static int ResolveId(string token, BpeModel model, IReadOnlyList<AddedToken> added, string source, string path)
    {
        foreach (var a in added) if (a.Content == token) return a.Id;
        if (model.TryGetId(token, out int id)) return id;
        throw new SpeculatorsException($"{source}: {path} refers to token '{token}', which is neither in added_tokens nor in model.vocab.");
    }

    static PostProcessorStep? ParsePostProcessor(JsonElement? el, string source, string path, BpeModel model, IReadOnlyList<AddedToken> added)
    {
        if (el is not { } p) return null;
        string type = TypeOf(p, source, path);
        switch (type)
        {
            case "TemplateProcessing":
            {
                if (!p.TryGetProperty("single", out var single) || single.ValueKind != JsonValueKind.Array)
                    throw new SpeculatorsException($"{source}: {path}.single must be a list of template pieces.");
                var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
                if (p.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object)
                    foreach (var kv in st.EnumerateObject())
                    {
                        if (!kv.Value.TryGetProperty("ids", out var ids) || ids.ValueKind != JsonValueKind.Array)
                            throw new SpeculatorsException($"{source}: {path}.special_tokens['{kv.Name}'].ids must be a list.");
                        specials[kv.Name] = ids.EnumerateArray().Select(x => x.GetInt32()).ToArray();
                    }
                var prefix = new List<int>();
                var suffix = new List<int>();
                bool seenA = false;
                foreach (var piece in single.EnumerateArray())
                {
                    if (piece.TryGetProperty("SpecialToken", out var sp))
                    {
                        string id = Str(sp, "id") ?? throw new SpeculatorsException($"{source}: {path}.single has a SpecialToken without 'id'.");
                        if (!specials.TryGetValue(id, out var ids))
                            ids = [ResolveId(id, model, added, source, $"{path}.single")];
                        (seenA ? suffix : prefix).AddRange(ids);
                    }
                    else if (piece.TryGetProperty("Sequence", out var seq))
                    {
                        if (Str(seq, "id") != "A" || seenA)
                            throw new SpeculatorsException($"{source}: {path}.single must contain the sequence $A exactly once; found {single.GetRawText()}.");
                        seenA = true;
                    }
                    else throw new SpeculatorsException($"{source}: {path}.single piece {piece.GetRawText()} is neither SpecialToken nor Sequence.");
                }
                if (!seenA) throw new SpeculatorsException($"{source}: {path}.single has no $A sequence.");
                return new TemplatePostProcessor(prefix.ToArray(), suffix.ToArray());
            }
            case "ByteLevel":
                return new ByteLevelPostProcessor(Bool(p, "trim_offsets", true), Bool(p, "add_prefix_space", true));
            case "BertProcessing":
            case "RobertaProcessing":
            {
                int Tok(string name)
                {
                    if (!p.TryGetProperty(name, out var a) || a.ValueKind != JsonValueKind.Array || a.GetArrayLength() != 2)
                        throw new SpeculatorsException($"{source}: {path}.{name} must be [token, id].");
                    return a[1].GetInt32();
                }
                bool roberta = type == "RobertaProcessing";
                return new ClsSepPostProcessor(Tok("cls"), Tok("sep"), roberta && Bool(p, "trim_offsets", true), Bool(p, "add_prefix_space", true));
            }
            case "Sequence":
            {
                if (!p.TryGetProperty("processors", out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new SpeculatorsException($"{source}: {path}.processors must be a list.");
                var steps = new List<PostProcessorStep>();
                int i = 0;
                foreach (var s in arr.EnumerateArray())
                {
                    var step = ParsePostProcessor(s.ValueKind == JsonValueKind.Null ? null : s, source, $"{path}.processors[{i++}]", model, added);
                    if (step != null) steps.Add(step);
                }
                return new SequencePostProcessor(steps);
            }
            default:
                throw new SpeculatorsException($"{source}: {path}.type '{type}' is not supported (supported: TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence).");
        }
    }

    static TokenDecoder? ParseDecoder(JsonElement? el, string source, string path)
    {
        if (el is not { } d) return null;
        string type = TypeOf(d, source, path);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Replace":
            {
                var (lit, re) = ParsePattern(d, source, path);
                return new ReplaceDecoder(lit, re, Str(d, "content") ?? "");
            }
            case "Strip":
            {
                string c = Str(d, "content") ?? " ";
                return new StripDecoder(c, Int(d, "start", 0), Int(d, "stop", 0));
            }
            case "Metaspace":
            {
                string rep = Str(d, "replacement") ?? "\u2581";
                string scheme = Str(d, "prepend_scheme") ?? "always";
                if (d.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.False) scheme = "never";
                return new MetaspaceDecoder(rep[0], scheme);
            }
            case "BPEDecoder": return new BpeSuffixDecoder(Str(d, "suffix") ?? "</w>");
            case "WordPiece": return new WordPieceDecoder(Str(d, "prefix") ?? "##", Bool(d, "cleanup", true));
            case "Sequence":
            {
                if (!d.TryGetProperty("decoders", out var arr) || arr.ValueKind != JsonValueKind.Array)
                    throw new SpeculatorsException($"{source}: {path}.decoders must be a list.");
                var steps = new List<TokenDecoder>();
                int i = 0;
                foreach (var s in arr.EnumerateArray())
                {
                    var step = ParseDecoder(s.ValueKind == JsonValueKind.Null ? null : s, source, $"{path}.decoders[{i++}]");
                    if (step != null) steps.Add(step);
                }
                return new SequenceDecoder(steps);
            }
            default:
                throw new SpeculatorsException($"{source}: {path}.type '{type}' is not supported (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, BPEDecoder, WordPiece, Sequence).");
        }
    }
}
