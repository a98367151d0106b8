namespace Speculators.Hub;

/// <summary>
/// An exclusive lock on <c>.locks/{repo folder}/{etag}.lock</c>, the file huggingface_hub locks with
/// <c>filelock</c> (flock) while it downloads and links a blob. .NET takes flock(LOCK_EX) for
/// <see cref="FileShare.None"/> on Unix, so Python and .NET processes exclude each other.
/// Best effort, as in huggingface_hub: correctness rests on the atomic rename of the finished blob.
/// </summary>
internal sealed class CacheLock : IDisposable
{
    readonly FileStream? _stream;

    CacheLock(FileStream? stream) { _stream = stream; }

    public static CacheLock Acquire(string path)
    {
        try { Directory.CreateDirectory(Path.GetDirectoryName(path)!); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return new CacheLock(null); }
        var waited = System.Diagnostics.Stopwatch.StartNew();
        var nextNote = TimeSpan.FromSeconds(10);
        while (true)
        {
            try
            {
                return new CacheLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
            }
            catch (UnauthorizedAccessException)
            {
                return new CacheLock(null); // read-only cache folder: proceed unlocked, like a soft lock
            }
            catch (IOException) when (File.Exists(path))
            {
                if (waited.Elapsed >= nextNote)
                {
                    Util.Log.Info($"waiting for {path}: another process is downloading the same file");
                    nextNote += TimeSpan.FromSeconds(10);
                }
                Thread.Sleep(100);
            }
            catch (IOException)
            {
                return new CacheLock(null);
            }
        }
    }

    public void Dispose() => _stream?.Dispose();
}
