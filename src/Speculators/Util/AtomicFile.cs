namespace Speculators.Util;

/// <summary>
/// Atomic file writes: write <c>name.tmp</c>, flush to disk, then rename over the final name.
/// A killed process never leaves a half-written file under a final name.
/// </summary>
public static class AtomicFile
{
    /// <summary>Temporary sibling path used while writing <paramref name="path"/>.</summary>
    public static string TempPathFor(string path) => path + ".tmp";

    /// <summary>Writes through <paramref name="write"/> into a temp file, fsyncs, renames.</summary>
    public static void Write(string path, Action<FileStream> write)
    {
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        string tmp = TempPathFor(full);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                write(fs);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { if (File.Exists(tmp)) File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    public static void WriteAllBytes(string path, ReadOnlySpan<byte> bytes)
    {
        byte[] copy = bytes.ToArray();
        Write(path, fs => fs.Write(copy));
    }

    public static void WriteAllText(string path, string text) =>
        WriteAllBytes(path, new System.Text.UTF8Encoding(false).GetBytes(text));
}
