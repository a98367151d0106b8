namespace Speculators.Hub;

/// <summary>
/// Configuration of a <see cref="HubClient"/>. <see cref="FromEnvironment"/> reads the same
/// variables as huggingface_hub (constants.py), so both share one cache and one token.
/// </summary>
public sealed record HubSettings
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Hub base URL without a trailing slash (HF_ENDPOINT).</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Bearer token sent to the hub, or null (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, token file).</summary>
    public string? Token { get; init; }

    /// <summary>Where the token came from, for error messages ("HF_TOKEN", a token file path, ...).</summary>
    public string? TokenSource { get; init; }

    /// <summary>The hub cache directory (HF_HUB_CACHE, HUGGINGFACE_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub).</summary>
    public required string CacheDir { get; init; }

    /// <summary>Never touch the network (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE).</summary>
    public bool Offline { get; init; }

    /// <summary>Dataset repositories only: HF_DATASETS_OFFLINE, the datasets library's own switch.</summary>
    public bool DatasetsOffline { get; init; }

    /// <summary>Copy blobs into snapshots instead of symlinking (HF_HUB_DISABLE_SYMLINKS).</summary>
    public bool DisableSymlinks { get; init; }

    /// <summary>Timeout of metadata (HEAD) and API calls (HF_HUB_ETAG_TIMEOUT, default 10 s).</summary>
    public TimeSpan EtagTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait for the next bytes of a download (HF_HUB_DOWNLOAD_TIMEOUT, default 10 s).</summary>
    public TimeSpan DownloadTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How many times an interrupted transfer is resumed without receiving any new data.</summary>
    public int MaxResumeAttempts { get; init; } = 5;

    /// <summary>Pause before resuming an interrupted transfer.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Files downloaded at the same time by <see cref="HubClient.DownloadFiles"/> (huggingface_hub's snapshot_download uses 8).</summary>
    public int MaxParallelDownloads { get; init; } = 8;

    /// <summary>Show download progress (Util.Progress, bytes).</summary>
    public bool ShowProgress { get; init; } = true;

    /// <summary>HTTP handler to use instead of the default one (tests, proxies). Redirects must not be followed by it.</summary>
    public HttpMessageHandler? Handler { get; init; }

    /// <summary>Reads the settings from the process environment.</summary>
    public static HubSettings FromEnvironment() => FromEnvironment(HubEnvironment.Process);

    /// <summary>Reads the settings from <paramref name="env"/> with huggingface_hub's rules and precedence.</summary>
    public static HubSettings FromEnvironment(HubEnvironment env)
    {
        string hfHome = HfHome(env);
        string cache = NonEmpty(env.Get("HF_HUB_CACHE")) ?? NonEmpty(env.Get("HUGGINGFACE_HUB_CACHE")) ?? Path.Combine(hfHome, "hub");
        cache = env.ExpandPath(cache);

        string endpoint = (NonEmpty(env.Get("HF_ENDPOINT")) ?? DefaultEndpoint).TrimEnd('/');

        string? token = null, tokenSource = null;
        if (!HubEnvironment.IsTrue(env.Get("HF_HUB_DISABLE_IMPLICIT_TOKEN")))
        {
            // get_token(): HF_TOKEN (then legacy HUGGING_FACE_HUB_TOKEN), then the token file.
            string? envName = NonEmpty(env.Get("HF_TOKEN")) is not null ? "HF_TOKEN"
                : NonEmpty(env.Get("HUGGING_FACE_HUB_TOKEN")) is not null ? "HUGGING_FACE_HUB_TOKEN" : null;
            if (envName is not null)
            {
                string cleaned = HubEnvironment.CleanToken(env.Get(envName));
                if (cleaned.Length > 0) { token = cleaned; tokenSource = envName; }
            }
            if (token is null)
            {
                string tokenPath = env.ExpandPath(NonEmpty(env.Get("HF_TOKEN_PATH")) ?? Path.Combine(hfHome, "token"));
                try
                {
                    if (File.Exists(tokenPath))
                    {
                        string cleaned = HubEnvironment.CleanToken(File.ReadAllText(tokenPath));
                        if (cleaned.Length > 0) { token = cleaned; tokenSource = tokenPath; }
                    }
                }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }

        // `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`: the first non-empty one decides.
        bool offline = HubEnvironment.IsTrue(NonEmpty(env.Get("HF_HUB_OFFLINE")) ?? env.Get("TRANSFORMERS_OFFLINE"));

        return new HubSettings
        {
            Endpoint = endpoint,
            Token = token,
            TokenSource = tokenSource,
            CacheDir = cache,
            Offline = offline,
            DatasetsOffline = HubEnvironment.IsTrue(env.Get("HF_DATASETS_OFFLINE")),
            DisableSymlinks = HubEnvironment.IsTrue(env.Get("HF_HUB_DISABLE_SYMLINKS")),
            EtagTimeout = TimeSpan.FromSeconds(PositiveOr(env.GetInt("HF_HUB_ETAG_TIMEOUT"), 10)),
            DownloadTimeout = TimeSpan.FromSeconds(PositiveOr(env.GetInt("HF_HUB_DOWNLOAD_TIMEOUT"), 10)),
        };
    }

    /// <summary>HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (with ~ and $VARS expanded).</summary>
    public static string HfHome(HubEnvironment env)
    {
        string home = NonEmpty(env.Get("HF_HOME"))
            ?? Path.Combine(NonEmpty(env.Get("XDG_CACHE_HOME")) ?? Path.Combine(env.HomeDirectory, ".cache"), "huggingface");
        return env.ExpandPath(home);
    }

    static string? NonEmpty(string? s) => string.IsNullOrEmpty(s) ? null : s;
    static int PositiveOr(int? v, int fallback) => v is > 0 ? v.Value : fallback;
}
