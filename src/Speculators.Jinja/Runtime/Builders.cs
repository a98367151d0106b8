using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>
/// Per-thread reuse of the StringBuilders that renders, macro calls and set/filter/generation blocks
/// write into, so a render allocates little more than its result strings.
/// </summary>
internal static class Builders
{
    const int Slots = 8;
    const int MaxKeptCapacity = 64 * 1024;
    [ThreadStatic] static StringBuilder?[]? _cache;

    public static StringBuilder Rent()
    {
        var c = _cache ??= new StringBuilder?[Slots];
        for (int i = 0; i < c.Length; i++)
        {
            var sb = c[i];
            if (sb != null)
            {
                c[i] = null;
                return sb;
            }
        }
        return new StringBuilder(256);
    }

    /// <summary>Returns the text and gives the builder back for reuse.</summary>
    public static string ToStringAndReturn(StringBuilder sb)
    {
        string s = sb.ToString();
        Return(sb);
        return s;
    }

    public static void Return(StringBuilder sb)
    {
        if (sb.Capacity > MaxKeptCapacity) return;
        sb.Clear();
        var c = _cache ??= new StringBuilder?[Slots];
        for (int i = 0; i < c.Length; i++)
            if (c[i] == null) { c[i] = sb; return; }
    }
}
