using System.Collections.Frozen;

namespace Speculators.Text;

/// <summary>
/// Token ids and, per token, the UTF-16 range [Start, End) of the caller's original string it
/// covers (mapped back through the normalizer; a token covering part of a character covers the
/// whole character). Special tokens added by the post-processor get (0, 0).
/// </summary>
public sealed record EncodedText(int[] Ids, (int Start, int End)[] Offsets);

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer whose ids equal HF <c>tokenizers</c>' on
/// byte-level BPE (GPT-2, Llama-3, Qwen) and SentencePiece-style BPE with byte fallback (Llama-2,
/// Mistral): added/special tokens, normalizers with offset alignment, pre-tokenizers, BPE with
/// <c>ignore_merges</c>/<c>byte_fallback</c>, post-processors and decoders. Immutable after
/// loading; <see cref="Encode"/> and <see cref="Decode"/> are thread-safe.
/// </summary>
public sealed class HfTokenizer
{
    readonly BpeModel _model;
    readonly TextNormalizer? _normalizer;
    readonly PreTokenizerStep? _preTokenizer;
    readonly PostProcessorStep? _postProcessor;
    readonly TokenDecoder? _decoder;
    readonly AddedTokenMatcher _rawMatcher;
    readonly AddedTokenMatcher _normalizedMatcher;
    readonly Dictionary<string, int> _addedByContent = new(StringComparer.Ordinal);
    readonly Dictionary<int, AddedToken> _addedById = new();
    readonly Dictionary<int, string> _decodeForm = new();
    readonly FrozenSet<int> _specialIds;
    /// <summary>When set, pieces are cut before this character (see <see cref="BpeModel.CanSplitBefore"/>); a speed-up only.</summary>
    readonly char? _splitBefore;

    /// <summary>Where the tokenizer was read from (for messages).</summary>
    public string Source { get; }
    public TokenizerConfig Config { get; }

    /// <summary>Size including added tokens (= <c>len(tokenizer)</c> in transformers).</summary>
    public int VocabSize { get; }
    public int? BosTokenId { get; }
    public int? EosTokenId { get; }
    public int? PadTokenId { get; }
    public string? BosToken { get; }
    public string? EosToken { get; }
    public string? PadToken { get; }

    /// <summary>
    /// Ids of added tokens marked special plus the config's special tokens (bos, eos, unk, pad,
    /// mask, additional): what transformers registers as special, and what
    /// <c>Decode(skipSpecialTokens: true)</c> drops.
    /// </summary>
    public IReadOnlySet<int> SpecialTokenIds => _specialIds;

    /// <summary>All added tokens (tokenizer.json <c>added_tokens</c>), in file order.</summary>
    public IReadOnlyList<AddedToken> AddedTokens { get; }

    /// <summary>Ids the post-processor puts before and after a sequence when special tokens are added (e.g. Llama's BOS).</summary>
    public (int[] Prefix, int[] Suffix) PostProcessorSpecialIds { get; }

    /// <summary>Loads <c>tokenizer.json</c> and <c>tokenizer_config.json</c> (plus chat template files) from a model directory.</summary>
    public static HfTokenizer Load(string modelDir)
    {
        string json = Path.Combine(modelDir, "tokenizer.json");
        if (!File.Exists(json))
            throw new SpeculatorsException($"{modelDir}: no tokenizer.json found (only tokenizer.json tokenizers are supported; convert slow tokenizers with transformers first).");
        return Build(File.ReadAllBytes(json), json, TokenizerConfig.Load(modelDir));
    }

    /// <summary>Loads from explicit files; without a config file the config is empty (no BOS/EOS names, no chat template).</summary>
    public static HfTokenizer FromFiles(string tokenizerJson, string? tokenizerConfigJson)
    {
        if (!File.Exists(tokenizerJson)) throw new SpeculatorsException($"{tokenizerJson}: file not found.");
        TokenizerConfig cfg;
        if (tokenizerConfigJson == null) cfg = new TokenizerConfig();
        else if (!File.Exists(tokenizerConfigJson)) throw new SpeculatorsException($"{tokenizerConfigJson}: file not found.");
        else cfg = TokenizerConfig.Parse(File.ReadAllText(tokenizerConfigJson), tokenizerConfigJson);
        return Build(File.ReadAllBytes(tokenizerJson), tokenizerJson, cfg);
    }

