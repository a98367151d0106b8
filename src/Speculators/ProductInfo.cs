using System.Reflection;

namespace Speculators;

/// <summary>Name and version recorded in checkpoints, stores and reports.</summary>
public static class ProductInfo
{
    public const string Name = "speculators-dotnet";

    public static string Version { get; } =
        typeof(ProductInfo).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? typeof(ProductInfo).Assembly.GetName().Version?.ToString() ?? "0.0.0";

    /// <summary>e.g. "speculators-dotnet 0.1.0".</summary>
    public static string NameAndVersion => $"{Name} {Version}";
}
