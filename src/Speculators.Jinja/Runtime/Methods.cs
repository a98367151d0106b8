using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>The Python methods templates call on builtin values (str, dict, list, tuple...).</summary>
internal static class Methods
{
    public static object? Call(RenderState st, object? self, string name, in CallArgs a)
    {
        switch (self)
        {
            case string s: return Str(st, s, name, a, false);
            case Markup m:
            {
                var r = Str(st, m.Value, name, EscapeArgs(name, a), true);
                return r switch
                {
                    string rs when name != "format" && name != "format_map" => new Markup(rs),
                    List<object?> list => list.ConvertAll(x => x is string xs ? (object?)new Markup(xs) : x),
                    PyTuple t => new PyTuple(Array.ConvertAll(t.Items, x => x is string xs ? (object?)new Markup(xs) : x)),
                    _ => r,
                };
            }
            case PyDict d: return Dict(d, name, a);
            case List<object?> l: return Seq(l, name, a, "list");
            case PyTuple t: return Seq(t.Items, name, a, "tuple");
            case LoopContext lc: return lc.CallMethod(name, a);
            case Cycler c:
                if (name == "next") { a.Check("next", 0); return c.Next(); }
                if (name == "reset") { a.Check("reset", 0); c.Pos = 0; return null; }
                break;
            case bool or long:
                if (name == "bit_length") { a.Check(name, 0); long v = Math.Abs(Py.AsLong(self)); return Py.Int(v == 0 ? 0 : 64 - System.Numerics.BitOperations.LeadingZeroCount((ulong)v)); }
                if (name == "conjugate") { a.Check(name, 0); return Py.Int(Py.AsLong(self)); }
                break;
            case double dd:
                if (name == "is_integer") { a.Check(name, 0); return Py.Bool(!double.IsInfinity(dd) && dd == Math.Floor(dd)); }
                if (name == "conjugate") { a.Check(name, 0); return dd; }
                break;
            case PyRange r:
                if (name == "count") { a.Check(name, 1); return Py.Int(Py.Contains(r, a.Req(0, "value", name)) ? 1 : 0); }
                if (name == "index")
                {
                    a.Check(name, 1);
                    var v = a.Req(0, "value", name);
                    if (!Py.Contains(r, v)) throw Py.ValueError($"{Py.Repr(v)} is not in range");
                    return Py.Int((Py.AsLong(v is double d2 ? (long)d2 : v) - r.Start) / r.Step);
                }
                break;
        }
        throw Py.TypeError($"'{Py.TypeName(self)}' object has no method {Py.Repr(name)}");
    }

    static CallArgs EscapeArgs(string name, in CallArgs a)
    {
        // format() escapes its arguments itself (StrFormat with escape).
        if (name is not ("replace" or "join" or "partition" or "rpartition" or "center" or "ljust" or "rjust")) return a;
        var pos = new object?[a.Pos.Length];
        for (int i = 0; i < pos.Length; i++) pos[i] = a.Pos[i] is string s ? Markup.Escape(s) : a.Pos[i];
        if (name == "join" && pos.Length == 1 && !Py.IsStr(pos[0]))
        {
            var items = Py.ToList(pos[0]);
            for (int i = 0; i < items.Count; i++) if (items[i] is string s) items[i] = Markup.Escape(s);
            pos[0] = items;
        }
        return new CallArgs(pos, a.Kw);
    }

    static string StrArg(object? v, string func, string what = "argument")
    {
        if (v is string s) return s;
        if (v is Markup m) return m.Value;
        throw Py.TypeError($"{func}() {what} must be str, not {Py.TypeName(v)}");
    }

    static string? OptStrArg(object? v, string func)
    {
        if (v is null) return null;
        return StrArg(v, func);
    }

    static long IntArg(object? v, string func)
    {
        if (Py.IsInt(v)) return Py.AsLong(v);
        throw Py.TypeError($"'{Py.TypeName(v)}' object cannot be interpreted as an integer");
    }

    /// <summary>s[start:end] for the start/end arguments of find/count/startswith, with the code point offset of the cut.</summary>
    static (string sub, long offset) Window(string s, object? start, object? end)
    {
        if (start is null && end is null) return (s, 0);
        var sl = new PySlice(start, end, null);
        var (st, _, _, _) = Slicing.Indices(PyStr.Length(s), sl);
        return (PyStr.Slice(s, sl), st);
    }

