using System.CommandLine;

namespace Speculators.Cli;

/// <summary>
/// One `speculators` verb. Implementations live in Commands/ and are discovered by reflection,
/// so adding a verb never touches Program.cs. Verbs are thin: parse, call the library, print.
/// </summary>
public interface ICliVerb
{
    Command Build();
}
