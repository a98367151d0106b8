using System.Text;
using Speculators.Jinja.Runtime;

namespace Speculators.Jinja;

internal enum Flow { Normal, Break, Continue }

internal abstract class Node
{
    public int Line, Col;
    public JinjaException Locate(JinjaException e) => e.At(Line, Col);
}

internal abstract class Expr : Node
{
    public abstract object? Eval(RenderState st, Frame f);
    public virtual IEnumerable<Node> Children => [];
}

internal abstract class Stmt : Node
{
    public abstract Flow Exec(RenderState st, Frame f, StringBuilder o);
    public virtual IEnumerable<Node> Children => [];

    public static Flow ExecBody(Stmt[] body, RenderState st, Frame f, StringBuilder o)
    {
        for (int i = 0; i < body.Length; i++)
        {
            Flow fl;
            try
            {
                fl = body[i].Exec(st, f, o);
            }
            catch (JinjaException e) when (!e.HasLocation)
            {
                throw body[i].Locate(e);
            }
            if (fl != Flow.Normal) return fl;
        }
        return Flow.Normal;
    }
}

// =============================================================== expressions

internal sealed class ConstExpr : Expr
{
    public readonly object? Value;
    public ConstExpr(object? value) { Value = value; }
    public override object? Eval(RenderState st, Frame f) => Value;
}

/// <summary>A variable read. The binder resolves it to the frames that may hold it, innermost first.</summary>
internal sealed class NameExpr : Expr
{
    public readonly string Name;
    public int[] Hops = [];
    public int[] Slots = [];
    public NameExpr(string name) { Name = name; }

    public override object? Eval(RenderState st, Frame f)
    {
        var hops = Hops;
        var slots = Slots;
        Frame fr = f;
        int h = 0;
        for (int i = 0; i < hops.Length; i++)
        {
            while (h < hops[i]) { fr = fr.Parent!; h++; }
            var v = fr.S[slots[i]];
            if (!ReferenceEquals(v, Missing.Value)) return v;
        }
        return Undefined.ForName(Name);
    }
}

internal sealed class ListExpr : Expr
{
    public readonly Expr[] Items;
    public ListExpr(Expr[] items) { Items = items; }
    public override object? Eval(RenderState st, Frame f)
    {
        var r = new List<object?>(Items.Length);
        foreach (var e in Items) r.Add(e.Eval(st, f));
        return r;
    }
    public override IEnumerable<Node> Children => Items;
}

internal sealed class TupleExpr : Expr
{
    public readonly Expr[] Items;
    public TupleExpr(Expr[] items) { Items = items; }
    public override object? Eval(RenderState st, Frame f)
    {
        if (Items.Length == 0) return PyTuple.Empty;
        var r = new object?[Items.Length];
        for (int i = 0; i < r.Length; i++) r[i] = Items[i].Eval(st, f);
        return new PyTuple(r);
    }
    public override IEnumerable<Node> Children => Items;
}

internal sealed class DictExpr : Expr
{
    public readonly (Expr Key, Expr Value)[] Items;
    public DictExpr((Expr, Expr)[] items) { Items = items; }
    public override object? Eval(RenderState st, Frame f)
    {
        var d = new PyDict(Items.Length);
        foreach (var (k, v) in Items)
        {
            var key = k.Eval(st, f);
            var val = v.Eval(st, f);
            try { d.Set(key, val); }
            catch (JinjaException e) when (!e.HasLocation) { throw k.Locate(e); }
        }
        return d;
    }
    public override IEnumerable<Node> Children => Items.SelectMany(p => new Node[] { p.Key, p.Value });
}

internal sealed class GetAttrExpr : Expr
{
    public readonly Expr Obj;
    public readonly string Name;
    readonly bool _isDictAttr;
    public GetAttrExpr(Expr obj, string name)
    {
        Obj = obj; Name = name;
        _isDictAttr = Access.IsDictAttr(name) || name.StartsWith("__", StringComparison.Ordinal);
    }

    public override object? Eval(RenderState st, Frame f)
    {
        var obj = Obj.Eval(st, f);
        if (obj is PyDict d && !_isDictAttr) return d.TryGet(Name, out var v) ? v : Undefined.ForMember(obj, Name);
        try { return Access.GetAttr(obj, Name); }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }
    public override IEnumerable<Node> Children => [Obj];
}

