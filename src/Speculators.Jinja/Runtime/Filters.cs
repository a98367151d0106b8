using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;

namespace Speculators.Jinja.Runtime;

/// <summary>jinja2's builtin filters (plus transformers' tojson), with Python's behaviour and errors.</summary>
internal static partial class Filters
{
    public static readonly Dictionary<string, FilterFn> Table = new(StringComparer.Ordinal)
    {
        ["abs"] = Abs,
        ["attr"] = Attr,
        ["batch"] = Batch,
        ["capitalize"] = (RenderState st, object? v, in CallArgs a) => Str1(v, a, "capitalize", PyStr.Capitalize),
        ["center"] = Center,
        ["count"] = Length,
        ["d"] = Default,
        ["default"] = Default,
        ["dictsort"] = DictSort,
        ["e"] = Escape,
        ["escape"] = Escape,
        ["filesizeformat"] = FileSizeFormat,
        ["first"] = First,
        ["float"] = Float,
        ["forceescape"] = (RenderState st, object? v, in CallArgs a) => { a.Check("forceescape", 0); return new Markup(Markup.Escape(Py.Str(v))); },
        ["format"] = Format,
        ["groupby"] = GroupBy,
        ["indent"] = Indent,
        ["int"] = Int,
        ["items"] = Items,
        ["join"] = Join,
        ["last"] = Last,
        ["length"] = Length,
        ["list"] = (RenderState st, object? v, in CallArgs a) => { a.Check("list", 0); return Py.ToList(v); },
        ["lower"] = (RenderState st, object? v, in CallArgs a) => Str1(v, a, "lower", PyStr.Lower),
        ["map"] = Map,
        ["max"] = (RenderState st, object? v, in CallArgs a) => MinMax(st, v, a, "max"),
        ["min"] = (RenderState st, object? v, in CallArgs a) => MinMax(st, v, a, "min"),
        ["random"] = (RenderState st, object? v, in CallArgs a) =>
        {
            a.Check("random", 0);
            var items = Py.AsSequence(v);
            return items.Count == 0 ? Undefined.ForHint("No random item, sequence was empty.") : items[Random.Shared.Next(items.Count)];
        },
        ["reject"] = (RenderState st, object? v, in CallArgs a) => SelectOrReject(st, v, a, false, false, "reject"),
        ["rejectattr"] = (RenderState st, object? v, in CallArgs a) => SelectOrReject(st, v, a, false, true, "rejectattr"),
        ["replace"] = Replace,
        ["reverse"] = Reverse,
        ["round"] = Round,
        ["safe"] = (RenderState st, object? v, in CallArgs a) => { a.Check("safe", 0); return v is Markup ? v : new Markup(Py.Str(v)); },
        ["select"] = (RenderState st, object? v, in CallArgs a) => SelectOrReject(st, v, a, true, false, "select"),
        ["selectattr"] = (RenderState st, object? v, in CallArgs a) => SelectOrReject(st, v, a, true, true, "selectattr"),
        ["slice"] = Slice,
        ["sort"] = Sort,
        ["string"] = (RenderState st, object? v, in CallArgs a) => { a.Check("string", 0); return v is string || v is Markup ? v : Py.Str(v); },
        ["striptags"] = StripTags,
        ["sum"] = Sum,
        ["title"] = Title,
        ["tojson"] = ToJson,
        ["trim"] = Trim,
        ["truncate"] = Truncate,
        ["unique"] = Unique,
        ["upper"] = (RenderState st, object? v, in CallArgs a) => Str1(v, a, "upper", PyStr.Upper),
        ["urlencode"] = UrlEncode,
        ["wordcount"] = WordCount,
        ["xmlattr"] = XmlAttr,
    };

    /// <summary>environment.call_filter: used by map().</summary>
    public static object? Call(RenderState st, string name, object? value, in CallArgs args)
    {
        if (!Table.TryGetValue(name, out var fn)) throw Py.RuntimeError($"No filter named {Py.Repr(name)} found.");
        return fn(st, value, args);
    }

    /// <summary>markupsafe.soft_str: str() unless already a string (Markup stays Markup).</summary>
    static string SoftStr(object? v) => v is string s ? s : v is Markup m ? m.Value : Py.Str(v);

    static object Str1(object? v, in CallArgs a, string name, Func<string, string> f)
    {
        a.Check(name, 0);
        var r = f(SoftStr(v));
        return v is Markup ? new Markup(r) : r;
    }

