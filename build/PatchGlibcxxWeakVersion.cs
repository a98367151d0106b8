// MSBuild inline task (see Directory.Build.targets): sets VER_FLG_WEAK on the GLIBCXX_3.4.32
// entry of the ELF .gnu.version_r section. Idempotent; changes at most one byte per file.
using System;
using System.IO;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public class PatchGlibcxxWeakVersion : Task
{
    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();

    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;
    const string Wanted = "GLIBCXX_3.4.32";

    public override bool Execute()
    {
        foreach (var item in Files)
        {
            string path = item.ItemSpec;
            try
            {
                string result = Patch(path);
                Log.LogMessage(MessageImportance.Low, "PatchGlibcxxWeakVersion: " + path + ": " + result);
            }
            catch (Exception e)
            {
                Log.LogWarning("PatchGlibcxxWeakVersion: could not patch " + path + ": " + e.Message);
            }
        }
        return true;
    }

    static string Patch(string path)
    {
        byte[] b = File.ReadAllBytes(path);
        if (b.Length < 64 || b[0] != 0x7f || b[1] != (byte)'E' || b[2] != (byte)'L' || b[3] != (byte)'F')
            return "not an ELF file";
        if (b[4] != 2 || b[5] != 1) return "not a little-endian ELF64 file";
        ulong shoff = BitConverter.ToUInt64(b, 0x28);
        ushort shentsize = BitConverter.ToUInt16(b, 0x3A);
        ushort shnum = BitConverter.ToUInt16(b, 0x3C);
        for (int s = 0; s < shnum; s++)
        {
            long sh = (long)shoff + (long)s * shentsize;
            uint type = BitConverter.ToUInt32(b, (int)sh + 4);
            if (type != ShtGnuVerneed) continue;
            long off = (long)BitConverter.ToUInt64(b, (int)sh + 0x18);
            uint link = BitConverter.ToUInt32(b, (int)sh + 0x28);
            uint count = BitConverter.ToUInt32(b, (int)sh + 0x2C);
            long strSh = (long)shoff + (long)link * shentsize;
            long strOff = (long)BitConverter.ToUInt64(b, (int)strSh + 0x18);
            long vn = off;
            for (uint i = 0; i < count; i++)
            {
                ushort cnt = BitConverter.ToUInt16(b, (int)vn + 2);
                uint aux = BitConverter.ToUInt32(b, (int)vn + 8);
                uint next = BitConverter.ToUInt32(b, (int)vn + 12);
                long va = vn + aux;
                for (int j = 0; j < cnt; j++)
                {
                    ushort flags = BitConverter.ToUInt16(b, (int)va + 4);
                    uint name = BitConverter.ToUInt32(b, (int)va + 8);
                    uint vnext = BitConverter.ToUInt32(b, (int)va + 12);
                    if (ReadCString(b, strOff + name) == Wanted)
                    {
                        if ((flags & VerFlgWeak) != 0) return "already weak";
                        flags |= VerFlgWeak;
                        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write))
                        {
                            fs.Position = va + 4;
                            fs.Write(BitConverter.GetBytes(flags), 0, 2);
                        }
                        return "patched";
                    }
                    va += vnext;
                }
                vn += next;
            }
        }
        return "no " + Wanted + " requirement";
    }

    static string ReadCString(byte[] b, long at)
    {
        long end = at;
        while (end < b.Length && b[end] != 0) end++;
        return Encoding.ASCII.GetString(b, (int)at, (int)(end - at));
    }
}
