using System.Collections;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Speculators.Jinja.Runtime;

/// <summary>Python's json.dumps, exactly: key order kept, Python float repr, ensure_ascii, indent, separators, sort_keys.</summary>
internal static class PyJson
{
    public sealed class Options
    {
        public bool EnsureAscii;
        public string? Indent;
        public string ItemSep = ", ";
        public string KeySep = ": ";
        public bool SortKeys;
    }

    const int MaxDepth = 500;

    public static string Dumps(object? value, Options o)
    {
        var sb = new StringBuilder();
        Encode(sb, value, o, 0);
        return sb.ToString();
    }

    static void NotSerializable(object? v) => throw Py.TypeError($"Object of type {Py.TypeName(v)} is not JSON serializable");

    static void Newline(StringBuilder sb, Options o, int level)
    {
        sb.Append('\n');
        for (int i = 0; i < level; i++) sb.Append(o.Indent);
    }

    static void Encode(StringBuilder sb, object? v, Options o, int level)
    {
        if (level > MaxDepth) throw new JinjaException("RecursionError", "maximum recursion depth exceeded while encoding a JSON object");
        if ((level & 15) == 15) RenderState.CheckStack();
        switch (v)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l); return;
            case double d: sb.Append(FloatStr(d)); return;
            case string s: WriteString(sb, s, o.EnsureAscii); return;
            case Markup m: WriteString(sb, m.Value, o.EnsureAscii); return;
            case List<object?> list: EncodeArray(sb, list, o, level); return;
            case PyTuple t: EncodeArray(sb, t.Items, o, level); return;
            case PyDict dict: EncodeObject(sb, dict, o, level); return;
        }
        NotSerializable(v);
    }

    static string FloatStr(double d)
    {
        if (double.IsNaN(d)) return "NaN";
        if (double.IsPositiveInfinity(d)) return "Infinity";
        if (double.IsNegativeInfinity(d)) return "-Infinity";
        return PyFormat.FloatRepr(d);
    }

    static void EncodeArray(StringBuilder sb, IReadOnlyList<object?> items, Options o, int level)
    {
        if (items.Count == 0) { sb.Append("[]"); return; }
        sb.Append('[');
        if (o.Indent != null) Newline(sb, o, level + 1);
        for (int i = 0; i < items.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(o.ItemSep);
                if (o.Indent != null) Newline(sb, o, level + 1);
            }
            Encode(sb, items[i], o, level + 1);
        }
        if (o.Indent != null) Newline(sb, o, level);
        sb.Append(']');
    }

    static void EncodeObject(StringBuilder sb, PyDict d, Options o, int level)
    {
        if (d.Count == 0) { sb.Append("{}"); return; }
        int[] order = new int[d.Count];
        for (int i = 0; i < order.Length; i++) order[i] = i;
        if (o.SortKeys)
        {
            // sorted(d.items()): Python ordering of the (unique) keys; TypeError on mixed types.
            order = PySort.Sorted(order, i => d.KeyAt(i), false).ToArray();
        }
        sb.Append('{');
        if (o.Indent != null) Newline(sb, o, level + 1);
        bool first = true;
        foreach (int i in order)
        {
            var key = d.KeyAt(i);
            string ks = key switch
            {
                string s => s,
                Markup m => m.Value,
                double f => FloatStr(f),
                bool b => b ? "true" : "false",
                long l => l.ToString(CultureInfo.InvariantCulture),
                null => "null",
                _ => throw Py.TypeError($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
            };
            if (!first)
            {
                sb.Append(o.ItemSep);
                if (o.Indent != null) Newline(sb, o, level + 1);
            }
            first = false;
            WriteString(sb, ks, o.EnsureAscii);
            sb.Append(o.KeySep);
            Encode(sb, d.ValueAt(i), o, level + 1);
        }
        if (o.Indent != null) Newline(sb, o, level);
        sb.Append('}');
    }

    public static void WriteString(StringBuilder sb, string s, bool ensureAscii)
    {
        sb.Append('"');
        int runStart = 0;
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            string? esc = c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                '\b' => "\\b",
                '\f' => "\\f",
                _ => null,
            };
            if (esc == null)
            {
                if (c < 0x20 || (ensureAscii && c > 0x7e)) esc = "\\u" + ((int)c).ToString("x4");
                else continue;
            }
            sb.Append(s, runStart, i - runStart).Append(esc);
            runStart = i + 1;
        }
        sb.Append(s, runStart, s.Length - runStart);
        sb.Append('"');
    }
}

/// <summary>Turns caller-supplied .NET values (primitives, strings, lists, dictionaries, System.Text.Json nodes) into template values.</summary>
internal static class ValueConverter
{
    const int MaxDepth = 500;

    public static object? FromDotNet(object? v, string path) => Convert(v, path, 0);

