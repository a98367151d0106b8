namespace Speculators;

/// <summary>
/// An error the user can act on: bad input, a mismatch between files, a missing file.
/// The message says which file/key, what was expected and what was found. The CLI prints
/// only the message (no stack trace unless --verbose) and exits non-zero.
/// </summary>
public class SpeculatorsException : Exception
{
    public SpeculatorsException(string message) : base(message) { }
    public SpeculatorsException(string message, Exception inner) : base(message, inner) { }
}
