namespace Speculators.Hub;

/// <summary>
/// Turns what a user passes as a model (a local directory, or a Hugging Face id) into a local
/// directory holding config.json and the weights. Every verb that takes a model goes through here.
/// </summary>
public static partial class ModelLocator
{
    /// <summary>Resolves <paramref name="spec"/> to an existing local directory.</summary>
    public static string Resolve(string spec)
    {
        string? local = ResolveLocal(spec);
        if (local is not null) return local;
        using var client = HubClient.FromEnvironment();
        return ResolveFromHub(spec, client);
    }

    /// <summary>As <see cref="Resolve(string)"/>, with the hub client (endpoint, token, cache, offline) given.</summary>
    public static string Resolve(string spec, HubClient client)
    {
        string? local = ResolveLocal(spec);
        return local ?? ResolveFromHub(spec, client);
    }

    static string? ResolveLocal(string spec)
    {
        if (string.IsNullOrWhiteSpace(spec)) throw new SpeculatorsException("No model given: pass a local directory or a Hugging Face model id.");
        if (Directory.Exists(spec)) return Path.GetFullPath(spec);
        if (File.Exists(spec))
            throw new SpeculatorsException($"Model '{spec}' is a file; expected a directory with config.json (or a Hugging Face model id).");
        return null;
    }
}