internal sealed class GetItemExpr : Expr
{
    public readonly Expr Obj, Key;
    public GetItemExpr(Expr obj, Expr key) { Obj = obj; Key = key; }
    public override object? Eval(RenderState st, Frame f)
    {
        var obj = Obj.Eval(st, f);
        var key = Key.Eval(st, f);
        try { return Access.GetItem(obj, key); }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }
    public override IEnumerable<Node> Children => [Obj, Key];
}

internal sealed class SliceExpr : Expr
{
    public readonly Expr? Start, Stop, Step;
    public SliceExpr(Expr? start, Expr? stop, Expr? step) { Start = start; Stop = stop; Step = step; }
    public override object? Eval(RenderState st, Frame f) =>
        new PySlice(Start?.Eval(st, f), Stop?.Eval(st, f), Step?.Eval(st, f));
    public override IEnumerable<Node> Children => ArgList.NonNull(Start, Stop, Step);
}

/// <summary>Call arguments as written: positional, keyword, *args and **kwargs.</summary>
internal sealed class ArgList
{
    public readonly Expr[] Pos;
    public readonly (string Name, Expr Value)[] Kw;
    public readonly Expr? DynArgs, DynKwargs;
    public static readonly ArgList Empty = new([], [], null, null);

    public ArgList(Expr[] pos, (string, Expr)[] kw, Expr? dynArgs, Expr? dynKwargs)
    {
        Pos = pos; Kw = kw; DynArgs = dynArgs; DynKwargs = dynKwargs;
    }

    public bool IsEmpty => Pos.Length == 0 && Kw.Length == 0 && DynArgs == null && DynKwargs == null;

    public CallArgs Eval(RenderState st, Frame f, string? extraKwName = null, object? extraKwValue = null)
    {
        if (IsEmpty && extraKwName == null) return CallArgs.None;
        object?[] pos;
        if (DynArgs == null)
        {
            pos = Pos.Length == 0 ? [] : new object?[Pos.Length];
            for (int i = 0; i < Pos.Length; i++) pos[i] = Pos[i].Eval(st, f);
        }
        else
        {
            var list = new List<object?>(Pos.Length + 4);
            foreach (var e in Pos) list.Add(e.Eval(st, f));
            var it = Py.Iter(DynArgs.Eval(st, f));
            while (it.Next(out var x)) list.Add(x);
            pos = list.ToArray();
        }
        List<KeyValuePair<string, object?>>? kw = null;
        if (Kw.Length > 0 || DynKwargs != null || extraKwName != null)
        {
            kw = new List<KeyValuePair<string, object?>>(Kw.Length + 1);
            foreach (var (n, e) in Kw) kw.Add(new(n, e.Eval(st, f)));
            if (DynKwargs != null)
            {
                var v = DynKwargs.Eval(st, f);
                if (v is not PyDict d) throw Py.TypeError($"argument after ** must be a mapping, not {Py.TypeName(v)}");
                for (int i = 0; i < d.Count; i++)
                {
                    if (d.KeyAt(i) is not string ks) throw Py.TypeError("keywords must be strings");
                    kw.Add(new(ks, d.ValueAt(i)));
                }
            }
            if (extraKwName != null) kw.Add(new(extraKwName, extraKwValue));
            for (int i = 1; i < kw.Count; i++)
                for (int j = 0; j < i; j++)
                    if (kw[i].Key == kw[j].Key) throw Py.TypeError($"got multiple values for keyword argument '{kw[i].Key}'");
        }
        return new CallArgs(pos, kw);
    }

    public IEnumerable<Node> Nodes => Pos.Cast<Node>().Concat(Kw.Select(k => (Node)k.Value))
        .Concat(NonNull(DynArgs, DynKwargs));

    internal static IEnumerable<Node> NonNull(params Node?[] nodes)
    {
        foreach (var n in nodes) if (n != null) yield return n;
    }
}

internal sealed class CallExpr : Expr
{
    public readonly Expr Target;
    public readonly ArgList Args;
    public CallExpr(Expr target, ArgList args) { Target = target; Args = args; }

