using System.Text;

namespace Speculators.Jinja.Runtime;

// Template values are plain objects: null (None), bool, long (int), double (float), string (str),
// Markup, List<object?> (list), PyTuple, PyDict, and the runtime types below. Never arbitrary .NET
// objects: inputs are converted at the render boundary (ValueConverter).

/// <summary>Marks an unassigned slot in a frame (lookup continues in outer frames).</summary>
internal sealed class Missing
{
    public static readonly Missing Value = new();
    Missing() { }
}

/// <summary>jinja2's default Undefined: prints empty, iterates empty, falsy; anything else raises.</summary>
internal sealed class Undefined
{
    public readonly string? Hint;
    public readonly bool HasObj;
    public readonly object? Obj;
    public readonly object? Name;
    public readonly string ExcType;

    Undefined(string? hint, bool hasObj, object? obj, object? name, string excType)
    {
        Hint = hint; HasObj = hasObj; Obj = obj; Name = name; ExcType = excType;
    }

    public static Undefined ForName(string name) => new(null, false, null, name, "UndefinedError");
    public static Undefined ForHint(string hint, string? name = null) => new(hint, false, null, name, "UndefinedError");
    public static Undefined ForMember(object? obj, object? name) => new(null, true, obj, name, "UndefinedError");
    public static Undefined Unsafe(object? obj, string attr) =>
        new($"access to attribute {Py.Repr(attr)} of {Py.Repr(Py.TypeName(obj))} object is unsafe.", true, obj, attr, "SecurityError");

    public string Message
    {
        get
        {
            if (!string.IsNullOrEmpty(Hint)) return Hint;
            if (!HasObj) return $"{Py.Repr(Name)} is undefined";
            if (Name is not string s) return $"{Py.ObjectTypeRepr(Obj)} has no element {Py.Repr(Name)}";
            return $"{Py.Repr(Py.ObjectTypeRepr(Obj))} has no attribute {Py.Repr(s)}";
        }
    }

    public JinjaException Error() => new(ExcType, Message);
}

/// <summary>markupsafe.Markup: a str marked safe. Concatenation with plain strings escapes them.</summary>
internal sealed class Markup
{
    public readonly string Value;
    public Markup(string value) { Value = value; }
    public override string ToString() => Value;