    static object? Abs(RenderState st, object? v, in CallArgs a)
    {
        a.Check("abs", 0);
        return v switch
        {
            double d => Math.Abs(d),
            long or bool => Py.AsLong(v) == long.MinValue ? throw Py.Overflow() : Py.Int(Math.Abs(Py.AsLong(v))),
            _ => throw Py.TypeError($"bad operand type for abs(): '{Py.TypeName(v)}'"),
        };
    }

    static object? Attr(RenderState st, object? v, in CallArgs a)
    {
        a.Check("attr", 1, "name");
        var name = a.Req(0, "name", "attr");
        if (name is not string s) return Undefined.ForMember(v, name);
        if (v is Undefined u) throw u.Error();
        return Access.TryPyGetAttr(v, s, out _) ? Access.GetAttr(v, s) : Undefined.ForMember(v, s);
    }

    static object? Batch(RenderState st, object? v, in CallArgs a)
    {
        a.Check("batch", 2, "linecount", "fill_with");
        long n = ToInt(a.Req(0, "linecount", "batch"));
        var fill = a.Opt(1, "fill_with", null, "batch");
        var it = Py.Iter(v);
        return new PyGenerator(BatchGen(it, n, fill), "do_batch");
    }

    static IEnumerable<object?> BatchGen(PyIter it, long n, object? fill)
    {
        var tmp = new List<object?>();
        while (it.Next(out var x))
        {
            if (tmp.Count == n) { yield return tmp; tmp = new List<object?>(); }
            tmp.Add(x);
        }
        if (tmp.Count > 0)
        {
            if (fill != null && tmp.Count < n) while (tmp.Count < n) tmp.Add(fill);
            yield return tmp;
        }
    }

    static long ToInt(object? v)
    {
        if (Py.IsInt(v)) return Py.AsLong(v);
        if (v is Undefined u) throw u.Error();
        throw Py.TypeError($"'{Py.TypeName(v)}' object cannot be interpreted as an integer");
    }

    static object? Center(RenderState st, object? v, in CallArgs a)
    {
        a.Check("center", 1, "width");
        long w = ToInt(a.Opt(0, "width", Py.Int(80), "center"));
        var r = PyStr.Pad(SoftStr(v), w, " ", 'c');
        return v is Markup ? new Markup(r) : r;
    }

    static object? Length(RenderState st, object? v, in CallArgs a)
    {
        a.Check("length", 0);
        return Py.Int(Py.Len(v));
    }

    static object? Default(RenderState st, object? v, in CallArgs a)
    {
        a.Check("default", 2, "default_value", "boolean");
        var dflt = a.Opt(0, "default_value", "", "default");
        bool boolean = Py.Truthy(a.Opt(1, "boolean", false, "default"));
        return v is Undefined || (boolean && !Py.Truthy(v)) ? dflt : v;
    }

    static object? IgnoreCase(object? v) => v is string s ? PyStr.Lower(s) : v is Markup m ? new Markup(PyStr.Lower(m.Value)) : v;

    static List<T> StableSort<T>(List<T> items, Func<T, object?> key, bool reverse) => PySort.Sorted(items, key, reverse);

    static object? DictSort(RenderState st, object? v, in CallArgs a)
    {
        a.Check("dictsort", 3, "case_sensitive", "by", "reverse");
        bool cs = Py.Truthy(a.Opt(0, "case_sensitive", false, "dictsort"));
        var by = a.Opt(1, "by", "key", "dictsort");
        bool reverse = Py.Truthy(a.Opt(2, "reverse", false, "dictsort"));
        int pos = by is string bs && bs == "key" ? 0 : by is string bv && bv == "value" ? 1
            : throw new JinjaException("FilterArgumentError", "You can only sort by either \"key\" or \"value\"");
        if (v is Undefined u) throw u.Error();
        if (v is not PyDict d) throw new JinjaException("AttributeError", $"'{Py.TypeName(v)}' object has no attribute 'items'");
        var items = new List<PyTuple>(d.Count);
        for (int i = 0; i < d.Count; i++) items.Add(new PyTuple([d.KeyAt(i), d.ValueAt(i)]));
        var sorted = StableSort(items, t => cs ? t.Items[pos] : IgnoreCase(t.Items[pos]), reverse);
        return sorted.ConvertAll(t => (object?)t);
    }