    /// <summary>Builds from tokenizer.json text (e.g. just trained) and an optional config.</summary>
    public static HfTokenizer FromJson(string tokenizerJson, TokenizerConfig? config = null, string source = "tokenizer.json") =>
        Build(System.Text.Encoding.UTF8.GetBytes(tokenizerJson), source, config ?? new TokenizerConfig());

    static HfTokenizer Build(byte[] json, string source, TokenizerConfig cfg) => new(TokenizerJson.Parse(json, source), cfg, source);

    /// <summary>transformers (v4) rebuilds the post-processor of these classes from add_bos_token / add_eos_token.</summary>
    static readonly HashSet<string> BosEosTemplateClasses = new(StringComparer.Ordinal)
    {
        "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast",
    };

    HfTokenizer(TokenizerPipeline p, TokenizerConfig cfg, string source)
    {
        Source = source;
        Config = cfg;
        _model = p.Model;
        _normalizer = p.Normalizer;
        _preTokenizer = p.PreTokenizer;
        _decoder = p.Decoder;
        AddedTokens = WithConfigTokens(p.AddedTokens, cfg, _model, source);

        var raw = new List<(string, AddedToken)>();
        var normalized = new List<(string, AddedToken)>();
        var specials = new HashSet<int>();
        foreach (var t in AddedTokens)
        {
            if (t.Content.Length == 0) continue;
            _addedByContent.TryAdd(t.Content, t.Id);
            _addedById[t.Id] = t;
            if (t.Special) specials.Add(t.Id);
            if (t.Normalized && _normalizer != null)
            {
                string form = _normalizer.NormalizeString(t.Content);
                if (form != t.Content) _decodeForm[t.Id] = form;
                normalized.Add((form, t));
            }
            else if (t.Normalized) normalized.Add((t.Content, t));
            else raw.Add((t.Content, t));
        }
        _rawMatcher = new AddedTokenMatcher(raw);
        _normalizedMatcher = new AddedTokenMatcher(normalized);

        int overlapping = _addedByContent.Keys.Count(k => _model.TryGetId(k, out _));
        VocabSize = _model.VocabCount + _addedByContent.Count - overlapping;

        BosToken = cfg.BosToken;
        EosToken = cfg.EosToken;
        PadToken = cfg.PadToken;
        BosTokenId = BosToken == null ? null : TokenToId(BosToken);
        EosTokenId = EosToken == null ? null : TokenToId(EosToken);
        PadTokenId = PadToken == null ? null : TokenToId(PadToken);
        foreach (var s in new[] { cfg.BosToken, cfg.EosToken, cfg.UnkToken, cfg.PadToken, cfg.MaskToken }.Concat(cfg.AdditionalSpecialTokens))
            if (s != null && TokenToId(s) is int sid) specials.Add(sid);
        _specialIds = specials.ToFrozenSet();

        var post = p.PostProcessor;
        if (cfg.TokenizerClass != null && BosEosTemplateClasses.Contains(cfg.TokenizerClass))
        {
            bool addBos = cfg.AddBosToken ?? true, addEos = cfg.AddEosToken ?? false;
            if (addBos && BosTokenId == null)
                throw new SpeculatorsException($"{source}: tokenizer_config.json asks for add_bos_token but bos_token is not set or not in the vocabulary.");
            if (addEos && EosTokenId == null)
                throw new SpeculatorsException($"{source}: tokenizer_config.json asks for add_eos_token but eos_token is not set or not in the vocabulary.");
            post = new TemplatePostProcessor(addBos ? [BosTokenId!.Value] : [], addEos ? [EosTokenId!.Value] : []);
        }
        _postProcessor = post;
        // Without a splitting pre-tokenizer (Llama-2 style), SentencePiece words start at '▁': cut there when provably safe.
        if (_preTokenizer is null or MetaspacePreTokenizer && _model.CanSplitBefore('\u2581')) _splitBefore = '\u2581';
        PostProcessorSpecialIds = post?.SpecialIds ?? ([], []);
    }

