using System.Text;
using Speculators.Jinja.Runtime;

namespace Speculators.Jinja;

/// <summary>How a template is parsed and rendered; the defaults are transformers' chat-template settings.</summary>
public sealed class TemplateOptions
{
    /// <summary>The clock behind <c>strftime_now</c>.</summary>
    public Func<DateTime> Now { get; init; } = () => DateTime.Now;
    /// <summary>Remove the first newline after a block tag (jinja2 trim_blocks).</summary>
    public bool TrimBlocks { get; init; } = true;
    /// <summary>Strip spaces and tabs before a block tag at the start of a line (jinja2 lstrip_blocks).</summary>
    public bool LstripBlocks { get; init; } = true;
}

/// <summary>The rendered text and the output of every <c>{% generation %}</c> block.</summary>
public sealed class RenderResult
{
    public required string Text { get; init; }
    /// <summary>[start, end) of each generation block's output, in Unicode code points (as Python counts), sorted.</summary>
    public required IReadOnlyList<(int Start, int End)> GenerationSpans { get; init; }
    /// <summary>The same spans in UTF-16 code units (indexes into <see cref="Text"/>).</summary>
    public required IReadOnlyList<(int Start, int End)> GenerationSpansUtf16 { get; init; }
}

/// <summary>
/// A parsed Jinja2 template that renders exactly as Python jinja2 does under transformers' chat-template
/// environment (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, the generation
/// tag, tojson/raise_exception/strftime_now). Immutable after <see cref="Parse"/>; safe to render from
/// many threads at once.
/// </summary>
public sealed class Template
{
    readonly Stmt[] _body;
    readonly string[] _rootNames;
    readonly object?[] _rootGlobals;
    readonly TemplateOptions _options;
    readonly SelfRef? _self;

    /// <summary>Whether the template has a <c>{% generation %}</c> block.</summary>
    public bool HasGenerationBlocks { get; }

    Template(Stmt[] body, string[] rootNames, Dictionary<string, NamedBlockStmt> blocks, TemplateOptions options, bool hasGeneration)
    {
        if (Array.IndexOf(rootNames, "self") >= 0) _self = new SelfRef(blocks);
        _body = body;
        _rootNames = rootNames;
        _options = options;
        HasGenerationBlocks = hasGeneration;
        _rootGlobals = new object?[rootNames.Length];
        for (int i = 0; i < rootNames.Length; i++)
            _rootGlobals[i] = Globals.Table.TryGetValue(rootNames[i], out var g) ? g : Missing.Value;
    }

    /// <summary>Parses <paramref name="source"/>; syntax errors throw <see cref="JinjaException"/> with line and column.</summary>
    public static Template Parse(string source, TemplateOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new TemplateOptions();
        string normalized = Lexer.NormalizeNewlines(source);
        var (tokens, map) = Lexer.Tokenize(normalized, options.TrimBlocks, options.LstripBlocks);
        var body = new Parser(tokens, map).ParseTemplate();
        var (rootNames, blocks) = Binder.Bind(body);
        return new Template(body, rootNames, blocks, options, ContainsGeneration(body));
    }

    static bool ContainsGeneration(IEnumerable<Node> nodes)
    {
        foreach (var n in nodes)
        {
            if (n is GenerationStmt) return true;
            var children = n switch { Stmt s => s.Children, Expr e => e.Children, _ => [] };
            if (ContainsGeneration(children)) return true;
        }
        return false;
    }

    /// <summary>
    /// Renders with <paramref name="variables"/>: .NET primitives, strings, lists, dictionaries, or
    /// System.Text.Json <c>JsonNode</c>/<c>JsonElement</c> values (object key order is kept).
    /// Template errors throw <see cref="JinjaException"/>.
    /// </summary>
    public RenderResult Render(IReadOnlyDictionary<string, object?> variables)
    {
        ArgumentNullException.ThrowIfNull(variables);
        var root = new Frame(_rootNames.Length, null);
        for (int i = 0; i < _rootNames.Length; i++)
        {
            if (_self != null && _rootNames[i] == "self") root.S[i] = _self;
            else root.S[i] = variables.TryGetValue(_rootNames[i], out var v) ? ValueConverter.FromDotNet(v, _rootNames[i]) : _rootGlobals[i];
        }
        var sb = Builders.Rent();
        var st = new RenderState(sb, _options.Now) { RootFrame = root };
        try
        {
            Stmt.ExecBody(_body, st, root, sb);
        }
        catch (JinjaException)
        {
            throw;
        }
        catch (Exception e) when (e is InvalidCastException or NullReferenceException or IndexOutOfRangeException or ArgumentException or InvalidOperationException)
        {
            throw new JinjaException("InternalError", $"the template engine failed: {e.GetType().Name}: {e.Message}", 0, 0, e);
        }
        string text = Builders.ToStringAndReturn(sb);
        if (st.Spans.Count == 0) return new RenderResult { Text = text, GenerationSpans = [], GenerationSpansUtf16 = [] };
        return new RenderResult
        {
            Text = text,
            GenerationSpans = SpansInCodePoints(text, st.Spans),
            GenerationSpansUtf16 = st.Spans.Select(s => (s.RootStart16, s.RootStart16 + s.Length16)).OrderBy(s => s).ToArray(),
        };
    }

    static (int, int)[] SpansInCodePoints(string text, List<GenSpan> spans)
    {
        if (spans.Count == 0) return [];
        if (!PyStr.HasSurrogates(text))
            return spans.Select(s => (s.RootStart16, s.RootStart16 + s.LengthCp)).OrderBy(s => s).ToArray();
        var ordered = spans.OrderBy(s => s.RootStart16).ToArray();
        var result = new (int, int)[ordered.Length];
        int cp = 0, pos = 0;
        for (int k = 0; k < ordered.Length; k++)
        {
            int target = Math.Min(ordered[k].RootStart16, text.Length);
            while (pos < target)
            {
                if (char.IsHighSurrogate(text[pos]) && pos + 1 < text.Length && char.IsLowSurrogate(text[pos + 1])) pos++;
                pos++;
                cp++;
            }
            result[k] = (cp, cp + ordered[k].LengthCp);
        }
        Array.Sort(result);
        return result;
    }
}