    public override object? Eval(RenderState st, Frame f) => EvalWith(st, f, null, null);

    public object? EvalWith(RenderState st, Frame f, string? extraKw, object? extraValue)
    {
        try
        {
            if (Target is GetAttrExpr ga)
            {
                // Method calls on builtin values skip the bound-method object.
                var obj = ga.Obj.Eval(st, f);
                if (IsDirectMethod(obj, ga.Name))
                    return Methods.Call(st, obj, ga.Name, Args.Eval(st, f, extraKw, extraValue));
                var callee = Access.GetAttr(obj, ga.Name);
                return Calls.Invoke(st, callee, Args.Eval(st, f, extraKw, extraValue));
            }
            var c = Target.Eval(st, f);
            return Calls.Invoke(st, c, Args.Eval(st, f, extraKw, extraValue));
        }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }

    static bool IsDirectMethod(object? obj, string name) => obj switch
    {
        string => Access.IsStrMethod(name),
        PyDict => name is "get" or "items" or "keys" or "values" or "copy",
        _ => false,
    };

    public override IEnumerable<Node> Children => new Node[] { Target }.Concat(Args.Nodes);
}

internal delegate object? FilterFn(RenderState st, object? value, in CallArgs args);
internal delegate bool TestFn(RenderState st, object? value, in CallArgs args);

internal sealed class FilterExpr : Expr
{
    public readonly Expr? Base; // null: the body of a filter block / set block
    public readonly string Name;
    public readonly ArgList Args;
    public FilterFn? Fn;
    public FilterExpr(Expr? @base, string name, ArgList args) { Base = @base; Name = name; Args = args; }

    public override object? Eval(RenderState st, Frame f) => Apply(st, f, Base!.Eval(st, f));

    /// <summary>Applies this filter chain to <paramref name="input"/> (used by filter blocks, whose innermost base is the body).</summary>
    public object? ApplyTo(RenderState st, Frame f, object? input) =>
        Apply(st, f, Base == null ? input : ((FilterExpr)Base).ApplyTo(st, f, input));

    object? Apply(RenderState st, Frame f, object? value)
    {
        try
        {
            if (Fn == null) throw Py.RuntimeError($"No filter named {Py.Repr(Name)} found.");
            return Fn(st, value, Args.Eval(st, f));
        }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }

    public override IEnumerable<Node> Children => (Base == null ? [] : new Node[] { Base }).Concat(Args.Nodes);
}

internal sealed class TestExpr : Expr
{
    public readonly Expr Base;
    public readonly string Name;
    public readonly ArgList Args;
    public TestFn? Fn;
    public TestExpr(Expr @base, string name, ArgList args) { Base = @base; Name = name; Args = args; }

    public override object? Eval(RenderState st, Frame f)
    {
        var v = Base.Eval(st, f);
        try
        {
            if (Fn == null) throw Py.RuntimeError($"No test named {Py.Repr(Name)} found.");
            return Py.Bool(Fn(st, v, Args.Eval(st, f)));
        }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }

    public override IEnumerable<Node> Children => new Node[] { Base }.Concat(Args.Nodes);
}

internal sealed class NotExpr : Expr
{
    public readonly Expr E;
    public NotExpr(Expr e) { E = e; }
    public override object? Eval(RenderState st, Frame f) => Py.Bool(!Py.Truthy(E.Eval(st, f)));
    public override IEnumerable<Node> Children => [E];
}

internal sealed class UnaryExpr : Expr
{
    public readonly Expr E;
    public readonly bool Negate;
    public UnaryExpr(Expr e, bool negate) { E = e; Negate = negate; }
    public override object? Eval(RenderState st, Frame f)
    {
        var v = E.Eval(st, f);
        try { return Negate ? Py.Neg(v) : Py.Pos(v); }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }
    public override IEnumerable<Node> Children => [E];
}

internal enum BinOp { Add, Sub, Mul, Div, FloorDiv, Mod, Pow }