    /// <summary>
    /// transformers (PreTrainedTokenizerFast) also registers the tokens of tokenizer_config.json
    /// that tokenizer.json lacks: <c>added_tokens_decoder</c> entries (by id order), then special
    /// tokens (bos, eos, unk, pad, mask, additional) that are not added tokens yet. Like HF's
    /// <c>add_tokens</c>, a token already in the model vocabulary keeps that id; others get the next
    /// id after the vocabulary / the largest added id.
    /// </summary>
    static List<AddedToken> WithConfigTokens(IReadOnlyList<AddedToken> fromJson, TokenizerConfig cfg, BpeModel model, string source)
    {
        var list = fromJson.ToList();
        var contents = list.Select(t => t.Content).ToHashSet(StringComparer.Ordinal);
        var toAdd = new List<(string Content, bool Special, bool Normalized, bool Lstrip, bool Rstrip, bool SingleWord)>();
        if (cfg.Extra != null && cfg.Extra.TryGetValue("added_tokens_decoder", out var dec) && dec.ValueKind == System.Text.Json.JsonValueKind.Object)
        {
            var entries = new List<(int Id, System.Text.Json.JsonElement Value, string Content)>();
            foreach (var kv in dec.EnumerateObject())
            {
                if (!int.TryParse(kv.Name, out int id) || kv.Value.ValueKind != System.Text.Json.JsonValueKind.Object
                    || !kv.Value.TryGetProperty("content", out var c) || c.ValueKind != System.Text.Json.JsonValueKind.String)
                    throw new SpeculatorsException($"{source}: tokenizer_config.json added_tokens_decoder['{kv.Name}'] must map an integer id to {{\"content\": ...}}.");
                entries.Add((id, kv.Value, c.GetString()!));
            }
            foreach (var (_, v, content) in entries.OrderBy(e => e.Id))
            {
                if (content.Length == 0 || contents.Contains(content)) continue;
                bool Flag(string name, bool dflt) => v.TryGetProperty(name, out var f) && f.ValueKind is System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False ? f.GetBoolean() : dflt;
                bool special = Flag("special", false);
                toAdd.Add((content, special, Flag("normalized", !special), Flag("lstrip", false), Flag("rstrip", false), Flag("single_word", false)));
                contents.Add(content);
            }
        }
        foreach (var s in new[] { cfg.BosToken, cfg.EosToken, cfg.UnkToken, cfg.PadToken, cfg.MaskToken }.Concat(cfg.AdditionalSpecialTokens))
        {
            if (string.IsNullOrEmpty(s) || contents.Contains(s)) continue;
            toAdd.Add((s, true, false, false, false, false));
            contents.Add(s);
        }
        int vocab = model.VocabCount;
        foreach (var t in toAdd)
        {
            int id;
            if (!model.TryGetId(t.Content, out id))
            {
                int max = list.Count == 0 ? -1 : list.Max(a => a.Id);
                id = max < 0 ? vocab : max >= vocab || vocab == 0 ? max + 1 : vocab;
            }
            list.Add(new AddedToken(id, t.Content, t.Special, t.Normalized, t.Lstrip, t.Rstrip, t.SingleWord));
        }
        return list;
    }

    /// <summary>Id of a token string: added tokens first, then the model vocabulary (HF token_to_id).</summary>
    public int? TokenToId(string token)
    {
        if (_addedByContent.TryGetValue(token, out int id)) return id;
        return _model.TryGetId(token, out id) ? id : null;
    }

    /// <summary>The token string of an id (added token content, else the raw vocabulary entry, e.g. "Ġthe").</summary>
    public string? IdToToken(int id)
    {
        if (_addedById.TryGetValue(id, out var t)) return _decodeForm.TryGetValue(id, out var f) ? f : t.Content;
        return _model.IdToToken(id);
    }

    [ThreadStatic] static TokenBuffer? t_tokens;
    [ThreadStatic] static PreTokenizedText? t_pre;
    [ThreadStatic] static List<(int Start, int End, AddedToken Token)>? t_matches;

    /// <summary>Encodes text (HF <c>encode(text, add_special_tokens)</c>) with offsets into <paramref name="text"/>.</summary>
    public EncodedText Encode(string text, bool addSpecialTokens = true)
    {
        var buf = EncodeToBuffer(text, addSpecialTokens);
        int n = buf.Count;
        var offsets = new (int, int)[n];
        for (int i = 0; i < n; i++) offsets[i] = (buf.Starts[i], buf.Ends[i]);
        return new EncodedText(buf.Ids[..n], offsets);
    }

    /// <summary>Ids only (same ids as <see cref="Encode"/>).</summary>
    public int[] EncodeToIds(string text, bool addSpecialTokens = true)
    {
        var buf = EncodeToBuffer(text, addSpecialTokens);
        return buf.Ids[..buf.Count];
    }

