namespace Speculators.Hub;

/// <summary>The kinds of Hugging Face Hub repositories.</summary>
public enum RepoType
{
    Model,
    Dataset,
    Space,
}

public static class RepoTypeExtensions
{
    /// <summary>"model", "dataset", "space" (as huggingface_hub names them).</summary>
    public static string Name(this RepoType type) => type switch
    {
        RepoType.Model => "model",
        RepoType.Dataset => "dataset",
        RepoType.Space => "space",
        _ => throw new ArgumentOutOfRangeException(nameof(type)),
    };

    /// <summary>"models", "datasets", "spaces": the cache folder prefix and the API path segment.</summary>
    public static string Plural(this RepoType type) => type.Name() + "s";

    /// <summary>Prefix of file URLs: "" for models, "datasets/" and "spaces/" otherwise.</summary>
    public static string UrlPrefix(this RepoType type) => type == RepoType.Model ? "" : type.Plural() + "/";
}
