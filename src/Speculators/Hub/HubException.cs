namespace Speculators.Hub;

/// <summary>What went wrong talking to the hub (or not finding a file in the cache).</summary>
public enum HubErrorKind
{
    /// <summary>Offline mode is on and the file is not in the cache.</summary>
    Offline,
    /// <summary>The endpoint could not be reached (connection refused, DNS, timeout, dropped connection).</summary>
    Network,
    /// <summary>HTTP 401: the repository does not exist, is private, or the token was missing or rejected.</summary>
    Unauthorized,
    /// <summary>A gated repository whose terms the token's user has not accepted (X-Error-Code GatedRepo).</summary>
    Gated,
    /// <summary>HTTP 403 without a more specific code.</summary>
    Forbidden,
    RepoNotFound,
    RevisionNotFound,
    EntryNotFound,
    /// <summary>HTTP 5xx / 429 from the hub.</summary>
    Server,
    /// <summary>The server does not answer like the hub (missing X-Repo-Commit, ETag or size; bad JSON).</summary>
    BadResponse,
    /// <summary>A downloaded file does not have the expected size or hash.</summary>
    Integrity,
}

/// <summary>
/// A hub or cache error with a message a user can act on (which repo/file/revision, which endpoint,
/// which cache directory, which environment variable to set). Never carries a stack trace to the user:
/// it is a <see cref="SpeculatorsException"/>.
/// </summary>
public sealed class HubException : SpeculatorsException
{
    public HubException(HubErrorKind kind, string message, int? statusCode = null, Exception? inner = null)
        : base(message, inner!)
    {
        Kind = kind;
        StatusCode = statusCode;
    }

    public HubErrorKind Kind { get; }

    /// <summary>The HTTP status, when the error came from an HTTP answer.</summary>
    public int? StatusCode { get; }

    /// <summary>
    /// Errors after which huggingface_hub falls back to the cache: offline, unreachable, 5xx, auth and
    /// repo-not-found answers, odd answers. Not a missing revision or file of a reachable repo.
    /// </summary>
    internal bool AllowsCacheFallback => Kind is not (HubErrorKind.RevisionNotFound or HubErrorKind.EntryNotFound or HubErrorKind.Integrity);
}