    static object? Escape(RenderState st, object? v, in CallArgs a)
    {
        a.Check("escape", 0);
        return Markup.EscapeValue(v);
    }

    static object? FileSizeFormat(RenderState st, object? v, in CallArgs a)
    {
        a.Check("filesizeformat", 1, "binary");
        bool binary = Py.Truthy(a.Opt(0, "binary", false, "filesizeformat"));
        double bytes = ToFloat(v) ?? throw Py.ValueError($"could not convert {Py.TypeName(v)} to float: {Py.Repr(v)}");
        double bas = binary ? 1024 : 1000;
        string[] prefixes = binary ? ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"] : ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
        if (bytes == 1) return "1 Byte";
        if (bytes < bas) return $"{(long)bytes} Bytes";
        double unit = 0;
        string prefix = "";
        for (int i = 0; i < prefixes.Length; i++)
        {
            unit = Math.Pow(bas, i + 2);
            prefix = prefixes[i];
            if (bytes < unit) break;
        }
        return PyFormat.Fixed(bas * bytes / unit, 1) + " " + prefix;
    }

    static object? First(RenderState st, object? v, in CallArgs a)
    {
        a.Check("first", 0);
        var it = Py.Iter(v);
        return it.Next(out var x) ? x : Undefined.ForHint("No first item, sequence was empty.");
    }

    static object? Last(RenderState st, object? v, in CallArgs a)
    {
        a.Check("last", 0);
        switch (v)
        {
            case List<object?> l: return l.Count > 0 ? l[^1] : Undefined.ForHint("No last item, sequence was empty.");
            case PyTuple t: return t.Count > 0 ? t.Items[^1] : Undefined.ForHint("No last item, sequence was empty.");
            case string or Markup or PyDict or PyRange or Undefined or PyView:
            {
                var items = Py.ToList(v);
                return items.Count > 0 ? items[^1] : Undefined.ForHint("No last item, sequence was empty.");
            }
        }
        throw Py.TypeError($"'{Py.TypeName(v)}' object is not reversible");
    }

    /// <summary>Python float(v), or null where float() raises TypeError/ValueError.</summary>
    static double? ToFloat(object? v)
    {
        switch (v)
        {
            case double d: return d;
            case long or bool: return Py.AsLong(v);
            case Undefined u: throw u.Error();
            case string or Markup: return ParsePyFloat(Py.AsStr(v));
        }
        return null;
    }

