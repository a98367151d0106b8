using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>Variables of one scope at run time; slots are assigned by the binder at parse time.</summary>
internal sealed class Frame
{
    public readonly object?[] S;
    public readonly Frame? Parent;

    public Frame(int size, Frame? parent)
    {
        S = size == 0 ? Array.Empty<object?>() : new object?[size];
        if (size > 0) Array.Fill(S, Missing.Value);
        Parent = parent;
    }
}

/// <summary>A generation block's output: where it starts in the top-level output and how long it is.</summary>
internal readonly record struct GenSpan(int RootStart16, int Length16, int LengthCp);

/// <summary>Per-render mutable state; a parsed template is shared and never mutated.</summary>
internal sealed class RenderState
{
    public readonly StringBuilder Root;
    public readonly List<GenSpan> Spans = new();
    public readonly Func<DateTime> Now;
    public Frame? RootFrame;
    public int Depth;
    public const int MaxDepth = 200; // Python jinja2 hits RecursionError between 150 and 200 nested macro calls

    public RenderState(StringBuilder root, Func<DateTime> now)
    {
        Root = root;
        Now = now;
    }

    public void Enter()
    {
        if (++Depth > MaxDepth)
        {
            Depth = 0;
            throw new JinjaException("RecursionError", "maximum recursion depth exceeded (macro calls nested more than " + MaxDepth + " deep)");
        }
        CheckStack();
    }

    /// <summary>Turns a thread about to run out of stack into a RecursionError instead of a process crash.</summary>
    public static void CheckStack()
    {
        if (!System.Runtime.CompilerServices.RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new JinjaException("RecursionError", "maximum recursion depth exceeded (the thread is out of stack)");
    }

    public void Leave() => Depth--;
}

/// <summary>Calling a value from a template.</summary>
internal static class Calls
{
    public static object? Invoke(RenderState st, object? callee, in CallArgs args)
    {
        switch (callee)
        {
            case PyCallable c: return c.Call(st, args);
            case Undefined u: throw u.Error();
            case LoopContext lc: return lc.Recurse(st, args);
        }
        throw Py.TypeError($"'{Py.TypeName(callee)}' object is not callable");
    }

    public static bool IsCallable(object? v) => v is PyCallable || v is Undefined || v is LoopContext;
}

/// <summary>jinja2's <c>self</c> (TemplateReference): <c>self.blockname()</c> renders a named block again.</summary>
internal sealed class SelfRef
{
    readonly IReadOnlyDictionary<string, NamedBlockStmt> _blocks;
    public SelfRef(IReadOnlyDictionary<string, NamedBlockStmt> blocks) { _blocks = blocks; }

    public bool TryGetAttr(string name, out object? value)
    {
        value = null;
        if (!_blocks.TryGetValue(name, out var block) || block.Scoped) return false;
        value = new BuiltinFunction(name, (RenderState st, in CallArgs a) =>
        {
            a.Check(name, 0);
            var sb = Builders.Rent();
            block.Exec(st, st.RootFrame!, sb);
            return Builders.ToStringAndReturn(sb);
        });
        return true;
    }
}
