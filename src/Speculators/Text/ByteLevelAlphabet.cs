namespace Speculators.Text;

/// <summary>
/// GPT-2's reversible byte ↔ printable character table used by byte-level BPE (HF
/// <c>bytes_char</c>): printable Latin-1 bytes map to themselves, the other 68 bytes to
/// U+0100.. in byte order. All characters are in the BMP (one UTF-16 unit each).
/// </summary>
public static class ByteLevelAlphabet
{
    static readonly char[] ByteToCharTable = Build();
    static readonly short[] CharToByteTable = BuildReverse();

    static char[] Build()
    {
        var table = new char[256];
        int n = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            table[b] = printable ? (char)b : (char)(256 + n++);
        }
        return table;
    }

    static short[] BuildReverse()
    {
        var rev = new short[512];
        Array.Fill(rev, (short)-1);
        for (int b = 0; b < 256; b++) rev[ByteToCharTable[b]] = (short)b;
        return rev;
    }

    /// <summary>The character standing for byte <paramref name="b"/>.</summary>
    public static char ByteToChar(byte b) => ByteToCharTable[b];

    /// <summary>The byte a byte-level character stands for, or -1 if it is not one of the 256.</summary>
    public static int CharToByte(char c) => c < 512 ? CharToByteTable[c] : -1;

    /// <summary>The 256 characters in GPT-2's vocabulary order (printable bytes first, then the rest).</summary>
    public static IReadOnlyList<char> OrderedAlphabet { get; } = BuildOrdered();

    static char[] BuildOrdered()
    {
        var list = new List<char>();
        for (int b = 0; b < 256; b++)
            if (ByteToCharTable[b] == b) list.Add((char)b);
        for (int b = 0; b < 256; b++)
            if (ByteToCharTable[b] != b) list.Add(ByteToCharTable[b]);
        return list.ToArray();
    }
}
