namespace Speculators.Jinja.Runtime;

/// <summary>
/// Attribute and item access as jinja2's ImmutableSandboxedEnvironment does it: <c>x.name</c> tries
/// the Python attribute first, then <c>x["name"]</c>; <c>x[key]</c> tries the item first, then the
/// attribute when the key is a string. Private (<c>_</c>) attributes and methods that mutate lists
/// or dicts come back as an Undefined that raises SecurityError when used.
/// </summary>
internal static class Access
{
    public static bool IsStrMethod(string name) => name switch
    {
        "capitalize" or "casefold" or "center" or "count" or "endswith" or "expandtabs" or "find" or "format" or "format_map"
            or "index" or "isalnum" or "isalpha" or "isascii" or "isdecimal" or "isdigit" or "isidentifier" or "islower"
            or "isnumeric" or "isprintable" or "isspace" or "istitle" or "isupper" or "join" or "ljust" or "lower" or "lstrip"
            or "partition" or "removeprefix" or "removesuffix" or "replace" or "rfind" or "rindex" or "rjust" or "rpartition"
            or "rsplit" or "rstrip" or "split" or "splitlines" or "startswith" or "strip" or "swapcase" or "title" or "upper"
            or "zfill" => true,
        _ => false,
    };

    /// <summary>Whether a dict has a Python attribute of this name (so <c>d.name</c> is not an item lookup).</summary>
    public static bool IsDictAttr(string name) => name switch
    {
        "copy" or "get" or "items" or "keys" or "values" or "fromkeys" or "clear" or "pop" or "popitem" or "setdefault" or "update" => true,
        _ => false,
    };

    static bool IsDictUnsafe(string name) => name is "clear" or "pop" or "popitem" or "setdefault" or "update";
    static bool IsListSafe(string name) => name is "copy" or "count" or "index";
    static bool IsListUnsafe(string name) => name is "append" or "clear" or "extend" or "insert" or "pop" or "remove" or "reverse" or "sort";

    static bool IsDunder(string name) => name.Length > 4 && name.StartsWith("__", StringComparison.Ordinal) && name.EndsWith("__", StringComparison.Ordinal);

    /// <summary>Python getattr(obj, name) on template values; false when the attribute does not exist.</summary>
    public static bool TryPyGetAttr(object? obj, string name, out object? value)
    {
        value = null;
        if (IsDunder(name)) { value = Undefined.Unsafe(obj, name); return true; }
        switch (obj)
        {
            case string:
            case Markup:
                if (IsStrMethod(name)) { value = new BoundMethod(obj, name); return true; }
                return false;
            case PyDict:
                if (!IsDictAttr(name)) return false;
                value = IsDictUnsafe(name) ? Undefined.Unsafe(obj, name) : new BoundMethod(obj, name);
                return true;
            case List<object?>:
                if (IsListSafe(name)) { value = new BoundMethod(obj, name); return true; }
                if (IsListUnsafe(name)) { value = Undefined.Unsafe(obj, name); return true; }
                return false;
            case PyTuple t:
                if (name is "count" or "index") { value = new BoundMethod(obj, name); return true; }
                if (t.Fields != null)
                {
                    int fi = Array.IndexOf(t.Fields, name);
                    if (fi >= 0) { value = t.Items[fi]; return true; }
                }
                return false;
            case Namespace ns:
                return ns.Attrs.TryGet(name, out value);
            case LoopContext lc:
                return lc.TryGetAttr(name, out value);
            case MacroValue m:
                return m.TryGetAttr(name, out value);
            case SelfRef self:
                return self.TryGetAttr(name, out value);
            case Cycler c:
                switch (name)
                {
                    case "next" or "reset": value = new BoundMethod(obj, name); return true;
                    case "current": value = c.Current; return true;
                    case "items": value = new List<object?>(c.Items); return true;
                }
                return false;
            case bool:
            case long:
                switch (name)
                {
                    case "real" or "numerator": value = Py.Int(Py.AsLong(obj)); return true;
                    case "imag": value = Py.Int(0); return true;
                    case "denominator": value = Py.Int(1); return true;
                    case "bit_length" or "conjugate": value = new BoundMethod(obj, name); return true;
                }
                return false;
            case double d:
                switch (name)
                {
                    case "real": value = d; return true;
                    case "imag": value = 0.0; return true;
                    case "is_integer" or "conjugate": value = new BoundMethod(obj, name); return true;
                }
                return false;
            case PyRange r:
                switch (name)
                {
                    case "start": value = Py.Int(r.Start); return true;
                    case "stop": value = Py.Int(r.Stop); return true;
                    case "step": value = Py.Int(r.Step); return true;
                    case "count" or "index": value = new BoundMethod(obj, name); return true;
                }
                return false;
        }
        return false;
    }