    static object? Convert(object? v, string path, int depth)
    {
        if (depth > MaxDepth) throw new JinjaException("ValueError", $"{path}: value nested more than {MaxDepth} levels deep");
        if ((depth & 15) == 15) RenderState.CheckStack();
        switch (v)
        {
            case null: return null;
            case string s: return s;
            case bool b: return Py.Bool(b);
            case long l: return Py.Int(l);
            case int i: return Py.Int(i);
            case short sh: return Py.Int(sh);
            case byte by: return Py.Int(by);
            case sbyte sb: return Py.Int(sb);
            case ushort us: return Py.Int(us);
            case uint ui: return Py.Int(ui);
            case ulong ul: return ul <= long.MaxValue ? Py.Int((long)ul) : (double)ul;
            case double d: return d;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case char c: return c.ToString();
            // Already template values (e.g. a caller re-rendering with values it built through this API).
            case Markup or PyTuple or PyDict or PyRange or Undefined: return v;
            case JsonElement e: return FromElement(e, path, depth);
            case JsonNode n: return FromNode(n, path, depth);
            case IDictionary<string, object?> gd:
            {
                var r = new PyDict(gd.Count);
                foreach (var kv in gd) r.Set(kv.Key, Convert(kv.Value, path + "." + kv.Key, depth + 1));
                return r;
            }
            case IReadOnlyDictionary<string, object?> rd:
            {
                var r = new PyDict(rd.Count);
                foreach (var kv in rd) r.Set(kv.Key, Convert(kv.Value, path + "." + kv.Key, depth + 1));
                return r;
            }
            case IDictionary dict:
            {
                var r = new PyDict(dict.Count);
                foreach (DictionaryEntry kv in dict) r.Set(Convert(kv.Key, path, depth + 1), Convert(kv.Value, path + "." + kv.Key, depth + 1));
                return r;
            }
            case IEnumerable seq:
            {
                var r = new List<object?>();
                int i = 0;
                foreach (var x in seq) r.Add(Convert(x, $"{path}[{i++}]", depth + 1));
                return r;
            }
        }
        throw new JinjaException("TypeError",
            $"{path}: values of type {v.GetType().FullName} cannot be passed to a template; use strings, numbers, booleans, lists, dictionaries or System.Text.Json values");
    }

    static object? FromElement(JsonElement e, string path, int depth)
    {
        if (depth > MaxDepth) throw new JinjaException("ValueError", $"{path}: value nested more than {MaxDepth} levels deep");
        switch (e.ValueKind)
        {
            case JsonValueKind.Null:
            case JsonValueKind.Undefined: return null;
            case JsonValueKind.True: return Py.True;
            case JsonValueKind.False: return Py.False;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.Number: return Number(e.GetRawText());
            case JsonValueKind.Array:
            {
                var r = new List<object?>(e.GetArrayLength());
                int i = 0;
                foreach (var x in e.EnumerateArray()) r.Add(FromElement(x, $"{path}[{i++}]", depth + 1));
                return r;
            }
            default:
            {
                var r = new PyDict();
                foreach (var p in e.EnumerateObject()) r.Set(p.Name, FromElement(p.Value, path + "." + p.Name, depth + 1));
                return r;
            }
        }
    }

    /// <summary>json.loads number semantics: integers stay ints, anything with '.', 'e' or 'E' is a float.</summary>
    static object Number(string raw)
    {
        if (raw.AsSpan().IndexOfAny(".eE") < 0 && long.TryParse(raw, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l))
            return Py.Int(l);
        return double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
    }

    static object? FromNode(JsonNode? n, string path, int depth)
    {
        if (depth > MaxDepth) throw new JinjaException("ValueError", $"{path}: value nested more than {MaxDepth} levels deep");
        switch (n)
        {
            case null: return null;
            case JsonObject o:
            {
                var r = new PyDict(o.Count);
                foreach (var kv in o) r.Set(kv.Key, FromNode(kv.Value, path + "." + kv.Key, depth + 1));
                return r;
            }
            case JsonArray a:
            {
                var r = new List<object?>(a.Count);
                for (int i = 0; i < a.Count; i++) r.Add(FromNode(a[i], $"{path}[{i}]", depth + 1));
                return r;
            }
            case JsonValue jv:
            {
                if (jv.TryGetValue<JsonElement>(out var el)) return FromElement(el, path, depth);
                switch (jv.GetValueKind())
                {
                    case JsonValueKind.String: return jv.GetValue<string>();
                    case JsonValueKind.True: return Py.True;
                    case JsonValueKind.False: return Py.False;
                    case JsonValueKind.Null: return null;
                    case JsonValueKind.Number:
                        if (jv.TryGetValue<double>(out var d)) return d;
                        if (jv.TryGetValue<float>(out var f)) return (double)f;
                        if (jv.TryGetValue<decimal>(out var m)) return (double)m;
                        if (jv.TryGetValue<long>(out var l)) return Py.Int(l);
                        if (jv.TryGetValue<int>(out var i)) return Py.Int(i);
                        return Number(jv.ToJsonString());
                }
                return Convert(jv.GetValue<object>(), path, depth);
            }
        }
        throw new JinjaException("TypeError", $"{path}: unsupported JSON node {n.GetType().Name}");
    }
}
