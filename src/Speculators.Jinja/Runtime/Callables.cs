using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>jinja2.runtime.Macro: a macro (or a call block's caller) closed over the frame it was defined in.</summary>
internal sealed class MacroValue : PyCallable
{
    readonly MacroDef _def;
    readonly Frame _closure;

    public MacroValue(MacroDef def, Frame closure) { _def = def; _closure = closure; }

    public override string Repr => $"<Macro {Py.Repr(_def.Name)}>";
    public override string PyTypeName => "Macro";

    public bool TryGetAttr(string name, out object? value)
    {
        switch (name)
        {
            case "name": value = _def.Name; return true;
            case "arguments": value = new PyTuple(_def.Params.Select(p => (object?)p.Name).ToArray()); return true;
            case "catch_kwargs": value = Py.Bool(_def.CatchKwargs); return true;
            case "catch_varargs": value = Py.Bool(_def.CatchVarargs); return true;
            case "caller": value = Py.Bool(_def.CatchCaller); return true;
        }
        value = null;
        return false;
    }

    public override object? Call(RenderState st, in CallArgs args)
    {
        var d = _def;
        var f = new Frame(d.FrameSize, _closure);
        int nParams = d.Params.Length;
        int nPos = Math.Min(args.Count, nParams);
        for (int i = 0; i < nPos; i++) f.S[d.Params[i].Slot] = args.Pos[i];
        List<KeyValuePair<string, object?>>? kw = args.Kw == null ? null : new(args.Kw);
        bool foundCaller = false;
        var missing = new bool[nParams];
        if (nPos != nParams)
        {
            for (int i = nPos; i < nParams; i++)
            {
                string name = d.Params[i].Name;
                int k = kw == null ? -1 : kw.FindIndex(x => x.Key == name);
                if (k >= 0) { f.S[d.Params[i].Slot] = kw![k].Value; kw.RemoveAt(k); }
                else missing[i] = true;
                if (name == "caller") foundCaller = true;
            }
        }
        else foundCaller = d.ExplicitCaller;
        if (d.CatchCaller && !foundCaller)
        {
            int k = kw == null ? -1 : kw.FindIndex(x => x.Key == "caller");
            object? caller;
            if (k >= 0) { caller = kw![k].Value; kw.RemoveAt(k); }
            else caller = null;
            f.S[d.CallerSlot] = caller ?? Undefined.ForHint("No caller defined", "caller");
        }
        if (d.CatchKwargs)
        {
            var kd = new PyDict();
            if (kw != null) foreach (var kv in kw) kd.Set(kv.Key, kv.Value);
            f.S[d.KwargsSlot] = kd;
        }
        else if (kw != null && kw.Count > 0)
        {
            if (kw.Exists(x => x.Key == "caller"))
                throw Py.TypeError($"macro {Py.Repr(d.Name)} was invoked with two values for the special caller argument. This is most likely a bug.");
            throw Py.TypeError($"macro {Py.Repr(d.Name)} takes no keyword argument {Py.Repr(kw[0].Key)}");
        }
        if (d.CatchVarargs)
            f.S[d.VarargsSlot] = args.Count > nParams ? new PyTuple(args.Pos[nParams..]) : PyTuple.Empty;
        else if (args.Count > nParams)
            throw Py.TypeError($"macro {Py.Repr(d.Name)} takes not more than {nParams} argument(s)");
        // Defaults are evaluated in order inside the macro's frame, so they may refer to earlier parameters;
        // a parameter not set yet reads as undefined there (not as an outer variable of the same name).
        for (int i = 0; i < nParams; i++)
            if (missing[i] && d.Params[i].Default != null) f.S[d.Params[i].Slot] = Undefined.ForName(d.Params[i].Name);
        for (int i = 0; i < nParams; i++)
        {
            if (!missing[i]) continue;
            var p = d.Params[i];
            f.S[p.Slot] = p.Default != null ? p.Default.Eval(st, f) : Undefined.ForHint($"parameter {Py.Repr(p.Name)} was not provided", p.Name);
        }
        st.Enter();
        try
        {
            var sb = Builders.Rent();
            Stmt.ExecBody(d.Body, st, f, sb);
            return Builders.ToStringAndReturn(sb);
        }
        finally { st.Leave(); }
    }
}

/// <summary>jinja2.runtime.LoopContext: the <c>loop</c> variable.</summary>
internal sealed class LoopContext
{
    PyIter _it;
    long _length;
    bool _hasAfter;
    object? _after;
    object? _before, _current;
    object? _lastChanged = Missing.Value;
    readonly ForStmt _loop;
    readonly Frame _outer;
    public int Index0 = -1;
    public readonly int Depth0;

    public LoopContext(PyIter it, long knownLength, int depth0, ForStmt loop, Frame outer)
    {
        _it = it; _length = knownLength; Depth0 = depth0; _loop = loop; _outer = outer;
    }

    public bool Advance(out object? item)
    {
        if (_hasAfter) { item = _after; _hasAfter = false; _after = null; }
        else if (!_it.Next(out item)) return false;
        Index0++;
        _before = _current;
        _current = item;
        return true;
    }

    bool PeekNext(out object? v)
    {
        if (_hasAfter) { v = _after; return true; }
        if (_it.Next(out v)) { _hasAfter = true; _after = v; return true; }
        return false;
    }

    public long Length
    {
        get
        {
            if (_length >= 0) return _length;
            var rest = new List<object?>();
            while (_it.Next(out var x)) rest.Add(x);
            _it = new ListIter(rest);
            _length = rest.Count + Index0 + 1 + (_hasAfter ? 1 : 0);
            return _length;
        }
    }

    public bool TryGetAttr(string name, out object? value)
    {
        switch (name)
        {
            case "index": value = Py.Int(Index0 + 1); return true;
            case "index0": value = Py.Int(Index0); return true;
            case "first": value = Py.Bool(Index0 == 0); return true;
            case "last": value = Py.Bool(!PeekNext(out _)); return true;
            case "length": value = Py.Int(Length); return true;
            case "revindex": value = Py.Int(Length - Index0); return true;
            case "revindex0": value = Py.Int(Length - Index0 - 1); return true;
            case "depth": value = Py.Int(Depth0 + 1); return true;
            case "depth0": value = Py.Int(Depth0); return true;
            case "previtem": value = Index0 == 0 ? Undefined.ForHint("there is no previous item") : _before; return true;
            case "nextitem": value = PeekNext(out var n) ? n : Undefined.ForHint("there is no next item"); return true;
            case "cycle" or "changed": value = new BoundMethod(this, name); return true;
        }
        value = null;
        return false;
    }

    public object? CallMethod(string name, in CallArgs a)
    {
        if (a.HasKw) throw Py.TypeError($"{name}() got an unexpected keyword argument '{a.Kw![0].Key}'");
        if (name == "cycle")
        {
            if (a.Count == 0) throw Py.TypeError("no items for cycling given");
            return a.Pos[Index0 % a.Count];
        }
        if (name == "changed")
        {
            var v = new PyTuple((object?[])a.Pos.Clone());
            if (ReferenceEquals(_lastChanged, Missing.Value) || !Py.Eq(_lastChanged, v))
            {
                _lastChanged = v;
                return Py.True;
            }
            return Py.False;
        }
        throw Py.TypeError($"'LoopContext' object has no method {Py.Repr(name)}");
    }

    /// <summary><c>loop(children)</c> in a recursive loop: renders the loop body over the new items.</summary>
    public object? Recurse(RenderState st, in CallArgs a)
    {
        if (!_loop.Recursive) throw Py.TypeError("The loop must have the 'recursive' marker to be called recursively.");
        if (a.Count != 1 || a.HasKw) throw Py.TypeError("loop() takes exactly one argument");
        st.Enter();
        try
        {
            var sb = Builders.Rent();
            _loop.Run(st, _outer, a.Pos[0], Depth0 + 1, sb);
            return Builders.ToStringAndReturn(sb);
        }
        finally { st.Leave(); }
    }
}