    /// <summary>The sandbox's check after a successful getattr: private names are unsafe.</summary>
    static object? SafeAttr(object? obj, string name, object? value) =>
        value is Undefined ? value : name.StartsWith('_') ? Undefined.Unsafe(obj, name) : value;

    /// <summary><c>obj.name</c>.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        if (obj is Undefined u) throw u.Error();
        if (obj is PyDict d && !IsDictAttr(name) && !IsDunder(name))
            return d.TryGet(name, out var dv) ? dv : Undefined.ForMember(obj, name);
        if (TryPyGetAttr(obj, name, out var v)) return SafeAttr(obj, name, v);
        if (TryGetItemCore(obj, name, out var iv)) return iv;
        return Undefined.ForMember(obj, name);
    }

    /// <summary><c>obj[key]</c>.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        if (obj is Undefined u) throw u.Error();
        if (TryGetItemCore(obj, key, out var v)) return v;
        if (key is string s && TryPyGetAttr(obj, s, out var av)) return SafeAttr(obj, s, av);
        return Undefined.ForMember(obj, key);
    }

    /// <summary>Python obj[key]; false where Python raises TypeError or LookupError (jinja then falls back).</summary>
    static bool TryGetItemCore(object? obj, object? key, out object? value)
    {
        value = null;
        switch (obj)
        {
            case PyDict d:
                try { return d.TryGet(key, out value); }
                catch (JinjaException e) when (e.ErrorType == "TypeError") { return false; }
            case List<object?> l:
                if (Py.IsInt(key))
                {
                    long i = Py.AsLong(key);
                    if (i < 0) i += l.Count;
                    if (i < 0 || i >= l.Count) return false;
                    value = l[(int)i];
                    return true;
                }
                if (key is PySlice sl) return TrySlice(() => Slicing.SliceList(l, sl), out value);
                return false;
            case PyTuple t:
                if (Py.IsInt(key))
                {
                    long i = Py.AsLong(key);
                    if (i < 0) i += t.Count;
                    if (i < 0 || i >= t.Count) return false;
                    value = t.Items[i];
                    return true;
                }
                if (key is PySlice tsl) return TrySlice(() => new PyTuple(Slicing.SliceList(t.Items, tsl).ToArray()), out value);
                return false;
            case string s:
                if (Py.IsInt(key)) { value = PyStr.Index(s, Py.AsLong(key)); return value != null; }
                if (key is PySlice ssl) return TrySlice(() => PyStr.Slice(s, ssl), out value);
                return false;
            case Markup m:
                if (Py.IsInt(key))
                {
                    var ch = PyStr.Index(m.Value, Py.AsLong(key));
                    if (ch == null) return false;
                    value = new Markup(ch);
                    return true;
                }
                if (key is PySlice msl) return TrySlice(() => new Markup(PyStr.Slice(m.Value, msl)), out value);
                return false;
            case PyRange r:
                if (Py.IsInt(key))
                {
                    long i = Py.AsLong(key), n = r.Count;
                    if (i < 0) i += n;
                    if (i < 0 || i >= n) return false;
                    value = Py.Int(r.Get(i));
                    return true;
                }
                if (key is PySlice rsl)
                    return TrySlice(() =>
                    {
                        var (start, _, step, cnt) = Slicing.Indices(r.Count, rsl);
                        long first = r.Get(start), st = r.Step * step;
                        return new PyRange(first, first + cnt * st, st);
                    }, out value);
                return false;
        }
        return false;
    }

    static bool TrySlice(Func<object?> slice, out object? value)
    {
        try
        {
            value = slice();
            return true;
        }
        catch (JinjaException e) when (e.ErrorType == "TypeError")
        {
            value = null;
            return false;
        }
    }
}