internal sealed class BinExpr : Expr
{
    public readonly BinOp Op;
    public readonly Expr L, R;
    public BinExpr(BinOp op, Expr l, Expr r) { Op = op; L = l; R = r; }
    public override object? Eval(RenderState st, Frame f)
    {
        var a = L.Eval(st, f);
        var b = R.Eval(st, f);
        try
        {
            return Op switch
            {
                BinOp.Add => Py.Add(a, b),
                BinOp.Sub => Py.Sub(a, b),
                BinOp.Mul => Py.Mul(a, b),
                BinOp.Div => Py.TrueDiv(a, b),
                BinOp.FloorDiv => Py.FloorDiv(a, b),
                BinOp.Mod => Py.Mod(a, b),
                _ => Py.Pow(a, b),
            };
        }
        catch (JinjaException e) when (!e.HasLocation) { throw Locate(e); }
    }
    public override IEnumerable<Node> Children => [L, R];
}

internal sealed class AndExpr : Expr
{
    public readonly Expr L, R;
    public AndExpr(Expr l, Expr r) { L = l; R = r; }
    public override object? Eval(RenderState st, Frame f)
    {
        var a = L.Eval(st, f);
        return Py.Truthy(a) ? R.Eval(st, f) : a;
    }
    public override IEnumerable<Node> Children => [L, R];
}

internal sealed class OrExpr : Expr
{
    public readonly Expr L, R;
    public OrExpr(Expr l, Expr r) { L = l; R = r; }
    public override object? Eval(RenderState st, Frame f)
    {
        var a = L.Eval(st, f);
        return Py.Truthy(a) ? a : R.Eval(st, f);
    }
    public override IEnumerable<Node> Children => [L, R];
}

internal enum CmpKind { Eq, Ne, Lt, LtEq, Gt, GtEq, In, NotIn }

internal sealed class CompareExpr : Expr
{
    public readonly Expr First;
    public readonly (CmpKind Op, Expr E)[] Rest;
    public CompareExpr(Expr first, (CmpKind, Expr)[] rest) { First = first; Rest = rest; }

    public override object? Eval(RenderState st, Frame f)
    {
        var left = First.Eval(st, f);
        foreach (var (op, e) in Rest)
        {
            var right = e.Eval(st, f);
            bool r;
            try
            {
                r = op switch
                {
                    CmpKind.Eq => Py.Eq(left, right),
                    CmpKind.Ne => !Py.Eq(left, right),
                    CmpKind.Lt => Py.Compare(left, right, Py.CmpOp.Lt),
                    CmpKind.LtEq => Py.Compare(left, right, Py.CmpOp.Le),
                    CmpKind.Gt => Py.Compare(left, right, Py.CmpOp.Gt),
                    CmpKind.GtEq => Py.Compare(left, right, Py.CmpOp.Ge),
                    CmpKind.In => Py.Contains(right, left),
                    _ => !Py.Contains(right, left),
                };
            }
            catch (JinjaException ex) when (!ex.HasLocation) { throw Locate(ex); }
            if (!r) return Py.False;
            left = right;
        }
        return Py.True;
    }
    public override IEnumerable<Node> Children => new Node[] { First }.Concat(Rest.Select(r => (Node)r.E));
}

internal sealed class ConcatExpr : Expr
{
    public readonly Expr[] Items;
    public ConcatExpr(Expr[] items) { Items = items; }
    public override object? Eval(RenderState st, Frame f)
    {
        var parts = new string[Items.Length];
        for (int i = 0; i < parts.Length; i++) parts[i] = Py.Str(Items[i].Eval(st, f));
        return string.Concat(parts);
    }
    public override IEnumerable<Node> Children => Items;
}

internal sealed class CondExpr : Expr
{
    public readonly Expr Test, Then;
    public readonly Expr? Else;
    public CondExpr(Expr test, Expr then, Expr? @else) { Test = test; Then = then; Else = @else; }
    public override object? Eval(RenderState st, Frame f)
    {
        if (Py.Truthy(Test.Eval(st, f))) return Then.Eval(st, f);
        if (Else != null) return Else.Eval(st, f);
        return Undefined.ForHint($"the inline if-expression on line {Line} evaluated to false and no else section was defined.");
    }
    public override IEnumerable<Node> Children => ArgList.NonNull(Test, Then, Else);
}

// =============================================================== assignment targets