    static double? ParsePyFloat(string s)
    {
        s = PyStr.Strip(s, null, true, true);
        string t = s.ToLowerInvariant();
        string body = t.TrimStart('+', '-');
        bool neg = t.StartsWith('-');
        if (body is "inf" or "infinity") return neg ? double.NegativeInfinity : double.PositiveInfinity;
        if (body == "nan") return double.NaN;
        if (s.Contains("__") || s.StartsWith('_') || s.EndsWith('_')) return null;
        foreach (char c in s) if (!(char.IsAsciiDigit(c) || c is '.' or 'e' or 'E' or '+' or '-' or '_')) return null;
        return double.TryParse(s.Replace("_", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var r) ? r : null;
    }

    static object? Float(RenderState st, object? v, in CallArgs a)
    {
        a.Check("float", 1, "default");
        var dflt = a.Opt(0, "default", 0.0, "float");
        return ToFloat(v) is double d ? d : dflt;
    }

    static object? Int(RenderState st, object? v, in CallArgs a)
    {
        a.Check("int", 2, "default", "base");
        var dflt = a.Opt(0, "default", Py.Int(0), "int");
        long bas = ToInt(a.Opt(1, "base", Py.Int(10), "int"));
        switch (v)
        {
            case long or bool: return Py.Int(Py.AsLong(v));
            case double d:
                if (double.IsNaN(d) || double.IsInfinity(d)) return dflt;
                return Py.Int(TruncateToLong(d));
            case Undefined u: throw u.Error();
            case string or Markup:
            {
                string s = Py.AsStr(v);
                if (TryParsePyInt(s, bas, out long l)) return Py.Int(l);
                if (ToFloat(v) is double f && !double.IsNaN(f) && !double.IsInfinity(f)) return Py.Int(TruncateToLong(f));
                return dflt;
            }
        }
        return dflt;
    }

    static long TruncateToLong(double d)
    {
        double t = Math.Truncate(d);
        if (t < -9.223372036854775808e18 || t >= 9.223372036854775808e18) throw Py.Overflow();
        return (long)t;
    }

    /// <summary>int(s, base): whitespace, sign, underscores between digits, 0x/0o/0b prefixes for base 0 or matching base.</summary>
    static bool TryParsePyInt(string s, long bas, out long value)
    {
        value = 0;
        s = PyStr.Strip(s, null, true, true);
        if (s.Length == 0) return false;
        bool neg = false;
        int i = 0;
        if (s[0] is '+' or '-') { neg = s[0] == '-'; i++; }
        string rest = s.Substring(i).ToLowerInvariant();
        if (rest.Length >= 2 && rest[0] == '0' && rest[1] is 'x' or 'o' or 'b')
        {
            long pb = rest[1] == 'x' ? 16 : rest[1] == 'o' ? 8 : 2;
            if (bas == 0 || bas == pb) { bas = pb; rest = rest.Substring(2); if (rest.StartsWith('_')) rest = rest.Substring(1); }
        }
        if (bas == 0) bas = 10;
        if (bas < 2 || bas > 36 || rest.Length == 0 || rest.StartsWith('_') || rest.EndsWith('_') || rest.Contains("__")) return false;
        long acc = 0;
        try
        {
            foreach (char c in rest)
            {
                if (c == '_') continue;
                int dgt = char.IsAsciiDigit(c) ? c - '0' : c is >= 'a' and <= 'z' ? c - 'a' + 10 : 99;
                if (dgt >= bas) return false;
                acc = checked(acc * bas + dgt);
            }
        }
        catch (OverflowException) { return false; }
        value = neg ? -acc : acc;
        return true;
    }

    static object? Format(RenderState st, object? v, in CallArgs a)
    {
        if (a.Count > 0 && a.HasKw) throw new JinjaException("FilterArgumentError", "can't handle positional and keyword arguments at the same time");
        object? args;
        if (a.HasKw)
        {
            var d = new PyDict();
            foreach (var kv in a.Kw!) d.Set(kv.Key, kv.Value);
            args = d;
        }
        else args = new PyTuple(a.Pos);
        return Py.Mod(v is Markup ? v : SoftStr(v), args);
    }

    static object? GroupBy(RenderState st, object? v, in CallArgs a)
    {
        a.Check("groupby", 3, "attribute", "default", "case_sensitive");
        var attribute = a.Req(0, "attribute", "groupby");
        var dflt = a.Opt(1, "default", null, "groupby");
        bool cs = Py.Truthy(a.Opt(2, "case_sensitive", false, "groupby"));
        var getter = AttrGetter(attribute, dflt);
        var items = Py.ToList(v);
        Func<object?, object?> key = cs ? getter : x => IgnoreCase(getter(x));
        var sorted = StableSort(items, key, false);
        var result = new List<object?>();
        int i = 0;
        while (i < sorted.Count)
        {
            var k = key(sorted[i]);
            var group = new List<object?>();
            while (i < sorted.Count && Py.Eq(key(sorted[i]), k)) group.Add(sorted[i++]);
            result.Add(new PyTuple([cs ? k : getter(group[0]), group], ["grouper", "list"]));
        }
        return result;
    }

    static object? Indent(RenderState st, object? v, in CallArgs a)
    {
        a.Check("indent", 3, "width", "first", "blank");
        var width = a.Opt(0, "width", Py.Int(4), "indent");
        bool first = Py.Truthy(a.Opt(1, "first", false, "indent"));
        bool blank = Py.Truthy(a.Opt(2, "blank", false, "indent"));
        string indention = width is string ws ? ws : width is Markup wm ? wm.Value : new string(' ', (int)Math.Max(0, ToInt(width)));
        if (v is Undefined u) throw u.Error();
        if (v is not (string or Markup)) throw Py.TypeError($"unsupported operand type(s) for +=: '{Py.TypeName(v)}' and 'str'");
        string s = Py.AsStr(v) + "\n";
        var lines = PyStr.SplitLines(s, false);
        string rv;
        if (blank) rv = string.Join("\n" + indention, lines);
        else
        {
            var sb = new StringBuilder(lines.Count > 0 ? lines[0] : "");
            for (int i = 1; i < lines.Count; i++)
            {
                sb.Append('\n');
                if (lines[i].Length > 0) sb.Append(indention);
                sb.Append(lines[i]);
            }
            rv = sb.ToString();
        }
        if (first) rv = indention + rv;
        return v is Markup ? new Markup(rv) : rv;
    }

    static object? Items(RenderState st, object? v, in CallArgs a)
    {
        a.Check("items", 0);
        if (v is Undefined) return new PyGenerator([], "do_items");
        if (v is not PyDict d) throw Py.TypeError("Can only get item pairs from a mapping.");
        return new PyGenerator(ItemsGen(d), "do_items");
    }

    static IEnumerable<object?> ItemsGen(PyDict d)
    {
        for (int i = 0; i < d.Count; i++) yield return new PyTuple([d.KeyAt(i), d.ValueAt(i)]);
    }

    static object? Join(RenderState st, object? v, in CallArgs a)
    {
        a.Check("join", 2, "d", "attribute");
        var sep = a.Opt(0, "d", "", "join");
        var attribute = a.Opt(1, "attribute", null, "join");
        var getter = attribute != null ? AttrGetter(attribute, null) : null;
        var it = Py.Iter(v);
        var sb = new StringBuilder();
        string sepStr = Py.Str(sep);
        bool firstItem = true;
        while (it.Next(out var x))
        {
            if (!firstItem) sb.Append(sepStr);
            firstItem = false;
            Py.AppendStr(sb, getter != null ? getter(x) : x);
        }
        return sb.ToString();
    }

    /// <summary>make_attrgetter: "a.b.0" walks getitem, digits become ints.</summary>
    static Func<object?, object?> AttrGetter(object? attribute, object? dflt)
    {
        object?[] parts;
        if (attribute is null) parts = [];
        else if (attribute is string s) parts = s.Split('.').Select(p => p.Length > 0 && p.All(char.IsAsciiDigit) ? Py.Int(long.Parse(p, CultureInfo.InvariantCulture)) : (object?)p).ToArray();
        else parts = [attribute];
        return item =>
        {
            foreach (var p in parts)
            {
                item = Access.GetItem(item, p);
                if (dflt != null && item is Undefined) item = dflt;
            }
            return item;
        };
    }

    static object? Map(RenderState st, object? v, in CallArgs a)
    {
        if (!Py.Truthy(v)) return new PyGenerator([], "sync_do_map");
        Func<object?, object?> func;
        if (a.Count == 0 && a.Kw != null && a.Kw.Exists(k => k.Key == "attribute"))
        {
            object? attribute = null, dflt = null;
            foreach (var kv in a.Kw)
            {
                if (kv.Key == "attribute") attribute = kv.Value;
                else if (kv.Key == "default") dflt = kv.Value;
                else throw new JinjaException("FilterArgumentError", $"Unexpected keyword argument {Py.Repr(kv.Key)}");
            }
            func = AttrGetter(attribute, dflt);
        }
        else
        {
            if (a.Count == 0) throw new JinjaException("FilterArgumentError", "map requires a filter argument");
            if (a.Pos[0] is not string name) throw Py.TypeError("filter name must be a string");
            var rest = new CallArgs(a.Pos[1..], a.Kw);
            func = item => Call(st, name, item, rest);
        }
        var it = Py.Iter(v);
        return new PyGenerator(MapGen(it, func), "sync_do_map");
    }

    static IEnumerable<object?> MapGen(PyIter it, Func<object?, object?> func)
    {
        while (it.Next(out var x)) yield return func(x);
    }

    static object? MinMax(RenderState st, object? v, in CallArgs a, string which)
    {
        a.Check(which, 2, "case_sensitive", "attribute");
        bool cs = Py.Truthy(a.Opt(0, "case_sensitive", false, which));
        var attribute = a.Opt(1, "attribute", null, which);
        var items = Py.ToList(v);
        if (items.Count == 0) return Undefined.ForHint("No aggregated item, sequence was empty.");
        var getter = AttrGetter(attribute, null);
        Func<object?, object?> key = cs ? getter : x => IgnoreCase(getter(x));
        object? best = items[0];
        object? bestKey = key(best);
        for (int i = 1; i < items.Count; i++)
        {
            var k = key(items[i]);
            bool better = which == "max" ? Py.Compare(k, bestKey, Py.CmpOp.Gt) : Py.Compare(k, bestKey, Py.CmpOp.Lt);
            if (better) { best = items[i]; bestKey = k; }
        }
        return best;
    }

    static object? SelectOrReject(RenderState st, object? v, in CallArgs a, bool select, bool lookupAttr, string name)
    {
        if (!Py.Truthy(v)) return new PyGenerator([], "select_or_reject");
        Func<object?, object?> trans = x => x;
        int off = 0;
        if (lookupAttr)
        {
            if (a.Count == 0) throw new JinjaException("FilterArgumentError", "Missing parameter for attribute name");
            trans = AttrGetter(a.Pos[0], null);
            off = 1;
        }
        Func<object?, bool> test;
        if (a.Count > off)
        {
            if (a.Pos[off] is not string testName) throw Py.TypeError("test name must be a string");
            var rest = new CallArgs(a.Pos[(off + 1)..], a.Kw);
            test = item => Tests.Call(st, testName, item, rest);
        }
        else test = Py.Truthy;
        var it = Py.Iter(v);
        return new PyGenerator(SelectGen(it, x => test(trans(x)) == select), name);
    }

    static IEnumerable<object?> SelectGen(PyIter it, Func<object?, bool> keep)
    {
        while (it.Next(out var x)) if (keep(x)) yield return x;
    }

    static object? Replace(RenderState st, object? v, in CallArgs a)
    {
        a.Check("replace", 3, "old", "new", "count");
        var old = a.Req(0, "old", "replace");
        var nw = a.Req(1, "new", "replace");
        var count = a.Opt(2, "count", null, "replace");
        long c = count == null ? -1 : ToInt(count);
        return PyStr.Replace(Py.Str(v), Py.Str(old), Py.Str(nw), c);
    }

    static object? Reverse(RenderState st, object? v, in CallArgs a)
    {
        a.Check("reverse", 0);
        switch (v)
        {
            case string s: return PyStr.Slice(s, new PySlice(null, null, Py.Int(-1)));
            case Markup m: return new Markup(PyStr.Slice(m.Value, new PySlice(null, null, Py.Int(-1))));
            case List<object?> or PyTuple or PyRange or PyDict or PyView or Undefined:
            {
                var items = Py.ToList(v);
                items.Reverse();
                return new PyGenerator(items, "reversed");
            }
        }
        try
        {
            var items = Py.ToList(v);
            items.Reverse();
            return items;
        }
        catch (JinjaException e) when (e.ErrorType == "TypeError")
        {
            throw new JinjaException("FilterArgumentError", "argument must be iterable");
        }
    }

    static object? Round(RenderState st, object? v, in CallArgs a)
    {
        a.Check("round", 2, "precision", "method");
        long precision = ToInt(a.Opt(0, "precision", Py.Int(0), "round"));
        var method = a.Opt(1, "method", "common", "round");
        if (method is not ("common" or "ceil" or "floor")) throw new JinjaException("FilterArgumentError", "method must be common, ceil or floor");
        if (!Py.IsNumber(v)) throw Py.TypeError($"type {Py.TypeName(v)} doesn't define __round__ method");
        if ((string)method! == "common")
        {
            if (Py.IsInt(v))
            {
                if (precision >= 0) return Py.Int(Py.AsLong(v));
                long p = (long)Math.Pow(10, -precision);
                long x = Py.AsLong(v);
                long q = (long)Math.Floor((double)x / p);
                long r = x - q * p;
                if (r * 2 > p || (r * 2 == p && q % 2 != 0)) q++;
                return Py.Int(q * p);
            }
            return PyFormat.Round((double)v!, precision);
        }
        double scale = Math.Pow(10, precision);
        double d = Py.AsDouble(v);
        return ((string)method == "ceil" ? Math.Ceiling(d * scale) : Math.Floor(d * scale)) / scale;
    }

    static object? Slice(RenderState st, object? v, in CallArgs a)
    {
        a.Check("slice", 2, "slices", "fill_with");
        long slices = ToInt(a.Req(0, "slices", "slice"));
        var fill = a.Opt(1, "fill_with", null, "slice");
        var seq = Py.ToList(v);
        return new PyGenerator(SliceGen(seq, slices, fill), "sync_do_slice");
    }

    static IEnumerable<object?> SliceGen(List<object?> seq, long slices, object? fill)
    {
        int length = seq.Count;
        long per = length / slices, extra = length % slices, offset = 0;
        for (long n = 0; n < slices; n++)
        {
            long start = offset + n * per;
            if (n < extra) offset++;
            long end = offset + (n + 1) * per;
            var tmp = seq.GetRange((int)start, (int)(end - start));
            if (fill != null && n >= extra) tmp.Add(fill);
            yield return tmp;
        }
    }

    static object? Sort(RenderState st, object? v, in CallArgs a)
    {
        a.Check("sort", 3, "reverse", "case_sensitive", "attribute");
        bool reverse = Py.Truthy(a.Opt(0, "reverse", false, "sort"));
        bool cs = Py.Truthy(a.Opt(1, "case_sensitive", false, "sort"));
        var attribute = a.Opt(2, "attribute", null, "sort");
        var items = Py.ToList(v);
        // make_multi_attrgetter: "a,b" sorts by several attributes.
        Func<object?, object?>[] getters = attribute is string s
            ? s.Split(',').Select(p => AttrGetter(p, null)).ToArray()
            : [AttrGetter(attribute, null)];
        Func<object?, object?> key = x =>
        {
            var ks = new object?[getters.Length];
            for (int i = 0; i < getters.Length; i++) ks[i] = cs ? getters[i](x) : IgnoreCase(getters[i](x));
            return new List<object?>(ks);
        };
        return StableSort(items, key, reverse);
    }

    [GeneratedRegex(@"<!--.*?-->|<[^>]*>", RegexOptions.Singleline)]
    private static partial Regex TagRegex();

    static object? StripTags(RenderState st, object? v, in CallArgs a)
    {
        a.Check("striptags", 0);
        string s = TagRegex().Replace(Py.Str(v), "");
        s = string.Join(" ", PyStr.Split(s, null, -1).Select(x => (string)x!));
        return WebUtility.HtmlDecode(s);
    }

    static object? Sum(RenderState st, object? v, in CallArgs a)
    {
        a.Check("sum", 2, "attribute", "start");
        var attribute = a.Opt(0, "attribute", null, "sum");
        object? acc = a.Opt(1, "start", Py.Int(0), "sum");
        var getter = attribute != null ? AttrGetter(attribute, null) : null;
        var it = Py.Iter(v);
        while (it.Next(out var x)) acc = Py.Add(acc, getter != null ? getter(x) : x);
        return acc;
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginRegex();

    static object? Title(RenderState st, object? v, in CallArgs a)
    {
        a.Check("title", 0);
        var parts = WordBeginRegex().Split(SoftStr(v));
        var sb = new StringBuilder();
        foreach (var p in parts) if (p.Length > 0) sb.Append(PyStr.UpperFirstLowerRest(p));
        return v is Markup ? new Markup(sb.ToString()) : sb.ToString();
    }

    /// <summary>transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).</summary>
    static object? ToJson(RenderState st, object? v, in CallArgs a)
    {
        a.Check("tojson", 4, "ensure_ascii", "indent", "separators", "sort_keys");
        var o = new PyJson.Options
        {
            EnsureAscii = Py.Truthy(a.Opt(0, "ensure_ascii", false, "tojson")),
            SortKeys = Py.Truthy(a.Opt(3, "sort_keys", false, "tojson")),
        };
        var indent = a.Opt(1, "indent", null, "tojson");
        if (indent != null)
        {
            o.Indent = indent is string s ? s : indent is Markup m ? m.Value : Py.IsInt(indent) ? new string(' ', (int)Math.Max(0, Py.AsLong(indent)))
                : throw Py.TypeError($"can't multiply sequence by non-int of type '{Py.TypeName(indent)}'");
            o.ItemSep = ",";
        }
        var seps = a.Opt(2, "separators", null, "tojson");
        if (seps != null)
        {
            var items = Py.AsSequence(seps);
            if (items.Count != 2) throw Py.ValueError($"too many values to unpack (expected 2)");
            o.ItemSep = Py.Str(items[0]);
            o.KeySep = Py.Str(items[1]);
        }
        return PyJson.Dumps(v, o);
    }

    static object? Trim(RenderState st, object? v, in CallArgs a)
    {
        a.Check("trim", 1, "chars");
        var chars = a.Opt(0, "chars", null, "trim");
        string? cs = chars == null ? null : chars is string s ? s : chars is Markup m ? m.Value
            : throw Py.TypeError($"strip arg must be None or str");
        var r = PyStr.Strip(SoftStr(v), cs, true, true);
        return v is Markup ? new Markup(r) : r;
    }

    static object? Truncate(RenderState st, object? v, in CallArgs a)
    {
        a.Check("truncate", 4, "length", "killwords", "end", "leeway");
        long length = ToInt(a.Opt(0, "length", Py.Int(255), "truncate"));
        bool killwords = Py.Truthy(a.Opt(1, "killwords", false, "truncate"));
        string end = Py.Str(a.Opt(2, "end", "...", "truncate"));
        var lw = a.Opt(3, "leeway", null, "truncate");
        long leeway = lw == null ? 5 : ToInt(lw);
        long endLen = PyStr.Length(end);
        if (length < endLen) throw new JinjaException("AssertionError", $"expected length >= {endLen}, got {length}");
        if (leeway < 0) throw new JinjaException("AssertionError", $"expected leeway >= 0, got {leeway}");
        string s = Py.Str(v);
        if (PyStr.Length(s) <= length + leeway) return s;
        string head = PyStr.Slice(s, new PySlice(null, Py.Int(length - endLen), null));
        if (killwords) return head + end;
        return (string)PyStr.RSplit(head, " ", 1)[0]! + end;
    }

    static object? Unique(RenderState st, object? v, in CallArgs a)
    {
        a.Check("unique", 2, "case_sensitive", "attribute");
        bool cs = Py.Truthy(a.Opt(0, "case_sensitive", false, "unique"));
        var attribute = a.Opt(1, "attribute", null, "unique");
        var getter = AttrGetter(attribute, null);
        Func<object?, object?> key = cs ? getter : x => IgnoreCase(getter(x));
        var it = Py.Iter(v);
        return new PyGenerator(UniqueGen(it, key), "sync_do_unique");
    }

    static IEnumerable<object?> UniqueGen(PyIter it, Func<object?, object?> key)
    {
        var seen = new PyDict();
        while (it.Next(out var x))
        {
            var k = key(x);
            if (!seen.ContainsKey(k))
            {
                seen.Set(k, null);
                yield return x;
            }
        }
    }

    static string UrlQuote(object? v, bool forQs)
    {
        string s = v is string str ? str : v is Markup m ? m.Value : Py.Str(v);
        var bytes = Encoding.UTF8.GetBytes(s);
        var sb = new StringBuilder();
        foreach (byte b in bytes)
        {
            char c = (char)b;
            bool safe = char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' or '~' || (!forQs && c == '/');
            if (safe) sb.Append(c);
            else sb.Append('%').Append(b.ToString("X2"));
        }
        var r = sb.ToString();
        return forQs ? r.Replace("%20", "+") : r;
    }

    static object? UrlEncode(RenderState st, object? v, in CallArgs a)
    {
        a.Check("urlencode", 0);
        if (v is string || v is Markup || !Py.IsIterable(v)) return UrlQuote(v, false);
        IEnumerable<(object? k, object? val)> pairs;
        if (v is PyDict d) pairs = Enumerable.Range(0, d.Count).Select(i => (d.KeyAt(i), d.ValueAt(i)));
        else pairs = Py.ToList(v).Select(p => { var seq = Py.AsSequence(p); return (seq[0], seq[1]); });
        return string.Join("&", pairs.Select(p => UrlQuote(p.k, true) + "=" + UrlQuote(p.val, true)));
    }

    static object? WordCount(RenderState st, object? v, in CallArgs a)
    {
        a.Check("wordcount", 0);
        long n = 0;
        bool inWord = false;
        foreach (int cp in PyStr.CodePoints(SoftStr(v)))
        {
            bool w = PyStr.IsWord(cp);
            if (w && !inWord) n++;
            inWord = w;
        }
        return Py.Int(n);
    }

    static object? XmlAttr(RenderState st, object? v, in CallArgs a)
    {
        a.Check("xmlattr", 1, "autospace");
        bool autospace = Py.Truthy(a.Opt(0, "autospace", true, "xmlattr"));
        if (v is not PyDict d) throw new JinjaException("AttributeError", $"'{Py.TypeName(v)}' object has no attribute 'items'");
        var items = new List<string>();
        for (int i = 0; i < d.Count; i++)
        {
            var val = d.ValueAt(i);
            if (val is null || val is Undefined) continue;
            string key = Py.Str(d.KeyAt(i));
            if (key.Any(c => char.IsWhiteSpace(c) || c is '/' or '>' or '='))
                throw Py.ValueError($"Invalid character in attribute name: {Py.Repr(key)}");
            items.Add($"{Markup.Escape(key)}=\"{Markup.EscapeValue(val).Value}\"");
        }
        string rv = string.Join(" ", items);
        if (autospace && rv.Length > 0) rv = " " + rv;
        return rv;
    }
}
