namespace Speculators.Jinja.Runtime;

/// <summary>
/// sorted(items, key=..., reverse=...) with CPython's comparison sequence (run detection, then binary
/// insertion: timsort's path for short lists), so that the result is the same stable order and an
/// incomparable pair raises the same TypeError Python reports. Only <c>&lt;</c> is used.
/// </summary>
internal static class PySort
{
    public static List<T> Sorted<T>(IReadOnlyList<T> items, Func<T, object?> key, bool reverse)
    {
        int n = items.Count;
        var keys = new object?[n];
        var vals = new T[n];
        for (int i = 0; i < n; i++) { vals[i] = items[i]; keys[i] = key(items[i]); }
        if (reverse) { Array.Reverse(keys); Array.Reverse(vals); }
        Sort(keys, vals);
        if (reverse) { Array.Reverse(keys); Array.Reverse(vals); }
        return new List<T>(vals);
    }

    static bool Lt(object? a, object? b) => Py.Compare(a, b, Py.CmpOp.Lt);

    static void Sort<T>(object?[] keys, T[] vals)
    {
        int n = keys.Length;
        if (n < 2) return;
        // count_run: the longest ascending (non-descending) or strictly descending prefix.
        int run = 2;
        if (Lt(keys[1], keys[0]))
        {
            while (run < n && Lt(keys[run], keys[run - 1])) run++;
            Array.Reverse(keys, 0, run);
            Array.Reverse(vals, 0, run);
        }
        else
        {
            while (run < n && !Lt(keys[run], keys[run - 1])) run++;
        }
        // binarysort: insert the rest, each after any equal keys (stable).
        for (int start = run; start < n; start++)
        {
            var pk = keys[start];
            var pv = vals[start];
            int l = 0, r = start;
            while (l < r)
            {
                int p = l + ((r - l) >> 1);
                if (Lt(pk, keys[p])) r = p; else l = p + 1;
            }
            Array.Copy(keys, l, keys, l + 1, start - l);
            Array.Copy(vals, l, vals, l + 1, start - l);
            keys[l] = pk;
            vals[l] = pv;
        }
    }
}