internal abstract class Target : Node
{
    public abstract void Assign(RenderState st, Frame f, object? value);
    public abstract IEnumerable<string> Names { get; }
}

internal sealed class NameTarget : Target
{
    public readonly string Name;
    public int Slot = -1;
    public NameTarget(string name) { Name = name; }
    public override void Assign(RenderState st, Frame f, object? value) => f.S[Slot] = value;
    public override IEnumerable<string> Names => [Name];
}

internal sealed class TupleTarget : Target
{
    public readonly Target[] Items;
    public TupleTarget(Target[] items) { Items = items; }

    public override void Assign(RenderState st, Frame f, object? value)
    {
        if (!Py.IsIterable(value)) throw Py.TypeError($"cannot unpack non-iterable {Py.TypeName(value)} object");
        var it = Py.Iter(value);
        var vals = new object?[Items.Length];
        int n = 0;
        while (it.Next(out var x))
        {
            if (n == Items.Length) throw Py.ValueError($"too many values to unpack (expected {Items.Length})");
            vals[n++] = x;
        }
        if (n < Items.Length) throw Py.ValueError($"not enough values to unpack (expected {Items.Length}, got {n})");
        for (int i = 0; i < Items.Length; i++) Items[i].Assign(st, f, vals[i]);
    }

    public override IEnumerable<string> Names => Items.SelectMany(t => t.Names);
}

/// <summary><c>set ns.attr = value</c>.</summary>
internal sealed class NsTarget : Target
{
    public readonly NameExpr Ns;
    public readonly string Attr;
    public NsTarget(NameExpr ns, string attr) { Ns = ns; Attr = attr; }
    public override void Assign(RenderState st, Frame f, object? value)
    {
        var ns = Ns.Eval(st, f);
        if (ns is not Namespace n) throw Py.RuntimeError("cannot assign attribute on non-namespace object");
        n.Attrs.Set(Attr, value);
    }
    public override IEnumerable<string> Names => [];
}

// =============================================================== statements

internal sealed class TextStmt : Stmt
{
    public readonly string Text;
    public TextStmt(string text) { Text = text; }
    public override Flow Exec(RenderState st, Frame f, StringBuilder o) { o.Append(Text); return Flow.Normal; }
}

internal sealed class PrintStmt : Stmt
{
    public readonly Expr E;
    public PrintStmt(Expr e) { E = e; }
    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        Py.AppendStr(o, E.Eval(st, f));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => [E];
}

internal sealed class IfStmt : Stmt
{
    public readonly (Expr Cond, Stmt[] Body)[] Branches;
    public readonly Stmt[]? Else;
    public IfStmt((Expr, Stmt[])[] branches, Stmt[]? @else) { Branches = branches; Else = @else; }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        foreach (var (cond, body) in Branches)
        {
            bool t;
            try { t = Py.Truthy(cond.Eval(st, f)); }
            catch (JinjaException e) when (!e.HasLocation) { throw cond.Locate(e); }
            if (t) return ExecBody(body, st, f, o);
        }
        return Else != null ? ExecBody(Else, st, f, o) : Flow.Normal;
    }

    public override IEnumerable<Node> Children =>
        Branches.SelectMany(b => new Node[] { b.Cond }.Concat(b.Body)).Concat(Else ?? []);
}

internal sealed class ForStmt : Stmt
{
    public readonly Target Target;
    public readonly Expr Iter;
    public readonly Expr? Filter;
    public readonly bool Recursive;
    public readonly Stmt[] Body;
    public readonly Stmt[]? Else;
    public int BodySize, ElseSize, LoopSlot = -1;
    public bool UsesLoop;

