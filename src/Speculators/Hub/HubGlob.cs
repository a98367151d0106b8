using System.Text;
using System.Text.RegularExpressions;

namespace Speculators.Hub;

/// <summary>
/// The two pattern dialects the Python tools use on repository paths ('/'-separated):
/// <list type="bullet">
/// <item><see cref="GlobToRegex"/>: fsspec's <c>glob_translate</c> (recursive, hidden included), used by
/// <c>datasets</c> to resolve data_files patterns: <c>*</c> stays within one path segment, a whole
/// segment <c>**</c> spans any number of segments (also none), <c>?</c> one non-'/' character.</item>
/// <item><see cref="FnMatchCase"/>: Python's <c>fnmatch.fnmatchcase</c>, used by huggingface_hub's
/// allow/ignore patterns: <c>*</c> also crosses '/'.</item>
/// </list>
/// </summary>
public static class HubGlob
{
    /// <summary>Full-match regex of an fsspec glob pattern.</summary>
    public static Regex GlobToRegex(string pattern)
    {
        const string notSep = "[^/]";
        var sb = new StringBuilder("^(?s:");
        string[] parts = pattern.Split('/');
        int last = parts.Length - 1;
        for (int idx = 0; idx < parts.Length; idx++)
        {
            string part = parts[idx];
            if (part == "*") { sb.Append(idx < last ? notSep + "+/" : notSep + "+"); continue; }
            if (part == "**") { sb.Append(idx < last ? "(?:.+/)?" : ".*"); continue; }
            if (part.Contains("**"))
                throw new SpeculatorsException($"Invalid data_files pattern '{pattern}': '**' can only be an entire path component.");
            if (part.Length > 0) TranslatePart(part, notSep + "*", notSep, sb);
            if (idx < last) sb.Append('/');
        }
        sb.Append(")$");
        return new Regex(sb.ToString(), RegexOptions.CultureInvariant);
    }

    /// <summary>Python's <c>fnmatch.fnmatchcase(name, pattern)</c> (no normalisation, case-sensitive).</summary>
    public static bool FnMatchCase(string name, string pattern)
    {
        var sb = new StringBuilder("^(?s:");
        TranslatePart(pattern, ".*", ".", sb);
        sb.Append(")$");
        return Regex.IsMatch(name, sb.ToString(), RegexOptions.CultureInvariant);
    }

    /// <summary>huggingface_hub's filter_repo_objects: keep paths matching an allow pattern and no ignore pattern.</summary>
    public static bool AllowedByPatterns(string path, IEnumerable<string>? allow, IEnumerable<string>? ignore)
    {
        static string Dir(string p) => p.EndsWith('/') ? p + "*" : p; // "_add_wildcard_to_directories"
        if (allow is not null && !allow.Any(p => FnMatchCase(path, Dir(p)))) return false;
        if (ignore is not null && ignore.Any(p => FnMatchCase(path, Dir(p)))) return false;
        return true;
    }

    /// <summary>fnmatch's <c>_translate</c> with the given star / question-mark expressions.</summary>
    static void TranslatePart(string pat, string star, string question, StringBuilder res)
    {
        int i = 0, n = pat.Length;
        while (i < n)
        {
            char c = pat[i++];
            if (c == '*')
            {
                while (i < n && pat[i] == '*') i++; // collapse runs of '*'
                res.Append(star);
            }
            else if (c == '?') res.Append(question);
            else if (c == '[')
            {
                int j = i;
                if (j < n && pat[j] == '!') j++;
                if (j < n && pat[j] == ']') j++;
                while (j < n && pat[j] != ']') j++;
                if (j >= n) { res.Append("\\["); continue; }
                string body = pat[i..j];
                i = j + 1;
                res.Append(CharClass(body));
            }
            else res.Append(Regex.Escape(c.ToString()));
        }
    }

    static string CharClass(string body)
    {
        bool negate = body.StartsWith('!');
        string items = negate ? body[1..] : body;
        var sb = new StringBuilder();
        int k = 0;
        while (k < items.Length)
        {
            // A '-' between two characters makes a range; a leading or trailing '-' is literal.
            if (k + 2 < items.Length && items[k + 1] == '-')
            {
                char lo = items[k], hi = items[k + 2];
                if (lo <= hi) sb.Append(EscapeInClass(lo)).Append('-').Append(EscapeInClass(hi)); // empty ranges match nothing
                k += 3;
            }
            else { sb.Append(EscapeInClass(items[k])); k++; }
        }
        if (sb.Length == 0) return negate ? "." : "(?!)";
        return "[" + (negate ? "^" : "") + sb + "]";
    }

    static string EscapeInClass(char c) => c is '\\' or ']' or '[' or '^' or '-' ? "\\" + c : c.ToString();
}
