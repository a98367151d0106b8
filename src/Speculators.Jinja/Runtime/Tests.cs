namespace Speculators.Jinja.Runtime;

/// <summary>jinja2's builtin tests (<c>x is defined</c>, <c>x is string</c>...).</summary>
internal static class Tests
{
    static TestFn One(string name, Func<object?, bool> f) => (RenderState st, object? v, in CallArgs a) =>
    {
        a.Check(name, 0);
        return f(v);
    };

    static TestFn Two(string name, Func<object?, object?, bool> f) => (RenderState st, object? v, in CallArgs a) =>
    {
        a.Check(name, 1);
        return f(v, a.Req(0, "other", name));
    };

    public static readonly Dictionary<string, TestFn> Table = new(StringComparer.Ordinal)
    {
        ["odd"] = One("odd", v => Py.Eq(Py.Mod(v, Py.Int(2)), Py.Int(1))),
        ["even"] = One("even", v => Py.Eq(Py.Mod(v, Py.Int(2)), Py.Int(0))),
        ["divisibleby"] = Two("divisibleby", (v, n) => Py.Eq(Py.Mod(v, n), Py.Int(0))),
        ["defined"] = One("defined", v => v is not Undefined),
        ["undefined"] = One("undefined", v => v is Undefined),
        ["filter"] = One("filter", v => v is string s && Filters.Table.ContainsKey(s)),
        ["test"] = One("test", v => v is string s && Table!.ContainsKey(s)),
        ["none"] = One("none", v => v is null),
        ["boolean"] = One("boolean", v => v is bool),
        ["false"] = One("false", v => v is bool b && !b),
        ["true"] = One("true", v => v is bool b && b),
        ["integer"] = One("integer", v => v is long),
        ["float"] = One("float", v => v is double),
        ["lower"] = One("lower", v => IsLower(Py.Str(v))),
        ["upper"] = One("upper", v => IsUpper(Py.Str(v))),
        ["string"] = One("string", v => v is string || v is Markup),
        ["mapping"] = One("mapping", v => v is PyDict),
        ["number"] = One("number", Py.IsNumber),
        ["sequence"] = One("sequence", v => v is string or Markup or List<object?> or PyTuple or PyDict or PyRange or Undefined),
        ["iterable"] = One("iterable", Py.IsIterable),
        ["callable"] = One("callable", Calls.IsCallable),
        ["sameas"] = Two("sameas", (v, o) => v is null ? o is null : v is bool b ? o is bool ob && b == ob : v is long l && o is long ol && l >= -5 && l <= 256 ? l == ol : ReferenceEquals(v, o)),
        ["escaped"] = One("escaped", v => v is Markup),
        ["in"] = Two("in", (v, seq) => Py.Contains(seq, v)),
        ["=="] = Two("==", Py.Eq),
        ["eq"] = Two("eq", Py.Eq),
        ["equalto"] = Two("equalto", Py.Eq),
        ["!="] = Two("!=", (a, b) => !Py.Eq(a, b)),
        ["ne"] = Two("ne", (a, b) => !Py.Eq(a, b)),
        [">"] = Two(">", (a, b) => Py.Compare(a, b, Py.CmpOp.Gt)),
        ["gt"] = Two("gt", (a, b) => Py.Compare(a, b, Py.CmpOp.Gt)),
        ["greaterthan"] = Two("greaterthan", (a, b) => Py.Compare(a, b, Py.CmpOp.Gt)),
        [">="] = Two(">=", (a, b) => Py.Compare(a, b, Py.CmpOp.Ge)),
        ["ge"] = Two("ge", (a, b) => Py.Compare(a, b, Py.CmpOp.Ge)),
        ["<"] = Two("<", (a, b) => Py.Compare(a, b, Py.CmpOp.Lt)),
        ["lt"] = Two("lt", (a, b) => Py.Compare(a, b, Py.CmpOp.Lt)),
        ["lessthan"] = Two("lessthan", (a, b) => Py.Compare(a, b, Py.CmpOp.Lt)),
        ["<="] = Two("<=", (a, b) => Py.Compare(a, b, Py.CmpOp.Le)),
        ["le"] = Two("le", (a, b) => Py.Compare(a, b, Py.CmpOp.Le)),
    };

    static bool IsLower(string s)
    {
        bool cased = false;
        foreach (int cp in PyStr.CodePoints(s))
        {
            if (PyStr.IsUpper(cp) || PyStr.IsTitle(cp)) return false;
            if (PyStr.IsLower(cp)) cased = true;
        }
        return cased;
    }

    static bool IsUpper(string s)
    {
        bool cased = false;
        foreach (int cp in PyStr.CodePoints(s))
        {
            if (PyStr.IsLower(cp) || PyStr.IsTitle(cp)) return false;
            if (PyStr.IsUpper(cp)) cased = true;
        }
        return cased;
    }

    /// <summary>environment.call_test: used by select()/reject().</summary>
    public static bool Call(RenderState st, string name, object? value, in CallArgs args)
    {
        if (!Table.TryGetValue(name, out var fn)) throw Py.RuntimeError($"No test named {Py.Repr(name)} found.");
        return fn(st, value, args);
    }
}