    public ForStmt(Target target, Expr iter, Expr? filter, bool recursive, Stmt[] body, Stmt[]? @else)
    {
        Target = target; Iter = iter; Filter = filter; Recursive = recursive; Body = body; Else = @else;
    }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        object? iterable;
        try { iterable = Iter.Eval(st, f); }
        catch (JinjaException e) when (!e.HasLocation) { throw Iter.Locate(e); }
        return Run(st, f, iterable, 0, o);
    }

    internal Flow Run(RenderState st, Frame outer, object? iterable, int depth, StringBuilder o)
    {
        PyIter it;
        try { it = Py.Iter(iterable); }
        catch (JinjaException e) when (!e.HasLocation) { throw Iter.Locate(e); }
        long known = -1;
        if (Filter != null) it = new FilterIter(it, this, st, outer);
        else if (Py.TryLen(iterable, out long n)) known = n;
        LoopContext? lc = UsesLoop ? new LoopContext(it, known, depth, this, outer) : null;
        bool any = false;
        while (true)
        {
            object? item;
            if (lc != null) { if (!lc.Advance(out item)) break; }
            else if (!it.Next(out item)) break;
            any = true;
            var fr = new Frame(BodySize, outer);
            try { Target.Assign(st, fr, item); }
            catch (JinjaException e) when (!e.HasLocation) { throw Target.Locate(e); }
            if (lc != null) fr.S[LoopSlot] = lc;
            if (ExecBody(Body, st, fr, o) == Flow.Break) break;
        }
        if (!any && Else != null) return ExecBody(Else, st, new Frame(ElseSize, outer), o);
        return Flow.Normal;
    }

    /// <summary>The <c>for x in y if cond</c> filter, evaluated lazily as Python's generator would.</summary>
    sealed class FilterIter : PyIter
    {
        readonly PyIter _inner; readonly ForStmt _loop; readonly RenderState _st; readonly Frame _outer;
        public FilterIter(PyIter inner, ForStmt loop, RenderState st, Frame outer) { _inner = inner; _loop = loop; _st = st; _outer = outer; }
        public override bool Next(out object? value)
        {
            while (_inner.Next(out value))
            {
                var scratch = new Frame(_loop.BodySize, _outer);
                _loop.Target.Assign(_st, scratch, value);
                bool keep;
                try { keep = Py.Truthy(_loop.Filter!.Eval(_st, scratch)); }
                catch (JinjaException e) when (!e.HasLocation) { throw _loop.Filter!.Locate(e); }
                if (keep) return true;
            }
            return false;
        }
    }

    public override IEnumerable<Node> Children =>
        new Node[] { Target, Iter }.Concat(Filter == null ? [] : new Node[] { Filter }).Concat(Body).Concat(Else ?? []);
}

internal sealed class BreakStmt : Stmt
{
    public override Flow Exec(RenderState st, Frame f, StringBuilder o) => Flow.Break;
}

internal sealed class ContinueStmt : Stmt
{
    public override Flow Exec(RenderState st, Frame f, StringBuilder o) => Flow.Continue;
}

internal sealed class SetStmt : Stmt
{
    public readonly Target Target;
    public readonly Expr Value;
    public SetStmt(Target target, Expr value) { Target = target; Value = value; }
    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        Target.Assign(st, f, Value.Eval(st, f));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => [Target, Value];
}

internal sealed class SetBlockStmt : Stmt
{
    public readonly Target Target;
    public readonly FilterExpr? Filter;
    public readonly Stmt[] Body;
    public int BodySize;
    public SetBlockStmt(Target target, FilterExpr? filter, Stmt[] body) { Target = target; Filter = filter; Body = body; }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        var sb = Builders.Rent();
        var bf = new Frame(BodySize, f);
        var fl = ExecBody(Body, st, bf, sb);
        object? value = Builders.ToStringAndReturn(sb);
        if (fl != Flow.Normal) return fl;
        if (Filter != null) value = Filter.ApplyTo(st, bf, value);
        Target.Assign(st, f, value);
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => new Node[] { Target }.Concat(Filter == null ? [] : new Node[] { Filter }).Concat(Body);
}

internal sealed class FilterBlockStmt : Stmt
{
    public readonly FilterExpr Filter;
    public readonly Stmt[] Body;
    public int BodySize;
    public FilterBlockStmt(FilterExpr filter, Stmt[] body) { Filter = filter; Body = body; }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        var sb = Builders.Rent();
        var bf = new Frame(BodySize, f);
        var fl = ExecBody(Body, st, bf, sb);
        string body = Builders.ToStringAndReturn(sb);
        if (fl != Flow.Normal) return fl;
        Py.AppendStr(o, Filter.ApplyTo(st, bf, body));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => new Node[] { Filter }.Concat(Body);
}

