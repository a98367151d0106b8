using System.Globalization;
using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>Python semantics of the operations templates perform on values.</summary>
internal static partial class Py
{
    public static JinjaException TypeError(string m) => new("TypeError", m);
    public static JinjaException ValueError(string m) => new("ValueError", m);
    public static JinjaException ZeroDivision(string m) => new("ZeroDivisionError", m);
    public static JinjaException Overflow() => new("OverflowError", "integer overflow: values beyond 64 bits are not supported");
    public static JinjaException RuntimeError(string m) => new("TemplateRuntimeError", m);

    public static readonly object True = true;
    public static readonly object False = false;
    public static object Bool(bool b) => b ? True : False;

    static readonly object[] SmallInts = CreateSmallInts();
    static object[] CreateSmallInts()
    {
        var a = new object[1024 + 128];
        for (int i = 0; i < a.Length; i++) a[i] = (long)(i - 128);
        return a;
    }
    /// <summary>Boxes an int, reusing boxes for small values.</summary>
    public static object Int(long v) => v >= -128 && v < 1024 ? SmallInts[v + 128] : v;

    // ---------------------------------------------------------------- type names

    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        Markup => "Markup",
        List<object?> => "list",
        PyTuple => "tuple",
        PyDict => "dict",
        Namespace => "Namespace",
        Undefined => "Undefined",
        PyRange => "range",
        PyGenerator => "generator",
        PyView pv => pv.TypeName,
        PyCallable c => c.PyTypeName,
        LoopContext => "LoopContext",
        Cycler => "Cycler",
        PySlice => "slice",
        SelfRef => "TemplateReference",
        _ => v.GetType().Name,
    };

    /// <summary>jinja2.utils.object_type_repr: how Undefined messages name an object's type.</summary>
    public static string ObjectTypeRepr(object? obj) => obj switch
    {
        null => "None",
        Markup => "markupsafe.Markup object",
        Namespace => "jinja2.utils.Namespace object",
        LoopContext => "jinja2.runtime.LoopContext object",
        MacroValue => "jinja2.runtime.Macro object",
        Cycler => "jinja2.utils.Cycler object",
        SelfRef => "jinja2.runtime.TemplateReference object",
        Joiner => "jinja2.utils.Joiner object",
        _ => TypeName(obj) + " object",
    };

    public static bool IsInt(object? v) => v is long || v is bool;
    public static bool IsNumber(object? v) => v is long || v is double || v is bool;
    public static long AsLong(object? v) => v is bool b ? (b ? 1 : 0) : (long)v!;
    public static double AsDouble(object? v) => v switch { double d => d, long l => l, bool b => b ? 1 : 0, _ => throw TypeError("expected a number") };
    public static bool IsStr(object? v) => v is string || v is Markup;
    public static string AsStr(object? v) => v is string s ? s : ((Markup)v!).Value;

    // ---------------------------------------------------------------- truthiness

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        Markup m => m.Value.Length > 0,
        List<object?> l => l.Count > 0,
        PyTuple t => t.Count > 0,
        PyDict d => d.Count > 0,
        Undefined => false,
        PyRange r => r.Count > 0,
        PyView pv => pv.Dict.Count > 0,
        LoopContext lc => lc.Length > 0,
        _ => true,
    };

    // ---------------------------------------------------------------- str() and repr()

    public static string Str(object? v) => v switch
    {
        string s => s,
        Markup m => m.Value,
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => PyFormat.FloatRepr(d),
        Undefined => "",
        _ => Repr(v),
    };

    public static void AppendStr(StringBuilder sb, object? v)
    {
        switch (v)
        {
            case string s: sb.Append(s); break;
            case Markup m: sb.Append(m.Value); break;
            case Undefined: break;
            case long l: sb.Append(l); break;
            default: sb.Append(Str(v)); break;
        }
    }

    public static string Repr(object? v)
    {
        if (v is string s) return StrRepr(s);
        var sb = new StringBuilder();
        AppendRepr(sb, v, 0);
        return sb.ToString();
    }

    const int MaxReprDepth = 200;

    public static void AppendRepr(StringBuilder sb, object? v, int depth)
    {
        if (depth > MaxReprDepth) throw new JinjaException("RecursionError", "maximum recursion depth exceeded while getting the repr of an object");
        if ((depth & 15) == 15) RenderState.CheckStack();
        switch (v)
        {
            case string s: AppendStrRepr(sb, s); break;
            case Markup m: sb.Append("Markup("); AppendStrRepr(sb, m.Value); sb.Append(')'); break;
            case null: sb.Append("None"); break;
            case bool b: sb.Append(b ? "True" : "False"); break;
            case long l: sb.Append(l); break;
            case double d: sb.Append(PyFormat.FloatRepr(d)); break;
            case List<object?> list:
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i], depth + 1);
                }
                sb.Append(']');
                break;
            case PyTuple t:
                sb.Append('(');
                for (int i = 0; i < t.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, t.Items[i], depth + 1);
                }
                if (t.Count == 1) sb.Append(',');
                sb.Append(')');
                break;
            case PyDict d:
                AppendDictRepr(sb, d, depth);
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendDictRepr(sb, ns.Attrs, depth);
                sb.Append('>');
                break;
            case Undefined: sb.Append("Undefined"); break;
            case PyRange r:
                sb.Append("range(").Append(r.Start).Append(", ").Append(r.Stop);
                if (r.Step != 1) sb.Append(", ").Append(r.Step);
                sb.Append(')');
                break;
            case PyView pv:
                sb.Append(pv.TypeName).Append("([");
                for (int i = 0; i < pv.Dict.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, pv.Get(i), depth + 1);
                }
                sb.Append("])");
                break;
            case PyGenerator g: sb.Append("<generator object ").Append(g.Name).Append('>'); break;
            case PyCallable c: sb.Append(c.Repr); break;
            case LoopContext lc: sb.Append("<LoopContext ").Append(lc.Index0 + 1).Append('/').Append(lc.Length).Append('>'); break;
            case Cycler: sb.Append("<jinja2.utils.Cycler object>"); break;
            case SelfRef: sb.Append("<TemplateReference None>"); break;
            case PySlice sl:
                sb.Append("slice(");
                AppendRepr(sb, sl.Start, depth + 1); sb.Append(", ");
                AppendRepr(sb, sl.Stop, depth + 1); sb.Append(", ");
                AppendRepr(sb, sl.Step, depth + 1); sb.Append(')');
                break;
            default: sb.Append('<').Append(TypeName(v)).Append(" object>"); break;
        }
    }

    static void AppendDictRepr(StringBuilder sb, PyDict d, int depth)
    {
        sb.Append('{');
        for (int i = 0; i < d.Count; i++)
        {
            if (i > 0) sb.Append(", ");
            AppendRepr(sb, d.KeyAt(i), depth + 1);
            sb.Append(": ");
            AppendRepr(sb, d.ValueAt(i), depth + 1);
        }
        sb.Append('}');
    }

    public static string StrRepr(string s)
    {
        var sb = new StringBuilder(s.Length + 2);
        AppendStrRepr(sb, s);
        return sb.ToString();
    }

    /// <summary>Python's str.__repr__: single quotes unless the text has ' and no ", escapes, \x/\u/\U for non-printables.</summary>
    public static void AppendStrRepr(StringBuilder sb, string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(quote);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c == quote || c == '\\') { sb.Append('\\').Append(c); continue; }
            if (c == '\t') { sb.Append("\\t"); continue; }
            if (c == '\n') { sb.Append("\\n"); continue; }
            if (c == '\r') { sb.Append("\\r"); continue; }
            if (c < ' ' || c == 0x7f) { sb.Append("\\x").Append(((int)c).ToString("x2")); continue; }
            if (c < 0x7f) { sb.Append(c); continue; }
            int cp = c;
            if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                cp = char.ConvertToUtf32(c, s[i + 1]);
                if (PyStr.IsPrintable(cp)) { sb.Append(c).Append(s[i + 1]); i++; continue; }
                sb.Append("\\U").Append(cp.ToString("x8"));
                i++;
                continue;
            }
            if (PyStr.IsPrintable(cp)) { sb.Append(c); continue; }
            if (cp <= 0xff) sb.Append("\\x").Append(cp.ToString("x2"));
            else sb.Append("\\u").Append(cp.ToString("x4"));
        }
        sb.Append(quote);
    }

    // ---------------------------------------------------------------- equality and ordering

    public static bool Eq(object? a, object? b)
    {
        switch (a)
        {
            case null: return b is null;
            case string sa: return b is string sb ? string.Equals(sa, sb, StringComparison.Ordinal) : b is Markup mb && sa == mb.Value;
            case Markup ma: return b is string sb2 ? ma.Value == sb2 : b is Markup mb2 && ma.Value == mb2.Value;
            case long la:
                if (b is long lb) return la == lb;
                if (b is double db) return DoubleEqLong(db, la);
                if (b is bool bb) return la == (bb ? 1 : 0);
                return false;
            case bool ba:
                if (b is bool bb2) return ba == bb2;
                if (b is long lb2) return lb2 == (ba ? 1 : 0);
                if (b is double db2) return db2 == (ba ? 1 : 0);
                return false;
            case double da:
                if (b is double db3) return da == db3;
                if (b is long lb3) return DoubleEqLong(da, lb3);
                if (b is bool bb3) return da == (bb3 ? 1 : 0);
                return false;
            case Undefined: return b is Undefined;
            case List<object?> la2:
                if (b is not List<object?> lb4 || la2.Count != lb4.Count) return false;
                for (int i = 0; i < la2.Count; i++) if (!ReferenceEquals(la2[i], lb4[i]) && !Eq(la2[i], lb4[i])) return false;
                return true;
            case PyTuple ta:
                if (b is not PyTuple tb || ta.Count != tb.Count) return false;
                for (int i = 0; i < ta.Count; i++) if (!ReferenceEquals(ta.Items[i], tb.Items[i]) && !Eq(ta.Items[i], tb.Items[i])) return false;
                return true;
            case PyDict da2:
                if (b is not PyDict db4 || da2.Count != db4.Count) return false;
                for (int i = 0; i < da2.Count; i++)
                {
                    if (!db4.TryGet(da2.KeyAt(i), out var bv)) return false;
                    var av = da2.ValueAt(i);
                    if (!ReferenceEquals(av, bv) && !Eq(av, bv)) return false;
                }
                return true;
            case PyRange ra:
                if (b is not PyRange rb) return false;
                long ca = ra.Count, cb = rb.Count;
                if (ca != cb) return false;
                if (ca == 0) return true;
                if (ra.Start != rb.Start) return false;
                return ca == 1 || ra.Step == rb.Step;
            default:
                return ReferenceEquals(a, b);
        }
    }

    static bool DoubleEqLong(double d, long l)
    {
        if (double.IsNaN(d) || double.IsInfinity(d)) return false;
        if (d != Math.Floor(d)) return false;
        if (d < -9.223372036854775808e18 || d >= 9.223372036854775808e18) return false;
        return (long)d == l;
    }

    public enum CmpOp { Lt, Le, Gt, Ge }
    static string OpSymbol(CmpOp op) => op switch { CmpOp.Lt => "<", CmpOp.Le => "<=", CmpOp.Gt => ">", _ => ">=" };

    public static bool Compare(object? a, object? b, CmpOp op)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double)
            {
                double x = AsDouble(a), y = AsDouble(b);
                if (a is long la && b is double && Math.Abs(la) > (1L << 53)) return CompareLongDouble(la, y, op, false);
                if (b is long lb && a is double && Math.Abs(lb) > (1L << 53)) return CompareLongDouble(lb, x, op, true);
                return op switch { CmpOp.Lt => x < y, CmpOp.Le => x <= y, CmpOp.Gt => x > y, _ => x >= y };
            }
            long p = AsLong(a), q = AsLong(b);
            return op switch { CmpOp.Lt => p < q, CmpOp.Le => p <= q, CmpOp.Gt => p > q, _ => p >= q };
        }
        if (IsStr(a) && IsStr(b)) return Apply(PyStr.CompareCodePoints(AsStr(a), AsStr(b)), op);
        if (a is List<object?> l1 && b is List<object?> l2) return CompareSeq(l1, l2, op);
        if (a is PyTuple t1 && b is PyTuple t2) return CompareSeq(t1.Items, t2.Items, op);
        throw TypeError($"'{OpSymbol(op)}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    static bool CompareLongDouble(long l, double d, CmpOp op, bool swapped)
    {
        if (double.IsNaN(d)) return false;
        int c = ((decimal)l).CompareTo(double.IsInfinity(d) ? (d > 0 ? decimal.MaxValue : decimal.MinValue) : (decimal)d);
        if (swapped) c = -c;
        return Apply(c, op);
    }

    static bool Apply(int c, CmpOp op) => op switch { CmpOp.Lt => c < 0, CmpOp.Le => c <= 0, CmpOp.Gt => c > 0, _ => c >= 0 };

    static bool CompareSeq(IReadOnlyList<object?> a, IReadOnlyList<object?> b, CmpOp op)
    {
        int n = Math.Min(a.Count, b.Count);
        for (int i = 0; i < n; i++)
            if (!Eq(a[i], b[i])) return Compare(a[i], b[i], op);
        return Apply(a.Count.CompareTo(b.Count), op);
    }

    // ---------------------------------------------------------------- arithmetic

    static JinjaException Unsupported(string op, object? a, object? b) =>
        TypeError($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    static void CheckUndefined(object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Error();
        if (b is Undefined ub) throw ub.Error();
    }

    public static object? Add(object? a, object? b)
    {
        if (a is string sa && b is string sb) return string.Concat(sa, sb);
        CheckUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return AsDouble(a) + AsDouble(b);
            try { return Int(checked(AsLong(a) + AsLong(b))); } catch (OverflowException) { throw Overflow(); }
        }
        switch (a)
        {
            case string s:
                if (b is Markup mb) return new Markup(Markup.Escape(s) + mb.Value);
                throw TypeError($"can only concatenate str (not \"{TypeName(b)}\") to str");
            case Markup m:
                if (IsStr(b)) return new Markup(m.Value + Markup.EscapeValue(b).Value);
                throw Unsupported("+", a, b);
            case List<object?> la:
                if (b is List<object?> lb)
                {
                    var r = new List<object?>(la.Count + lb.Count);
                    r.AddRange(la); r.AddRange(lb);
                    return r;
                }
                throw TypeError($"can only concatenate list (not \"{TypeName(b)}\") to list");
            case PyTuple ta:
                if (b is PyTuple tb)
                {
                    var r = new object?[ta.Count + tb.Count];
                    ta.Items.CopyTo(r, 0); tb.Items.CopyTo(r, ta.Count);
                    return new PyTuple(r);
                }
                throw TypeError($"can only concatenate tuple (not \"{TypeName(b)}\") to tuple");
        }
        throw Unsupported("+", a, b);
    }

    public static object? Sub(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return AsDouble(a) - AsDouble(b);
            try { return Int(checked(AsLong(a) - AsLong(b))); } catch (OverflowException) { throw Overflow(); }
        }
        throw Unsupported("-", a, b);
    }

    public static object? Mul(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return AsDouble(a) * AsDouble(b);
            try { return Int(checked(AsLong(a) * AsLong(b))); } catch (OverflowException) { throw Overflow(); }
        }
        if (IsSequenceForRepeat(a)) return Repeat(a, b);
        if (IsSequenceForRepeat(b)) return Repeat(b, a);
        throw Unsupported("*", a, b);
    }

    static bool IsSequenceForRepeat(object? v) => v is string || v is Markup || v is List<object?> || v is PyTuple;

    static object Repeat(object? seq, object? n)
    {
        if (!IsInt(n)) throw TypeError($"can't multiply sequence by non-int of type '{TypeName(n)}'");
        long count = Math.Max(0, AsLong(n));
        switch (seq)
        {
            case string s:
                if ((long)s.Length * count > 100_000_000) throw new JinjaException("MemoryError", "repeated string too large");
                return count == 0 ? "" : new StringBuilder(s.Length * (int)count).Insert(0, s, (int)count).ToString();
            case Markup m:
                return new Markup((string)Repeat(m.Value, n));
            case List<object?> l:
            {
                if (l.Count * count > 10_000_000) throw new JinjaException("MemoryError", "repeated list too large");
                var r = new List<object?>((int)(l.Count * count));
                for (long i = 0; i < count; i++) r.AddRange(l);
                return r;
            }
            default:
            {
                var t = (PyTuple)seq!;
                if (t.Count * count > 10_000_000) throw new JinjaException("MemoryError", "repeated tuple too large");
                var r = new object?[t.Count * count];
                for (long i = 0; i < count; i++) t.Items.CopyTo(r, i * t.Count);
                return new PyTuple(r);
            }
        }
    }

    public static object? TrueDiv(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("/", a, b);
        double y = AsDouble(b);
        if (y == 0) throw ZeroDivision(a is double || b is double ? "float division by zero" : "division by zero");
        if (IsInt(a) && IsInt(b)) return IntTrueDiv(AsLong(a), AsLong(b));
        return AsDouble(a) / y;
    }

    static double IntTrueDiv(long a, long b)
    {
        // Python divides exact integers with correct rounding; doubles are exact below 2**53.
        if (Math.Abs(a) <= (1L << 53) && Math.Abs(b) <= (1L << 53)) return (double)a / b;
        return (double)((decimal)a / b);
    }

    public static object? FloorDiv(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("//", a, b);
        if (IsInt(a) && IsInt(b))
        {
            long x = AsLong(a), y = AsLong(b);
            if (y == 0) throw ZeroDivision("integer division or modulo by zero");
            if (x == long.MinValue && y == -1) throw Overflow();
            long q = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
            return Int(q);
        }
        double vx = AsDouble(a), wx = AsDouble(b);
        if (wx == 0) throw ZeroDivision("float floor division by zero");
        return FloatDivMod(vx, wx).div;
    }

    public static (double div, double mod) FloatDivMod(double vx, double wx)
    {
        double mod = vx % wx; // C fmod
        double div = (vx - mod) / wx;
        if (mod != 0)
        {
            if ((wx < 0) != (mod < 0)) { mod += wx; div -= 1.0; }
        }
        else mod = Math.CopySign(0.0, wx);
        double floordiv;
        if (div != 0)
        {
            floordiv = Math.Floor(div);
            if (div - floordiv > 0.5) floordiv += 1.0;
        }
        else floordiv = Math.CopySign(0.0, vx / wx);
        return (floordiv, mod);
    }

    public static object? Mod(object? a, object? b)
    {
        if (a is string s) { if (b is Undefined ub0) throw ub0.Error(); return PyFormat.Percent(s, b, false); }
        if (a is Markup m) { if (b is Undefined ub1) throw ub1.Error(); return new Markup(PyFormat.Percent(m.Value, b, true)); }
        CheckUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("%", a, b);
        if (IsInt(a) && IsInt(b))
        {
            long x = AsLong(a), y = AsLong(b);
            if (y == 0) throw ZeroDivision("integer modulo by zero");
            if (y == -1) return Int(0);
            long r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) r += y;
            return Int(r);
        }
        double vx = AsDouble(a), wx = AsDouble(b);
        if (wx == 0) throw ZeroDivision("float modulo");
        return FloatDivMod(vx, wx).mod;
    }

    public static object? Pow(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported("** or pow()", a, b);
        if (IsInt(a) && IsInt(b))
        {
            long x = AsLong(a), y = AsLong(b);
            if (y < 0)
            {
                if (x == 0) throw ZeroDivision("0.0 cannot be raised to a negative power");
                return Math.Pow(x, y);
            }
            long result = 1, bas = x;
            try
            {
                while (y > 0)
                {
                    if ((y & 1) != 0) result = checked(result * bas);
                    y >>= 1;
                    if (y > 0) bas = checked(bas * bas);
                }
            }
            catch (OverflowException) { throw Overflow(); }
            return Int(result);
        }
        double fx = AsDouble(a), fy = AsDouble(b);
        if (fx == 0 && fy < 0) throw ZeroDivision("0.0 cannot be raised to a negative power");
        if (fx < 0 && fy != Math.Floor(fy)) throw ValueError("negative number cannot be raised to a fractional power (complex results are not supported)");
        double r = Math.Pow(fx, fy);
        if (double.IsInfinity(r) && !double.IsInfinity(fx) && !double.IsInfinity(fy)) throw new JinjaException("OverflowError", "(34, 'Numerical result out of range')");
        return r;
    }

    public static object? Neg(object? a)
    {
        if (a is Undefined u) throw u.Error();
        if (a is double d) return -d;
        if (IsInt(a))
        {
            long l = AsLong(a);
            if (l == long.MinValue) throw Overflow();
            return Int(-l);
        }
        throw TypeError($"bad operand type for unary -: '{TypeName(a)}'");
    }

    public static object? Pos(object? a)
    {
        if (a is Undefined u) throw u.Error();
        if (a is double) return a;
        if (IsInt(a)) return Int(AsLong(a));
        throw TypeError($"bad operand type for unary +: '{TypeName(a)}'");
    }

    // ---------------------------------------------------------------- containment, length, iteration

    /// <summary>Python's <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (!IsStr(item)) throw TypeError($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return s.Contains(AsStr(item), StringComparison.Ordinal);
            case Markup m:
                if (!IsStr(item)) throw TypeError($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return m.Value.Contains(AsStr(item), StringComparison.Ordinal);
            case List<object?> l:
                foreach (var x in l) if (ReferenceEquals(x, item) || Eq(x, item)) return true;
                return false;
            case PyTuple t:
                foreach (var x in t.Items) if (ReferenceEquals(x, item) || Eq(x, item)) return true;
                return false;
            case PyDict d:
                return d.ContainsKey(item);
            case Undefined:
                return false;
            case PyRange r:
                if (!IsNumber(item)) return false;
                if (item is double dd && dd != Math.Floor(dd)) return false;
                long v = item is double d2 ? (long)d2 : AsLong(item);
                long n = r.Count;
                if (n == 0) return false;
                if (r.Step > 0 ? (v < r.Start || v >= r.Stop) : (v > r.Start || v <= r.Stop)) return false;
                return (v - r.Start) % r.Step == 0;
            case PyView pv:
                if (pv.ViewKind == PyView.Kind.Keys) return pv.Dict.ContainsKey(item);
                for (int i = 0; i < pv.Dict.Count; i++) if (Eq(pv.Get(i), item)) return true;
                return false;
            case PyGenerator g:
                while (g.Next(out var x)) if (Eq(x, item)) return true;
                return false;
        }
        throw TypeError($"argument of type '{TypeName(container)}' is not iterable");
    }

    public static bool TryLen(object? v, out long n)
    {
        switch (v)
        {
            case string s: n = PyStr.Length(s); return true;
            case Markup m: n = PyStr.Length(m.Value); return true;
            case List<object?> l: n = l.Count; return true;
            case PyTuple t: n = t.Count; return true;
            case PyDict d: n = d.Count; return true;
            case Undefined: n = 0; return true;
            case PyRange r: n = r.Count; return true;
            case PyView pv: n = pv.Dict.Count; return true;
            case LoopContext lc: n = lc.Length; return true;
            case Namespace: n = 0; return false;
        }
        n = 0;
        return false;
    }

    public static long Len(object? v)
    {
        if (TryLen(v, out long n)) return n;
        throw TypeError($"object of type '{TypeName(v)}' has no len()");
    }

    public static bool IsIterable(object? v) => v is string || v is Markup || v is List<object?> || v is PyTuple || v is PyDict
        || v is Undefined || v is PyRange || v is PyView || v is PyGenerator || v is LoopContext;

    /// <summary>iter(v): the values a for loop sees.</summary>
    public static PyIter Iter(object? v)
    {
        switch (v)
        {
            case List<object?> l: return new ListIter(l);
            case PyTuple t: return new ArrayIter(t.Items);
            case string s: return new StrIter(s);
            case Markup m: return new StrIter(m.Value);
            case PyDict d: return new ViewIter(new PyView(d, PyView.Kind.Keys));
            case Undefined: return EmptyIter.Instance;
            case PyRange r: return new RangeIter(r);
            case PyView pv: return new ViewIter(pv);
            case PyGenerator g: return new GenIter(g);
        }
        throw TypeError($"'{TypeName(v)}' object is not iterable");
    }

    /// <summary>list(v).</summary>
    public static List<object?> ToList(object? v)
    {
        if (v is List<object?> l) return new List<object?>(l);
        var it = Iter(v);
        var r = it.KnownLength >= 0 ? new List<object?>(it.KnownLength) : new List<object?>();
        while (it.Next(out var x)) r.Add(x);
        return r;
    }

    /// <summary>Items of a sequence without copying when it already is a list or tuple.</summary>
    public static IReadOnlyList<object?> AsSequence(object? v) => v switch
    {
        List<object?> l => l,
        PyTuple t => t.Items,
        _ => ToList(v),
    };
}

