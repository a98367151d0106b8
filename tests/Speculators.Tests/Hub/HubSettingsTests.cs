using Speculators.Hub;

namespace Speculators.Tests.Hub;

public class HubSettingsTests
{
    static HubSettings From(Dictionary<string, string> vars, string home = "/home/u") =>
        HubSettings.FromEnvironment(HubEnvironment.FromDictionary(vars, home));

    [Theory]
    [InlineData("", "/home/u/.cache/huggingface/hub")]
    [InlineData("XDG_CACHE_HOME=/x", "/x/huggingface/hub")]
    [InlineData("XDG_CACHE_HOME=/x;HF_HOME=/hf", "/hf/hub")]
    [InlineData("HF_HOME=/hf;HUGGINGFACE_HUB_CACHE=/legacy", "/legacy")]
    [InlineData("HF_HOME=/hf;HUGGINGFACE_HUB_CACHE=/legacy;HF_HUB_CACHE=/new", "/new")]
    [InlineData("HF_HOME=/hf;HF_HUB_CACHE=/new", "/new")]
    [InlineData("HF_HOME=~/hfh", "/home/u/hfh/hub")]
    [InlineData("BASE=/b;HF_HOME=$BASE/hf", "/b/hf/hub")]
    [InlineData("BASE=/b;HF_HUB_CACHE=${BASE}/c", "/b/c")]
    [InlineData("HF_HOME=", "/home/u/.cache/huggingface/hub")]
    public void CacheDirectoryPrecedence(string vars, string expected)
    {
        var dict = vars.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(kv => kv.Split('=', 2)).ToDictionary(p => p[0], p => p[1]);
        Assert.Equal(expected, From(dict).CacheDir);
    }

    [Theory]
    [InlineData(null, null, false)]
    [InlineData("1", null, true)]
    [InlineData("ON", null, true)]
    [InlineData("yes", null, true)]
    [InlineData("True", null, true)]
    [InlineData("0", null, false)]
    [InlineData("false", null, false)]
    [InlineData(null, "1", true)]
    [InlineData("", "1", true)]
    [InlineData("0", "1", false)] // `HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE`: the first non-empty value decides
    public void OfflineSwitches(string? hub, string? transformers, bool expected)
    {
        var vars = new Dictionary<string, string>();
        if (hub is not null) vars["HF_HUB_OFFLINE"] = hub;
        if (transformers is not null) vars["TRANSFORMERS_OFFLINE"] = transformers;
        Assert.Equal(expected, From(vars).Offline);
    }

    [Fact]
    public void EndpointAndTimeouts()
    {
        var d = From(new());
        Assert.Equal("https://huggingface.co", d.Endpoint);
        Assert.Equal(TimeSpan.FromSeconds(10), d.EtagTimeout);
        var s = From(new() { ["HF_ENDPOINT"] = "http://127.0.0.1:9/", ["HF_HUB_ETAG_TIMEOUT"] = "3", ["HF_HUB_DOWNLOAD_TIMEOUT"] = "60", ["HF_HUB_DISABLE_SYMLINKS"] = "1" });
        Assert.Equal("http://127.0.0.1:9", s.Endpoint);
        Assert.Equal(TimeSpan.FromSeconds(3), s.EtagTimeout);
        Assert.Equal(TimeSpan.FromSeconds(60), s.DownloadTimeout);
        Assert.True(s.DisableSymlinks);
        Assert.True(From(new() { ["HF_DATASETS_OFFLINE"] = "1" }).DatasetsOffline);
    }

    [Fact]
    public void TokenPrecedence()
    {
        using var dir = new TempDir();
        string hfHome = dir.File("hf");
        Directory.CreateDirectory(hfHome);
        File.WriteAllText(Path.Combine(hfHome, "token"), "  hf_file\r\n");
        File.WriteAllText(dir.File("other_token"), "hf_other\n");
        var baseVars = new Dictionary<string, string> { ["HF_HOME"] = hfHome };

        var fromFile = From(baseVars);
        Assert.Equal("hf_file", fromFile.Token);
        Assert.Equal(Path.Combine(hfHome, "token"), fromFile.TokenSource);
        Assert.Equal("hf_other", From(new(baseVars) { ["HF_TOKEN_PATH"] = dir.File("other_token") }).Token);
        Assert.Equal("hf_legacy", From(new(baseVars) { ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy" }).Token);
        var env = From(new(baseVars) { ["HF_TOKEN"] = " hf_env\n", ["HUGGING_FACE_HUB_TOKEN"] = "hf_legacy" });
        Assert.Equal("hf_env", env.Token);
        Assert.Equal("HF_TOKEN", env.TokenSource);
        Assert.Equal("hf_file", From(new(baseVars) { ["HF_TOKEN"] = "" }).Token);
        Assert.Null(From(new(baseVars) { ["HF_TOKEN"] = "hf_env", ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1" }).Token);
        Assert.Null(From(new() { ["HF_HOME"] = dir.File("nowhere") }).Token);
    }
}