internal sealed class WithStmt : Stmt
{
    public readonly (Target Target, Expr Value)[] Assigns;
    public readonly Stmt[] Body;
    public int BodySize;
    public WithStmt((Target, Expr)[] assigns, Stmt[] body) { Assigns = assigns; Body = body; }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        var wf = new Frame(BodySize, f);
        foreach (var (t, v) in Assigns) t.Assign(st, wf, v.Eval(st, f));
        return ExecBody(Body, st, wf, o);
    }
    public override IEnumerable<Node> Children => Assigns.SelectMany(a => new Node[] { a.Target, a.Value }).Concat(Body);
}

/// <summary>A named {% block %}: without template inheritance it renders in place, in its own scope.</summary>
internal sealed class NamedBlockStmt : Stmt
{
    public readonly string Name;
    public readonly bool Scoped;
    public readonly Stmt[] Body;
    public int BodySize;
    public NamedBlockStmt(string name, bool scoped, Stmt[] body) { Name = name; Scoped = scoped; Body = body; }

    /// <summary>Unscoped blocks see only template-level variables (jinja2 renders them from the context).</summary>
    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        ExecBody(Body, st, new Frame(BodySize, Scoped ? f : st.RootFrame!), o);
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => Body;
}

/// <summary>
/// {% generation %}...{% endgeneration %} (transformers' AssistantTracker): renders its body and records
/// the span, starting where the top-level output stands when the block runs, as transformers does.
/// </summary>
internal sealed class GenerationStmt : Stmt
{
    public readonly Stmt[] Body;
    public int BodySize;
    public GenerationStmt(Stmt[] body) { Body = body; }

    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        // transformers renders the body through caller(): it is buffered, so the top-level output does not
        // grow while it runs (a nested generation block starts where the outer one starts).
        int rootStart = st.Root.Length;
        var body = Builders.Rent();
        ExecBody(Body, st, new Frame(BodySize, f), body);
        int len16 = body.Length;
        int lenCp = len16;
        string text = Builders.ToStringAndReturn(body);
        if (len16 > 0 && PyStr.HasSurrogates(text)) lenCp = PyStr.Length(text);
        o.Append(text);
        st.Spans.Add(new GenSpan(rootStart, len16, lenCp));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children => Body;
}

internal sealed class MacroParam
{
    public readonly string Name;
    public readonly Expr? Default;
    public int Slot = -1;
    public MacroParam(string name, Expr? dflt) { Name = name; Default = dflt; }
}

/// <summary>A macro or a call block's caller: parameters, body and how it binds arguments.</summary>
internal sealed class MacroDef
{
    public readonly string Name;
    public readonly MacroParam[] Params;
    public readonly Stmt[] Body;
    public bool CatchVarargs, CatchKwargs, CatchCaller, ExplicitCaller;
    public int VarargsSlot = -1, KwargsSlot = -1, CallerSlot = -1, FrameSize;
    public MacroDef(string name, MacroParam[] ps, Stmt[] body) { Name = name; Params = ps; Body = body; }
}

internal sealed class MacroStmt : Stmt
{
    public readonly MacroDef Def;
    public readonly NameTarget Target;
    public MacroStmt(MacroDef def, NameTarget target) { Def = def; Target = target; }
    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        Target.Assign(st, f, new MacroValue(Def, f));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children =>
        Def.Params.Where(p => p.Default != null).Select(p => (Node)p.Default!).Concat(Def.Body);
}

internal sealed class CallBlockStmt : Stmt
{
    public readonly MacroDef Caller;
    public readonly CallExpr Call;
    public CallBlockStmt(MacroDef caller, CallExpr call) { Caller = caller; Call = call; }
    public override Flow Exec(RenderState st, Frame f, StringBuilder o)
    {
        Py.AppendStr(o, Call.EvalWith(st, f, "caller", new MacroValue(Caller, f)));
        return Flow.Normal;
    }
    public override IEnumerable<Node> Children =>
        new Node[] { Call }.Concat(Caller.Params.Where(p => p.Default != null).Select(p => (Node)p.Default!)).Concat(Caller.Body);
}
