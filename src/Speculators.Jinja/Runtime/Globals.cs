namespace Speculators.Jinja.Runtime;

/// <summary>
/// Template globals: jinja2's defaults (range, dict, namespace, cycler, joiner) under the sandbox's
/// limits, plus transformers' raise_exception and strftime_now.
/// </summary>
internal static class Globals
{
    public const long MaxRange = 100000;

    public static readonly Dictionary<string, object?> Table = new(StringComparer.Ordinal)
    {
        ["range"] = new BuiltinFunction("range", Range),
        ["dict"] = new BuiltinFunction("dict", Dict),
        ["namespace"] = new BuiltinFunction("namespace", MakeNamespace),
        ["cycler"] = new BuiltinFunction("cycler", (RenderState st, in CallArgs a) =>
        {
            if (a.HasKw) throw Py.TypeError("Cycler.__init__() got an unexpected keyword argument");
            if (a.Count == 0) throw new JinjaException("RuntimeError", "at least one item has to be provided");
            return new Cycler((object?[])a.Pos.Clone());
        }),
        ["joiner"] = new BuiltinFunction("joiner", (RenderState st, in CallArgs a) =>
        {
            a.Check("joiner", 1, "sep");
            return new Joiner(Py.Str(a.Opt(0, "sep", ", ", "joiner")));
        }),
        ["lipsum"] = new BuiltinFunction("lipsum", Lipsum),
        ["raise_exception"] = new BuiltinFunction("raise_exception", (RenderState st, in CallArgs a) =>
        {
            a.Check("raise_exception", 1, "message");
            throw new JinjaException("TemplateError", Py.Str(a.Req(0, "message", "raise_exception")));
        }),
        ["strftime_now"] = new BuiltinFunction("strftime_now", (RenderState st, in CallArgs a) =>
        {
            a.Check("strftime_now", 1, "format");
            var fmt = a.Req(0, "format", "strftime_now");
            if (!Py.IsStr(fmt)) throw Py.TypeError($"strftime() argument 1 must be str, not {Py.TypeName(fmt)}");
            return PyFormat.Strftime(st.Now(), Py.AsStr(fmt));
        }),
    };

    static readonly string[] LoremWords =
        ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna " +
         "aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat duis aute " +
         "irure in reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat non proident " +
         "sunt culpa qui officia deserunt mollit anim id est laborum").Split(' ');

    /// <summary>
    /// lipsum(n=5, html=True, min=20, max=100): random lorem ipsum paragraphs with jinja2's sentence structure
    /// (the words and the random sequence differ from Python's, which is random anyway).
    /// </summary>
    static object? Lipsum(RenderState st, in CallArgs a)
    {
        a.Check("lipsum", 4, "n", "html", "min", "max");
        long n = RangeArg(a.Opt(0, "n", Py.Int(5), "lipsum"));
        bool html = Py.Truthy(a.Opt(1, "html", true, "lipsum"));
        long min = RangeArg(a.Opt(2, "min", Py.Int(20), "lipsum")), max = RangeArg(a.Opt(3, "max", Py.Int(100), "lipsum"));
        if (max <= min) throw Py.ValueError($"empty range for randrange() ({min}, {max}, {max - min})");
        var rng = Random.Shared;
        var paragraphs = new List<string>();
        for (long k = 0; k < Math.Min(n, 1000); k++)
        {
            var words = new List<string>();
            bool capitalize = true;
            int lastComma = 0, lastStop = 0;
            string? last = null;
            int count = (int)rng.NextInt64(min, max);
            for (int idx = 0; idx < count; idx++)
            {
                string w;
                do { w = LoremWords[rng.Next(LoremWords.Length)]; } while (w == last);
                last = w;
                if (capitalize) { w = PyStr.Capitalize(w); capitalize = false; }
                if (idx - rng.Next(3, 8) > lastComma) { lastComma = idx; lastStop += 2; w += ","; }
                if (idx - rng.Next(10, 20) > lastStop) { lastComma = lastStop = idx; w += "."; capitalize = true; }
                words.Add(w);
            }
            string p = string.Join(" ", words);
            if (p.EndsWith(',')) p = p[..^1] + ".";
            else if (!p.EndsWith('.')) p += ".";
            paragraphs.Add(p);
        }
        if (!html) return string.Join("\n\n", paragraphs);
        return new Markup(string.Join("\n", paragraphs.Select(p => "<p>" + Markup.Escape(p) + "</p>")));
    }

    static long RangeArg(object? v)
    {
        if (Py.IsInt(v)) return Py.AsLong(v);
        if (v is Undefined u) throw u.Error();
        throw Py.TypeError($"'{Py.TypeName(v)}' object cannot be interpreted as an integer");
    }

    static object? Range(RenderState st, in CallArgs a)
    {
        if (a.HasKw) throw Py.TypeError("range() takes no keyword arguments");
        long start = 0, stop, step = 1;
        switch (a.Count)
        {
            case 1: stop = RangeArg(a.Pos[0]); break;
            case 2: start = RangeArg(a.Pos[0]); stop = RangeArg(a.Pos[1]); break;
            case 3:
                start = RangeArg(a.Pos[0]); stop = RangeArg(a.Pos[1]); step = RangeArg(a.Pos[2]);
                if (step == 0) throw Py.ValueError("range() arg 3 must not be zero");
                break;
            case 0: throw Py.TypeError("range expected at least 1 argument, got 0");
            default: throw Py.TypeError($"range expected at most 3 arguments, got {a.Count}");
        }
        var r = new PyRange(start, stop, step);
        if (r.Count > MaxRange)
            throw new JinjaException("OverflowError", $"Range too big. The sandbox blocks ranges larger than MAX_RANGE ({MaxRange}).");
        return r;
    }

    /// <summary>dict(*args, **kwargs) semantics, shared by dict() and namespace().</summary>
    static PyDict BuildDict(in CallArgs a, string func)
    {
        if (a.Count > 1) throw Py.TypeError($"{func} expected at most 1 argument, got {a.Count}");
        var d = new PyDict();
        if (a.Count == 1)
        {
            var src = a.Pos[0];
            if (src is PyDict sd)
            {
                for (int i = 0; i < sd.Count; i++) d.Set(sd.KeyAt(i), sd.ValueAt(i));
            }
            else if (src is Namespace ns)
            {
                throw Py.TypeError("'Namespace' object is not iterable");
            }
            else
            {
                var it = Py.Iter(src);
                int idx = 0;
                while (it.Next(out var pair))
                {
                    if (!Py.IsIterable(pair)) throw Py.TypeError($"cannot convert dictionary update sequence element #{idx} to a sequence");
                    var kv = Py.AsSequence(pair);
                    if (kv.Count != 2) throw Py.ValueError($"dictionary update sequence element #{idx} has length {kv.Count}; 2 is required");
                    d.Set(kv[0], kv[1]);
                    idx++;
                }
            }
        }
        if (a.Kw != null) foreach (var kv in a.Kw) d.Set(kv.Key, kv.Value);
        return d;
    }

    static object? Dict(RenderState st, in CallArgs a) => BuildDict(a, "dict");

    static object? MakeNamespace(RenderState st, in CallArgs a)
    {
        var d = BuildDict(a, "namespace");
        var ns = new Namespace();
        for (int i = 0; i < d.Count; i++) ns.Attrs.Set(d.KeyAt(i), d.ValueAt(i));
        return ns;
    }
}
