using System.Text;
using System.Text.RegularExpressions;

namespace Speculators.Hub;

/// <summary>
/// Where hub settings come from: environment variables and the home directory. Injectable so
/// tests never depend on the real process environment or home directory.
/// </summary>
public sealed class HubEnvironment
{
    readonly Func<string, string?> _get;

    public HubEnvironment(Func<string, string?> getVariable, string homeDirectory)
    {
        _get = getVariable;
        HomeDirectory = homeDirectory;
    }

    /// <summary>The real process environment and the user's home directory.</summary>
    public static HubEnvironment Process { get; } = new(
        Environment.GetEnvironmentVariable,
        Environment.GetFolderPath(Environment.SpecialFolder.UserProfile, Environment.SpecialFolderOption.DoNotVerify));

    public static HubEnvironment FromDictionary(IReadOnlyDictionary<string, string> variables, string homeDirectory) =>
        new(name => variables.TryGetValue(name, out var v) ? v : null, homeDirectory);

    public string HomeDirectory { get; }

    /// <summary>The variable's value, or null when unset (an empty value is returned as empty).</summary>
    public string? Get(string name) => _get(name);

    /// <summary>
    /// huggingface_hub's <c>_is_true</c>: "1", "ON", "YES", "TRUE" in any case are true; anything else
    /// (including unset) is false.
    /// </summary>
    public static bool IsTrue(string? value) =>
        value is not null && value.ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";

    /// <summary>Python's <c>os.path.expanduser</c> then <c>os.path.expandvars</c>, against this environment.</summary>
    public string ExpandPath(string path)
    {
        if (path == "~" || path.StartsWith("~/", StringComparison.Ordinal))
            path = HomeDirectory + path[1..];
        return VarPattern.Replace(path, m =>
        {
            string name = m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value;
            return Get(name) ?? m.Value; // unknown variables are left as written (as expandvars does)
        });
    }

    static readonly Regex VarPattern = new(@"\$(?:\{([^}]+)\}|(\w+))", RegexOptions.CultureInvariant);

    /// <summary>Reads an integer variable (seconds); null when unset or not a number.</summary>
    public int? GetInt(string name) =>
        int.TryParse(Get(name), System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v) ? v : null;

    internal static string CleanToken(string? raw)
    {
        if (raw is null) return "";
        var sb = new StringBuilder(raw.Length);
        foreach (char c in raw) if (c != '\r' && c != '\n') sb.Append(c);
        return sb.ToString().Trim();
    }
}
