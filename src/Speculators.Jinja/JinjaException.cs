namespace Speculators.Jinja;

/// <summary>
/// A template failed to parse or render. <see cref="ErrorType"/> names the Python exception
/// jinja2 would raise (TemplateSyntaxError, TemplateError for raise_exception, UndefinedError,
/// TypeError, SecurityError...), <see cref="Exception.Message"/> is its message (verbatim for
/// raise_exception), and <see cref="Line"/>/<see cref="Column"/> locate the construct that failed
/// (1-based; 0 when unknown).
/// </summary>
public sealed class JinjaException : Exception
{
    public string ErrorType { get; }
    public int Line { get; internal set; }
    public int Column { get; internal set; }

    public JinjaException(string errorType, string message, int line = 0, int column = 0, Exception? inner = null)
        : base(message, inner)
    {
        ErrorType = errorType;
        Line = line;
        Column = column;
    }

    internal bool HasLocation => Line > 0;

    /// <summary>"ErrorType: message (line L, column C)" — what a user should see.</summary>
    public string Describe() =>
        HasLocation ? $"{ErrorType}: {Message} (line {Line}, column {Column})" : $"{ErrorType}: {Message}";

    internal JinjaException At(int line, int column)
    {
        if (!HasLocation) { Line = line; Column = column; }
        return this;
    }
}
