using Speculators.Jinja.Runtime;

namespace Speculators.Jinja;

/// <summary>
/// Resolves every variable to frame slots at parse time, following jinja2's scoping: for-loop
/// bodies (fresh each iteration), macros, call blocks, set/filter blocks, with and generation blocks
/// get their own scope; if-blocks do not. A read looks in the innermost scope that assigns the
/// name, falling back outward while unassigned, and finally to the render variables and globals
/// (the root scope). Also checks filter/test names and break/continue placement.
/// </summary>
internal sealed class Binder
{
    sealed class Scope
    {
        public readonly Scope? Parent;
        public readonly Dictionary<string, int> Slots = new(StringComparer.Ordinal);
        public readonly HashSet<int> Used = new();
        public Scope(Scope? parent) { Parent = parent; }
        public int Declare(string name)
        {
            if (!Slots.TryGetValue(name, out int s)) { s = Slots.Count; Slots[name] = s; }
            return s;
        }
    }

    readonly Scope _root = new(null);
    readonly Dictionary<string, NamedBlockStmt> _blocks = new(StringComparer.Ordinal);
    Scope _cur;
    bool _soft;
    int _loopDepth;

    Binder() { _cur = _root; }

    /// <summary>Binds a template body; returns the root scope's names by slot and the named blocks.</summary>
    public static (string[] rootNames, Dictionary<string, NamedBlockStmt> blocks) Bind(Stmt[] body)
    {
        var b = new Binder();
        b.DeclareStores(body, b._root);
        b.BindStmts(body);
        var names = new string[b._root.Slots.Count];
        foreach (var kv in b._root.Slots) names[kv.Value] = kv.Key;
        return (names, b._blocks);
    }

    static JinjaException Fail(Node n, string type, string msg) => new(type, msg, n.Line, n.Col);

    /// <summary>Names assigned directly in this scope (through if-blocks, not into nested scopes).</summary>
    void DeclareStores(Stmt[] body, Scope s)
    {
        foreach (var st in body)
        {
            switch (st)
            {
                case SetStmt set: foreach (var n in set.Target.Names) s.Declare(n); break;
                case SetBlockStmt sb: foreach (var n in sb.Target.Names) s.Declare(n); break;
                case MacroStmt m: s.Declare(m.Target.Name); break;
                case IfStmt ifs:
                    foreach (var (_, b) in ifs.Branches) DeclareStores(b, s);
                    if (ifs.Else != null) DeclareStores(ifs.Else, s);
                    break;
            }
        }
    }

    void BindStmts(Stmt[] body)
    {
        foreach (var s in body) BindStmt(s);
    }

    void BindTarget(Target t)
    {
        switch (t)
        {
            case NameTarget n: n.Slot = _cur.Declare(n.Name); break;
            case TupleTarget tt: foreach (var x in tt.Items) BindTarget(x); break;
            case NsTarget ns: BindExpr(ns.Ns); break;
        }
    }

    /// <summary>
    /// Runs <paramref name="bind"/> inside a new scope; returns the scope's size. Function scopes
    /// (macros, callers, generation and named blocks) are Python functions in jinja2, so break and
    /// continue cannot cross them; set/filter/with blocks are inline code and can.
    /// </summary>
    int InScope(Stmt[]? body, bool function, Action<Scope> bind, bool fromRoot = false)
    {
        var s = new Scope(fromRoot ? _root : _cur);
        var saved = _cur;
        if (body != null) DeclareStores(body, s);
        bool soft = _soft;
        int loops = _loopDepth;
        _soft = false;
        if (function) _loopDepth = 0;
        _cur = s;
        try { bind(s); }
        finally
        {
            _cur = saved;
            _soft = soft;
            _loopDepth = loops;
        }
        return s.Slots.Count;
    }

    void BindStmt(Stmt st)
    {
        switch (st)
        {
            case TextStmt: break;
            case PrintStmt p: BindExpr(p.E); break;
            case IfStmt ifs:
            {
                bool soft = _soft;
                _soft = true;
                foreach (var (c, b) in ifs.Branches) { BindExpr(c); BindStmts(b); }
                if (ifs.Else != null) BindStmts(ifs.Else);
                _soft = soft;
                break;
            }
            case ForStmt f:
            {
                BindExpr(f.Iter);
                f.BodySize = InScope(f.Body, false, s =>
                {
                    BindTarget(f.Target);
                    f.LoopSlot = s.Declare("loop");
                    if (f.Filter != null) BindExpr(f.Filter);
                    _loopDepth++;
                    BindStmts(f.Body);
                    f.UsesLoop = s.Used.Contains(f.LoopSlot);
                });
                if (f.Else != null) f.ElseSize = InScope(f.Else, false, _ => BindStmts(f.Else));
                break;
            }
            case BreakStmt:
                if (_loopDepth == 0) throw Fail(st, "SyntaxError", "'break' outside loop");
                break;
            case ContinueStmt:
                if (_loopDepth == 0) throw Fail(st, "SyntaxError", "'continue' not properly in loop");
                break;
            case SetStmt set:
                BindExpr(set.Value);
                BindTarget(set.Target);
                break;
            case SetBlockStmt sb:
                sb.BodySize = InScope(sb.Body, false, _ =>
                {
                    BindStmts(sb.Body);
                    if (sb.Filter != null) BindExpr(sb.Filter);
                });
                BindTarget(sb.Target);
                break;
            case FilterBlockStmt fb:
                fb.BodySize = InScope(fb.Body, false, _ =>
                {
                    BindStmts(fb.Body);
                    BindExpr(fb.Filter);
                });
                break;
            case WithStmt w:
                foreach (var (_, v) in w.Assigns) BindExpr(v);
                w.BodySize = InScope(w.Body, false, s =>
                {
                    foreach (var (t, _) in w.Assigns) BindTarget(t);
                    BindStmts(w.Body);
                });
                break;
            case NamedBlockStmt nb:
                if (!_blocks.TryAdd(nb.Name, nb)) throw Fail(nb, "TemplateAssertionError", $"block {Py.Repr(nb.Name)} defined twice");
                nb.BodySize = InScope(nb.Body, true, _ => BindStmts(nb.Body), fromRoot: !nb.Scoped);
                break;
            case GenerationStmt g:
                g.BodySize = InScope(g.Body, true, _ => BindStmts(g.Body));
                break;
            case MacroStmt m:
                m.Target.Slot = _cur.Declare(m.Target.Name);
                BindMacro(m.Def);
                break;
            case CallBlockStmt cb:
                BindExpr(cb.Call);
                BindMacro(cb.Caller);
                break;
            default:
                throw new InvalidOperationException("unbound statement " + st.GetType().Name);
        }
    }