    public static string Escape(string s)
    {
        int i = s.AsSpan().IndexOfAny("&<>'\"");
        if (i < 0) return s;
        var sb = new StringBuilder(s.Length + 16);
        sb.Append(s, 0, i);
        for (; i < s.Length; i++)
        {
            char c = s[i];
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '\'': sb.Append("&#39;"); break;
                case '"': sb.Append("&#34;"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.ToString();
    }

    /// <summary>markupsafe.escape(x): Markup stays, anything else is str()'d and escaped.</summary>
    public static Markup EscapeValue(object? v) => v is Markup m ? m : new Markup(Escape(Py.Str(v)));
}

/// <summary>A Python tuple.</summary>
internal sealed class PyTuple
{
    public readonly object?[] Items;
    /// <summary>Field names when this is a named tuple (groupby's (grouper, list)).</summary>
    public readonly string[]? Fields;
    public static readonly PyTuple Empty = new([]);
    public PyTuple(object?[] items) { Items = items; }
    public PyTuple(object?[] items, string[] fields) { Items = items; Fields = fields; }
    public int Count => Items.Length;
}

/// <summary>range(start, stop, step).</summary>
internal sealed class PyRange
{
    public readonly long Start, Stop, Step;
    public PyRange(long start, long stop, long step) { Start = start; Stop = stop; Step = step; }
    public long Count
    {
        get
        {
            if (Step > 0) return Start < Stop ? (Stop - Start - 1) / Step + 1 : 0;
            return Start > Stop ? (Start - Stop - 1) / -Step + 1 : 0;
        }
    }
    public long Get(long i) => Start + i * Step;
}

/// <summary>slice(start, stop, step) as produced by x[a:b:c].</summary>
internal sealed class PySlice
{
    public readonly object? Start, Stop, Step;
    public PySlice(object? start, object? stop, object? step) { Start = start; Stop = stop; Step = step; }
}

/// <summary>A one-shot lazy iterator (Python generator): what map/select/items/unique/batch return.</summary>
internal sealed class PyGenerator
{
    readonly IEnumerator<object?> _source;
    public readonly string Name;
    public PyGenerator(IEnumerable<object?> source, string name) { _source = source.GetEnumerator(); Name = name; }
    public bool Next(out object? value)
    {
        if (_source.MoveNext()) { value = _source.Current; return true; }
        value = null;
        return false;
    }
}

/// <summary>dict.keys() / values() / items() views.</summary>
internal sealed class PyView
{
    public enum Kind { Keys, Values, Items }
    public readonly PyDict Dict;
    public readonly Kind ViewKind;
    public PyView(PyDict dict, Kind kind) { Dict = dict; ViewKind = kind; }
    public string TypeName => ViewKind switch { Kind.Keys => "dict_keys", Kind.Values => "dict_values", _ => "dict_items" };
    public object? Get(int i) => ViewKind switch
    {
        Kind.Keys => Dict.KeyAt(i),
        Kind.Values => Dict.ValueAt(i),
        _ => new PyTuple([Dict.KeyAt(i), Dict.ValueAt(i)]),
    };
}

/// <summary>jinja2.utils.Namespace: the one mutable object templates may assign attributes to.</summary>
internal sealed class Namespace
{
    public readonly PyDict Attrs = new();
}

/// <summary>Insertion-ordered dict with Python key equality (1 == 1.0 == True; "a" == Markup("a")).</summary>
internal sealed class PyDict
{
    // Small dicts (messages, tool calls) are searched linearly; an index is built past this size.
    const int IndexThreshold = 8;
    object?[] _keys;
    object?[] _values;
    int _count;
    Dictionary<string, int>? _str;
    Dictionary<object, int>? _other;

    public PyDict() : this(4) { }
    public PyDict(int capacity)
    {
        capacity = Math.Max(capacity, 1);
        _keys = new object?[capacity];
        _values = new object?[capacity];
    }

    public int Count => _count;
    public object? KeyAt(int i) => _keys[i];
    public object? ValueAt(int i) => _values[i];

    public int IndexOf(object? key)
    {
        if (key is string || key is Markup)
        {
            string s = key is string ks ? ks : ((Markup)key).Value;
            if (_str != null) return _str.TryGetValue(s, out int j) ? j : -1;
            if (_other != null) return -1;
            for (int i = 0; i < _count; i++)
            {
                var k = _keys[i];
                if (k is string ss ? string.Equals(ss, s, StringComparison.Ordinal) : k is Markup km && km.Value == s) return i;
            }
            return -1;
        }
        var hk = HashKey(key);
        if (_other != null) return _other.TryGetValue(hk, out int m) ? m : -1;
        if (_str != null) return -1;
        for (int i = 0; i < _count; i++)
        {
            var k = _keys[i];
            if (k is string || k is Markup) continue;
            if (HashKey(k).Equals(hk)) return i;
        }
        return -1;
    }

    public bool TryGet(object? key, out object? value)
    {
        int i = IndexOf(key);
        if (i < 0) { value = null; return false; }
        value = _values[i];
        return true;
    }

    public bool ContainsKey(object? key) => IndexOf(key) >= 0;

    /// <summary>d[key] = value: overwrites in place (keeping the first key's position) or appends.</summary>
    public void Set(object? key, object? value)
    {
        int i = IndexOf(key);
        if (i >= 0) { _values[i] = value; return; }
        if (_count == _keys.Length)
        {
            Array.Resize(ref _keys, _count * 2);
            Array.Resize(ref _values, _count * 2);
        }
        _keys[_count] = key;
        _values[_count] = value;
        if (_str != null || _other != null) AddToIndex(key, _count);
        _count++;
        if (_str == null && _other == null && _count > IndexThreshold)
        {
            _str = new Dictionary<string, int>(StringComparer.Ordinal);
            _other = new Dictionary<object, int>();
            for (int k = 0; k < _count; k++) AddToIndex(_keys[k], k);
        }
    }

    void AddToIndex(object? key, int index)
    {
        if (key is string s) _str![s] = index;
        else if (key is Markup m) _str![m.Value] = index;
        else _other![HashKey(key)] = index;
    }

    public PyDict Copy()
    {
        var d = new PyDict(Count);
        for (int i = 0; i < Count; i++) d.Set(_keys[i], _values[i]);
        return d;
    }

    static readonly object NoneKey = new();
    static readonly object UndefinedKey = new();

    /// <summary>Normalizes a non-string key so that equal Python keys hash and compare equal.</summary>
    internal static object HashKey(object? key) => key switch
    {
        null => NoneKey,
        bool b => b ? 1L : 0L,
        long l => l,
        double d => d == Math.Floor(d) && d >= -9.2e18 && d <= 9.2e18 ? (object)(long)d : d,
        PyTuple t => new TupleKey(t),
        Undefined => UndefinedKey,
        List<object?> => throw Py.TypeError("unhashable type: 'list'"),
        PyDict => throw Py.TypeError("unhashable type: 'dict'"),
        _ => key,
    };

    sealed class TupleKey : IEquatable<TupleKey>
    {
        readonly object[] _items;
        readonly int _hash;
        public TupleKey(PyTuple t)
        {
            _items = new object[t.Count];
            var h = new HashCode();
            for (int i = 0; i < t.Count; i++)
            {
                var it = t.Items[i];
                _items[i] = it is string s ? s : it is Markup m ? m.Value : HashKey(it);
                h.Add(_items[i]);
            }
            _hash = h.ToHashCode();
        }
        public bool Equals(TupleKey? o)
        {
            if (o == null || o._items.Length != _items.Length) return false;
            for (int i = 0; i < _items.Length; i++) if (!_items[i].Equals(o._items[i])) return false;
            return true;
        }
        public override bool Equals(object? obj) => obj is TupleKey t && Equals(t);
        public override int GetHashCode() => _hash;
    }
}

/// <summary>Arguments of a call: positional values and keyword arguments in call order.</summary>
internal readonly struct CallArgs
{
    public readonly object?[] Pos;
    public readonly List<KeyValuePair<string, object?>>? Kw;
    public CallArgs(object?[] pos, List<KeyValuePair<string, object?>>? kw = null) { Pos = pos; Kw = kw; }
    public static readonly CallArgs None = new([]);
    public int Count => Pos.Length;
    public bool HasKw => Kw != null && Kw.Count > 0;

    /// <summary>Python-style parameter binding for builtins: position i or keyword name, else default.</summary>
    public object? Get(int index, string name, object? dflt, bool hasDefault, string func)
    {
        if (index < Pos.Length)
        {
            if (Kw != null)
                foreach (var kv in Kw)
                    if (kv.Key == name) throw Py.TypeError($"{func}() got multiple values for argument '{name}'");
            return Pos[index];
        }
        if (Kw != null)
            foreach (var kv in Kw)
                if (kv.Key == name) return kv.Value;
        if (!hasDefault) throw Py.TypeError($"{func}() missing required argument: '{name}'");
        return dflt;
    }

    public object? Opt(int index, string name, object? dflt, string func) => Get(index, name, dflt, true, func);
    public object? Req(int index, string name, string func) => Get(index, name, null, false, func);

    /// <summary>Raises TypeError when more positional arguments or unknown keywords were given.</summary>
    public void Check(string func, int maxPos, params string[] names)
    {
        if (Pos.Length > maxPos)
            throw Py.TypeError($"{func}() takes at most {maxPos} argument{(maxPos == 1 ? "" : "s")} ({Pos.Length} given)");
        if (Kw == null) return;
        foreach (var kv in Kw)
            if (Array.IndexOf(names, kv.Key) < 0)
                throw Py.TypeError($"{func}() got an unexpected keyword argument '{kv.Key}'");
    }
}

/// <summary>Something templates can call.</summary>
internal abstract class PyCallable
{
    public abstract string Repr { get; }
    public abstract string PyTypeName { get; }
    public abstract object? Call(RenderState st, in CallArgs args);
}

internal sealed class BuiltinFunction : PyCallable
{
    public delegate object? Impl(RenderState st, in CallArgs args);
    readonly string _name;
    readonly Impl _impl;
    public BuiltinFunction(string name, Impl impl) { _name = name; _impl = impl; }
    public override string Repr => $"<function {_name}>";
    public override string PyTypeName => "function";
    public override object? Call(RenderState st, in CallArgs args) => _impl(st, args);
}

/// <summary>A method of a builtin value (str.split, dict.get...), resolved when called.</summary>
internal sealed class BoundMethod : PyCallable
{
    public readonly object? Self;
    public readonly string Name;
    public BoundMethod(object? self, string name) { Self = self; Name = name; }
    public override string Repr => $"<built-in method {Name} of {Py.TypeName(Self)} object>";
    public override string PyTypeName => "builtin_function_or_method";
    public override object? Call(RenderState st, in CallArgs args) => Methods.Call(st, Self, Name, args);
}

/// <summary>jinja2.utils.Cycler.</summary>
internal sealed class Cycler
{
    public readonly object?[] Items;
    public int Pos;
    public Cycler(object?[] items) { Items = items; }
    public object? Current => Items[Pos];
    public object? Next()
    {
        var rv = Items[Pos];
        Pos = (Pos + 1) % Items.Length;
        return rv;
    }
}

/// <summary>jinja2.utils.Joiner: returns "" the first time, the separator afterwards.</summary>
internal sealed class Joiner : PyCallable
{
    readonly string _sep;
    bool _used;
    public Joiner(string sep) { _sep = sep; }
    public override string Repr => "<jinja2.utils.Joiner object>";
    public override string PyTypeName => "Joiner";
    public override object? Call(RenderState st, in CallArgs args)
    {
        if (args.Count > 0 || args.HasKw) throw Py.TypeError("__call__() takes 1 positional argument but " + (args.Count + 1) + " were given");
        if (!_used) { _used = true; return ""; }
        return _sep;
    }
}