    TokenBuffer EncodeToBuffer(string text, bool addSpecialTokens)
    {
        ArgumentNullException.ThrowIfNull(text);
        var buf = t_tokens ??= new TokenBuffer();
        buf.Clear();
        string src = ReplaceLoneSurrogates(text);
        if (_rawMatcher.IsEmpty) EncodeSegment(src, 0, src.Length, buf);
        else
        {
            var matches = t_matches ??= new();
            matches.Clear();
            _rawMatcher.FindMatches(src, matches);
            int pos = 0;
            foreach (var (s, e, tok) in matches)
            {
                if (s > pos) EncodeSegment(src, pos, s, buf);
                buf.Add(tok.Id, s, e);
                pos = e;
            }
            if (pos < src.Length) EncodeSegment(src, pos, src.Length, buf);
        }
        _postProcessor?.Process(buf, addSpecialTokens, IdToToken);
        return buf;
    }

    /// <summary>Lone surrogates cannot be UTF-8 encoded; like .NET's encoder (and HF fed by it) they become U+FFFD, one unit for one unit.</summary>
    static string ReplaceLoneSurrogates(string text)
    {
        int i = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (i < 0) return text;
        char[]? copy = null;
        for (; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) { i++; continue; }
            copy ??= text.ToCharArray();
            copy[i] = '\uFFFD';
        }
        return copy == null ? text : new string(copy);
    }

    void EncodeSegment(string src, int start, int end, TokenBuffer buf)
    {
        var pt = t_pre ??= new PreTokenizedText();
        var span = src.AsSpan(start, end - start);
        var norm = _normalizer?.Normalize(span);
        if (norm == null) pt.Reset(src.AsMemory(start, end - start), null, null, start);
        else pt.Reset(norm.Memory, norm.StartArray, norm.EndArray, start);
        int len = pt.Text.Length;
        if (len == 0) return;
        if (_normalizedMatcher.IsEmpty) pt.Pieces.Add(new Piece(0, len));
        else
        {
            var matches = new List<(int Start, int End, AddedToken Token)>();
            _normalizedMatcher.FindMatches(pt.Text.Span, matches);
            int pos = 0;
            foreach (var (s, e, tok) in matches)
            {
                if (s > pos) pt.Pieces.Add(new Piece(pos, s));
                pt.Pieces.Add(new Piece(s, e, tok.Id));
                pos = e;
            }
            if (pos < len) pt.Pieces.Add(new Piece(pos, len));
        }
        _preTokenizer?.Apply(pt);
        var text = pt.Text.Span;
        foreach (var p in pt.Pieces)
        {
            if (p.AddedId >= 0)
            {
                var (s, e) = pt.MapRange(p.Start, p.End);
                buf.Add(p.AddedId, s, e);
                continue;
            }
            int before = buf.Count;
            if (_splitBefore is char cut && !pt.ByteLevel)
            {
                int ws = p.Start;
                for (int i = p.Start + 1; i < p.End; i++)
                {
                    if (text[i] != cut || text[i - 1] == cut) continue;
                    _model.Tokenize(text[ws..i], false, buf, ws);
                    ws = i;
                }
                _model.Tokenize(text[ws..p.End], false, buf, ws);
            }
            else _model.Tokenize(text[p.Start..p.End], pt.ByteLevel, buf, p.Start);
            for (int i = before; i < buf.Count; i++)
            {
                var (s, e) = pt.MapRange(buf.Starts[i], buf.Ends[i]);
                buf.Starts[i] = s;
                buf.Ends[i] = e;
            }
        }
    }

    /// <summary>
    /// Decodes ids to text (HF <c>decode</c>: unknown ids are skipped, the decoder pipeline runs
    /// over the token strings; no <c>clean_up_tokenization_spaces</c>).
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Count);
        foreach (int id in ids)
        {
            if (skipSpecialTokens && _specialIds.Contains(id)) continue;
            var t = IdToToken(id);
            if (t != null) tokens.Add(t);
        }
        if (_decoder == null) return string.Join(" ", tokens);
        return string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <summary>A decoder for a growing id stream that only emits complete text (see <see cref="TokenStreamDecoder"/>).</summary>
    public TokenStreamDecoder CreateStreamDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>Drops the cached per-word BPE results (frees memory after a large job; benchmarks use it for cold runs).</summary>
    public void ClearCache() => _model.ClearCache();

    internal BpeModel Model => _model;
}