    void BindMacro(MacroDef d)
    {
        foreach (var p in d.Params) if (p.Name == "caller") d.ExplicitCaller = true;
        var special = FindUndeclared(d.Body, ["caller", "kwargs", "varargs"]);
        d.CatchCaller = special.Contains("caller");
        d.CatchKwargs = special.Contains("kwargs");
        d.CatchVarargs = special.Contains("varargs");
        d.FrameSize = InScope(d.Body, true, s =>
        {
            foreach (var p in d.Params) p.Slot = s.Declare(p.Name);
            if (d.CatchCaller) d.CallerSlot = s.Declare("caller");
            if (d.CatchKwargs) d.KwargsSlot = s.Declare("kwargs");
            if (d.CatchVarargs) d.VarargsSlot = s.Declare("varargs");
            foreach (var p in d.Params) if (p.Default != null) BindExpr(p.Default);
            BindStmts(d.Body);
        });
    }

    /// <summary>jinja2's find_undeclared: which of <paramref name="names"/> the body reads before assigning.</summary>
    static HashSet<string> FindUndeclared(Stmt[] body, string[] names)
    {
        var pending = new HashSet<string>(names);
        var found = new HashSet<string>();
        void Visit(Node n)
        {
            switch (n)
            {
                case NameExpr ne:
                    if (pending.Contains(ne.Name)) found.Add(ne.Name);
                    return;
                case NameTarget nt:
                    if (!found.Contains(nt.Name)) pending.Remove(nt.Name);
                    return;
                case NamedBlockStmt:
                    return;
            }
            foreach (var c in Children(n)) Visit(c);
        }
        foreach (var s in body) Visit(s);
        return found;
    }

    static IEnumerable<Node> Children(Node n) => n switch
    {
        Expr e => e.Children,
        Stmt s => s.Children,
        TupleTarget t => t.Items,
        NsTarget ns => [ns.Ns],
        _ => [],
    };

    void BindExpr(Expr e)
    {
        switch (e)
        {
            case NameExpr n:
                Resolve(n);
                return;
            case FilterExpr fe:
                if (Filters.Table.TryGetValue(fe.Name, out var fn)) fe.Fn = fn;
                else if (!_soft) throw Fail(fe, "TemplateAssertionError", $"No filter named {Py.Repr(fe.Name)}.");
                break;
            case TestExpr te:
                if (Tests.Table.TryGetValue(te.Name, out var tn)) te.Fn = tn;
                else if (!_soft) throw Fail(te, "TemplateAssertionError", $"No test named {Py.Repr(te.Name)}.");
                break;
            case CondExpr ce:
            {
                bool soft = _soft;
                _soft = true;
                BindExpr(ce.Test);
                BindExpr(ce.Then);
                if (ce.Else != null) BindExpr(ce.Else);
                _soft = soft;
                return;
            }
            case NsRefExpr:
                throw Fail(e, "TemplateSyntaxError", "namespace references like 'ns.attr' can only be assigned to");
        }
        foreach (var c in e.Children) BindExpr((Expr)c);
    }

    void Resolve(NameExpr n)
    {
        var hops = new List<int>();
        var slots = new List<int>();
        int h = 0;
        bool inRoot = false;
        for (var s = _cur; s != null; s = s.Parent, h++)
        {
            if (s.Slots.TryGetValue(n.Name, out int slot))
            {
                hops.Add(h);
                slots.Add(slot);
                s.Used.Add(slot);
                if (s == _root) inRoot = true;
            }
            if (s == _root && !inRoot)
            {
                // A free variable: the root scope holds it, filled from the render variables or globals.
                hops.Add(h);
                slots.Add(_root.Declare(n.Name));
            }
        }
        n.Hops = hops.ToArray();
        n.Slots = slots.ToArray();
    }
}