    static long CpIndex(string s, int utf16) => utf16 < 0 ? -1 : PyStr.HasSurrogates(s) ? PyStr.CodePointIndex(s, utf16) : utf16;

    static object? Str(RenderState st, string s, string name, in CallArgs a, bool markup)
    {
        switch (name)
        {
            case "upper": a.Check(name, 0); return PyStr.Upper(s);
            case "lower": a.Check(name, 0); return PyStr.Lower(s);
            case "casefold": a.Check(name, 0); return PyStr.Lower(s).Replace("ß", "ss");
            case "title": a.Check(name, 0); return PyStr.Title(s);
            case "capitalize": a.Check(name, 0); return PyStr.Capitalize(s);
            case "swapcase": a.Check(name, 0); return PyStr.SwapCase(s);
            case "strip": a.Check(name, 1); return PyStr.Strip(s, OptStrArg(a.Opt(0, "chars", null, name), name), true, true);
            case "lstrip": a.Check(name, 1); return PyStr.Strip(s, OptStrArg(a.Opt(0, "chars", null, name), name), true, false);
            case "rstrip": a.Check(name, 1); return PyStr.Strip(s, OptStrArg(a.Opt(0, "chars", null, name), name), false, true);
            case "split":
            case "rsplit":
            {
                a.Check(name, 2, "sep", "maxsplit");
                var sep = OptStrArg(a.Opt(0, "sep", null, name), name);
                long max = IntArg(a.Opt(1, "maxsplit", Py.Int(-1), name), name);
                return name == "split" ? PyStr.Split(s, sep, max) : PyStr.RSplit(s, sep, max);
            }
            case "splitlines":
            {
                a.Check(name, 1, "keepends");
                bool keep = Py.Truthy(a.Opt(0, "keepends", false, name));
                return PyStr.SplitLines(s, keep).ConvertAll(x => (object?)x);
            }
            case "startswith":
            case "endswith":
            {
                a.Check(name, 3);
                var what = a.Req(0, "prefix", name);
                var (sub, _) = Window(s, a.Opt(1, "start", null, name), a.Opt(2, "end", null, name));
                bool Test(object? p)
                {
                    string ps = p is string ss ? ss : p is Markup pm ? pm.Value
                        : throw Py.TypeError($"{name} first arg must be str or a tuple of str, not {Py.TypeName(p)}");
                    return name == "startswith" ? sub.StartsWith(ps, StringComparison.Ordinal) : sub.EndsWith(ps, StringComparison.Ordinal);
                }
                if (what is PyTuple t)
                {
                    foreach (var p in t.Items) if (Test(p)) return Py.True;
                    return Py.False;
                }
                return Py.Bool(Test(what));
            }
            case "find":
            case "rfind":
            case "index":
            case "rindex":
            {
                a.Check(name, 3);
                string needle = StrArg(a.Req(0, "sub", name), name, "argument");
                var (sub, off) = Window(s, a.Opt(1, "start", null, name), a.Opt(2, "end", null, name));
                int k = name is "find" or "index" ? sub.IndexOf(needle, StringComparison.Ordinal) : sub.LastIndexOf(needle, StringComparison.Ordinal);
                if (k < 0)
                {
                    if (name is "index" or "rindex") throw Py.ValueError("substring not found");
                    return Py.Int(-1);
                }
                return Py.Int(off + CpIndex(sub, k));
            }
            case "count":
            {
                a.Check(name, 3);
                string needle = StrArg(a.Req(0, "sub", name), name);
                var (sub, _) = Window(s, a.Opt(1, "start", null, name), a.Opt(2, "end", null, name));
                if (needle.Length == 0) return Py.Int(PyStr.Length(sub) + 1);
                long n = 0;
                int pos = 0;
                while ((pos = sub.IndexOf(needle, pos, StringComparison.Ordinal)) >= 0) { n++; pos += needle.Length; }
                return Py.Int(n);
            }
            case "replace":
            {
                a.Check(name, 3, "count");
                string old = StrArg(a.Req(0, "old", name), "replace", "argument 1");
                string nw = StrArg(a.Req(1, "new", name), "replace", "argument 2");
                long count = IntArg(a.Opt(2, "count", Py.Int(-1), name), name);
                return PyStr.Replace(s, old, nw, count);
            }
            case "join":
            {
                a.Check(name, 1);
                var it = Py.Iter(a.Req(0, "iterable", name));
                var sb = new StringBuilder();
                int i = 0;
                while (it.Next(out var x))
                {
                    if (!Py.IsStr(x)) throw Py.TypeError($"sequence item {i}: expected str instance, {Py.TypeName(x)} found");
                    if (i > 0) sb.Append(s);
                    sb.Append(Py.AsStr(x));
                    i++;
                }
                return sb.ToString();
            }
            case "format":
            {
                var kw = new PyDict();
                if (a.Kw != null) foreach (var kv in a.Kw) kw.Set(kv.Key, kv.Value);
                var r = PyFormat.StrFormat(st, s, a.Pos, kw, markup);
                return markup ? new Markup(r) : r;
            }
            case "format_map":
            {
                if (a.HasKw) throw Py.TypeError("format_map() takes no keyword arguments");
                if (a.Count != 1) throw Py.TypeError($"format_map() takes exactly one argument ({a.Count} given)");
                if (a.Pos[0] is not PyDict map) throw Py.TypeError($"'{Py.TypeName(a.Pos[0])}' object is not a mapping");
                var r = PyFormat.StrFormat(st, s, Array.Empty<object?>(), map, markup);
                return markup ? new Markup(r) : r;
            }
            case "center":
            case "ljust":
            case "rjust":
            {
                a.Check(name, 2);
                long width = IntArg(a.Req(0, "width", name), name);
                string fill = a.Count > 1 ? StrArg(a.Pos[1], name, "argument 2") : " ";
                if (PyStr.Length(fill) != 1) throw Py.TypeError("The fill character must be exactly one character long");
                return PyStr.Pad(s, width, fill, name == "center" ? 'c' : name == "ljust" ? 'l' : 'r');
            }
            case "zfill":
            {
                a.Check(name, 1);
                long width = IntArg(a.Req(0, "width", name), name);
                long len = PyStr.Length(s);
                if (width <= len) return s;
                int signLen = s.Length > 0 && (s[0] == '+' || s[0] == '-') ? 1 : 0;
                return s.Substring(0, signLen) + new string('0', (int)(width - len)) + s.Substring(signLen);
            }
            case "partition":
            case "rpartition":
            {
                a.Check(name, 1);
                string sep = StrArg(a.Req(0, "sep", name), name);
                if (sep.Length == 0) throw Py.ValueError("empty separator");
                int k = name == "partition" ? s.IndexOf(sep, StringComparison.Ordinal) : s.LastIndexOf(sep, StringComparison.Ordinal);
                if (k < 0) return name == "partition" ? new PyTuple([s, "", ""]) : new PyTuple(["", "", s]);
                return new PyTuple([s.Substring(0, k), sep, s.Substring(k + sep.Length)]);
            }
            case "removeprefix":
            {
                a.Check(name, 1);
                string p = StrArg(a.Req(0, "prefix", name), name);
                return p.Length > 0 && s.StartsWith(p, StringComparison.Ordinal) ? s.Substring(p.Length) : s;
            }
            case "removesuffix":
            {
                a.Check(name, 1);
                string p = StrArg(a.Req(0, "suffix", name), name);
                return p.Length > 0 && s.EndsWith(p, StringComparison.Ordinal) ? s.Substring(0, s.Length - p.Length) : s;
            }
            case "expandtabs":
            {
                a.Check(name, 1, "tabsize");
                long size = IntArg(a.Opt(0, "tabsize", Py.Int(8), name), name);
                var sb = new StringBuilder();
                long col = 0;
                foreach (int cp in PyStr.CodePoints(s))
                {
                    if (cp == '\t') { if (size > 0) { long n = size - col % size; sb.Append(' ', (int)n); col += n; } }
                    else
                    {
                        PyStr.AppendCodePoint(sb, cp);
                        col = cp is '\n' or '\r' ? 0 : col + 1;
                    }
                }
                return sb.ToString();
            }
            case "isdigit": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsDigit));
            case "isdecimal": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsDecimal));
            case "isnumeric": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsNumeric));
            case "isalpha": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsAlpha));
            case "isalnum": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsAlnum));
            case "isspace": a.Check(name, 0); return Py.Bool(All(s, PyStr.IsSpace));
            case "isascii": a.Check(name, 0); return Py.Bool(!s.AsSpan().ContainsAnyExceptInRange('\0', '\x7f'));
            case "isprintable": a.Check(name, 0); return Py.Bool(s.Length == 0 || All(s, PyStr.IsPrintable));
            case "isidentifier":
                a.Check(name, 0);
                return Py.Bool(s.Length > 0 && (PyStr.IsAlpha(PyStr.CodePoints(s)[0]) || s[0] == '_') && All(s, cp => PyStr.IsWord(cp)));
            case "islower":
            case "isupper":
            {
                a.Check(name, 0);
                bool cased = false;
                foreach (int cp in PyStr.CodePoints(s))
                {
                    if (name == "islower" ? PyStr.IsUpper(cp) || PyStr.IsTitle(cp) : PyStr.IsLower(cp) || PyStr.IsTitle(cp)) return Py.False;
                    if (PyStr.IsCased(cp)) cased = true;
                }
                return Py.Bool(cased);
            }
            case "istitle":
            {
                a.Check(name, 0);
                bool cased = false, prevCased = false;
                foreach (int cp in PyStr.CodePoints(s))
                {
                    if (PyStr.IsUpper(cp) || PyStr.IsTitle(cp))
                    {
                        if (prevCased) return Py.False;
                        prevCased = true; cased = true;
                    }
                    else if (PyStr.IsLower(cp))
                    {
                        if (!prevCased) return Py.False;
                        prevCased = true; cased = true;
                    }
                    else prevCased = false;
                }
                return Py.Bool(cased);
            }
        }
        throw Py.TypeError($"'str' object has no method {Py.Repr(name)}");
    }

    static bool All(string s, Func<int, bool> pred)
    {
        if (s.Length == 0) return false;
        foreach (int cp in PyStr.CodePoints(s)) if (!pred(cp)) return false;
        return true;
    }

    static object? Dict(PyDict d, string name, in CallArgs a)
    {
        switch (name)
        {
            case "get":
            {
                if (a.HasKw) throw Py.TypeError("dict.get() takes no keyword arguments");
                if (a.Count < 1 || a.Count > 2) throw Py.TypeError($"get expected at least 1 argument, got {a.Count}");
                return d.TryGet(a.Pos[0], out var v) ? v : a.Count > 1 ? a.Pos[1] : null;
            }
            case "keys": a.Check(name, 0); return new PyView(d, PyView.Kind.Keys);
            case "values": a.Check(name, 0); return new PyView(d, PyView.Kind.Values);
            case "items": a.Check(name, 0); return new PyView(d, PyView.Kind.Items);
            case "copy": a.Check(name, 0); return d.Copy();
            case "fromkeys":
            {
                a.Check(name, 2);
                var r = new PyDict();
                var it = Py.Iter(a.Req(0, "iterable", name));
                var v = a.Opt(1, "value", null, name);
                while (it.Next(out var k)) r.Set(k, v);
                return r;
            }
        }
        throw Py.TypeError($"'dict' object has no method {Py.Repr(name)}");
    }

    static object? Seq(IReadOnlyList<object?> items, string name, in CallArgs a, string type)
    {
        switch (name)
        {
            case "count":
            {
                a.Check(name, 1);
                var v = a.Req(0, "value", name);
                long n = 0;
                foreach (var x in items) if (ReferenceEquals(x, v) || Py.Eq(x, v)) n++;
                return Py.Int(n);
            }
            case "index":
            {
                a.Check(name, 3);
                var v = a.Req(0, "value", name);
                var (start, stop, _, _) = Slicing.Indices(items.Count, new PySlice(a.Opt(1, "start", null, name), a.Opt(2, "stop", null, name), null));
                for (long i = start; i < stop; i++) if (ReferenceEquals(items[(int)i], v) || Py.Eq(items[(int)i], v)) return Py.Int(i);
                throw Py.ValueError(type == "list" ? $"{Py.Repr(v)} is not in list" : "tuple.index(x): x not in tuple");
            }
            case "copy" when type == "list":
                a.Check(name, 0);
                return new List<object?>(items);
        }
        throw Py.TypeError($"'{type}' object has no method {Py.Repr(name)}");
    }
}