/// <summary>An iterator over template values.</summary>
internal abstract class PyIter
{
    /// <summary>Remaining count when known up front (lists, tuples...), else -1.</summary>
    public virtual int KnownLength => -1;
    public abstract bool Next(out object? value);
}

internal sealed class EmptyIter : PyIter
{
    public static readonly EmptyIter Instance = new();
    public override int KnownLength => 0;
    public override bool Next(out object? value) { value = null; return false; }
}

internal sealed class ListIter : PyIter
{
    readonly List<object?> _l; int _i;
    public ListIter(List<object?> l) { _l = l; }
    public override int KnownLength => _l.Count;
    public override bool Next(out object? value)
    {
        if (_i < _l.Count) { value = _l[_i++]; return true; }
        value = null; return false;
    }
}

internal sealed class ArrayIter : PyIter
{
    readonly object?[] _a; int _i;
    public ArrayIter(object?[] a) { _a = a; }
    public override int KnownLength => _a.Length;
    public override bool Next(out object? value)
    {
        if (_i < _a.Length) { value = _a[_i++]; return true; }
        value = null; return false;
    }
}

internal sealed class StrIter : PyIter
{
    readonly string _s; int _i;
    public StrIter(string s) { _s = s; }
    public override int KnownLength => PyStr.Length(_s);
    public override bool Next(out object? value)
    {
        if (_i >= _s.Length) { value = null; return false; }
        if (char.IsHighSurrogate(_s[_i]) && _i + 1 < _s.Length && char.IsLowSurrogate(_s[_i + 1]))
        {
            value = _s.Substring(_i, 2); _i += 2;
        }
        else value = PyStr.CharString(_s[_i++]);
        return true;
    }
}

internal sealed class RangeIter : PyIter
{
    readonly PyRange _r; long _i; readonly long _n;
    public RangeIter(PyRange r) { _r = r; _n = r.Count; }
    public override int KnownLength => (int)_n;
    public override bool Next(out object? value)
    {
        if (_i < _n) { value = Py.Int(_r.Get(_i++)); return true; }
        value = null; return false;
    }
}

internal sealed class ViewIter : PyIter
{
    readonly PyView _v; int _i;
    public ViewIter(PyView v) { _v = v; }
    public override int KnownLength => _v.Dict.Count;
    public override bool Next(out object? value)
    {
        if (_i < _v.Dict.Count) { value = _v.Get(_i++); return true; }
        value = null; return false;
    }
}

internal sealed class GenIter : PyIter
{
    readonly PyGenerator _g;
    public GenIter(PyGenerator g) { _g = g; }
    public override bool Next(out object? value) => _g.Next(out value);
}
