namespace Speculators.Hub;

public static partial class ModelLocator
{
    // Hugging Face ids: the hub client (cache layout, downloads, offline mode) plugs in here.
    static string ResolveFromHub(string spec) =>
        throw new SpeculatorsException($"Model '{spec}' is not a local directory, and Hugging Face hub ids are not supported yet.");
}
