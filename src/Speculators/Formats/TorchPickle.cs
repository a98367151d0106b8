using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using Speculators.Util;

namespace Speculators.Formats;

/// <summary>
/// <c>torch.save</c> / <c>torch.load</c> for one object shape: a plain <c>dict[int, int]</c> (the
/// token-frequency file <c>token_freq.pt</c>). Follows hf_formats.md §4:
/// <list type="bullet">
/// <item>a zip whose entries all live in one folder (the archive name, here the file's base name):
/// <c>data.pkl</c> first, then <c>.format_version</c> = 1, <c>.storage_alignment</c> = 64,
/// <c>byteorder</c> = little, <c>version</c> = "3\n"; stored (no compression); no tensor records;</item>
/// <item><c>data.pkl</c> is exactly what CPython's pickler writes at protocol 2 (torch's default):
/// PROTO 2, EMPTY_DICT, BINPUT 0, MARK … SETITEMS batches of 1000 (SETITEM for a single item),
/// BININT1/BININT2/BININT/LONG1 integers, STOP. <c>torch.load(weights_only=True)</c> accepts it.</item>
/// </list>
/// The reader accepts what Python writes (data descriptors, 64-byte padding extras, any folder name,
/// deflated entries) and a protocol 0–5 pickle subset: dicts (also <c>collections.OrderedDict</c> /
/// <c>Counter</c>), ints of every encoding, memo opcodes, frames.
/// </summary>
public static class TorchPickle
{
    const int BatchSize = 1000;

    /// <summary>Pickle bytes (protocol 2) of a dict[int, int] with items in the given order.</summary>
    public static byte[] PickleIntDict(IReadOnlyList<KeyValuePair<long, long>> items)
    {
        var ms = new MemoryStream();
        ms.WriteByte(0x80); ms.WriteByte(2);       // PROTO 2
        ms.WriteByte((byte)'}');                    // EMPTY_DICT
        ms.WriteByte((byte)'q'); ms.WriteByte(0);  // BINPUT 0
        int n = items.Count;
        if (n == 1)
        {
            WriteInt(ms, items[0].Key);
            WriteInt(ms, items[0].Value);
            ms.WriteByte((byte)'s');                // SETITEM
        }
        else if (n > 1)
        {
            // CPython batch_dict: MARK, up to 1000 pairs, SETITEMS — repeated while the batch was full
            // (so exactly 1000·k items end with an empty MARK SETITEMS).
            int i = 0;
            while (true)
            {
                ms.WriteByte((byte)'(');            // MARK
                int count = 0;
                for (; count < BatchSize && i < n; count++, i++)
                {
                    WriteInt(ms, items[i].Key);
                    WriteInt(ms, items[i].Value);
                }
                ms.WriteByte((byte)'u');            // SETITEMS
                if (count != BatchSize) break;
            }
        }
        ms.WriteByte((byte)'.');                    // STOP
        return ms.ToArray();
    }

    static void WriteInt(Stream s, long v)
    {
        if (v >= 0 && v <= 0xFF) { s.WriteByte((byte)'K'); s.WriteByte((byte)v); return; }
        if (v >= 0 && v <= 0xFFFF) { s.WriteByte((byte)'M'); s.WriteByte((byte)v); s.WriteByte((byte)(v >> 8)); return; }
        if (v >= int.MinValue && v <= int.MaxValue)
        {
            Span<byte> b = stackalloc byte[4];
            BinaryPrimitives.WriteInt32LittleEndian(b, (int)v);
            s.WriteByte((byte)'J'); s.Write(b);
            return;
        }
        // LONG1: little-endian two's complement, minimal length (BigInteger gives exactly that).
        byte[] bytes = new BigInteger(v).ToByteArray();
        s.WriteByte(0x8A); s.WriteByte((byte)bytes.Length); s.Write(bytes);
    }

    /// <summary>The zip bytes of <c>torch.save(dict, "{archiveName}.pt")</c>.</summary>
    public static byte[] SaveIntDictBytes(IReadOnlyList<KeyValuePair<long, long>> items, string archiveName)
    {
        var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            Add(zip, archiveName + "/data.pkl", PickleIntDict(items));
            Add(zip, archiveName + "/.format_version", "1"u8.ToArray());
            Add(zip, archiveName + "/.storage_alignment", "64"u8.ToArray());
            Add(zip, archiveName + "/byteorder", "little"u8.ToArray());
            Add(zip, archiveName + "/version", "3\n"u8.ToArray());
        }
        return ms.ToArray();
    }

    static readonly DateTimeOffset FixedTime = new(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);

    static void Add(ZipArchive zip, string name, byte[] data)
    {
        var e = zip.CreateEntry(name, CompressionLevel.NoCompression);
        e.LastWriteTime = FixedTime;
        using var s = e.Open();
        s.Write(data);
    }

    /// <summary>Writes <paramref name="path"/> atomically as torch.save would (archive folder = base name).</summary>
    public static void SaveIntDict(string path, IReadOnlyList<KeyValuePair<long, long>> items)
    {
        string archive = Path.GetFileNameWithoutExtension(path);
        if (archive.Length == 0) archive = "archive";
        AtomicFile.WriteAllBytes(path, SaveIntDictBytes(items, archive));
    }

    /// <summary>Reads a <c>torch.save</c>d dict of ints; items in pickled order.</summary>
    public static List<KeyValuePair<long, long>> LoadIntDict(string path)
    {
        if (!File.Exists(path)) throw new SpeculatorsException($"{path}: file not found (expected a torch.save file).");
        using var fs = File.OpenRead(path);
        return LoadIntDict(fs, path);
    }

    public static List<KeyValuePair<long, long>> LoadIntDict(Stream stream, string name)
    {
        Span<byte> magic = stackalloc byte[4];
        int got = stream.ReadAtLeast(magic, 4, throwOnEndOfStream: false);
        if (got < 4 || magic[0] != 'P' || magic[1] != 'K' || magic[2] != 3 || magic[3] != 4)
            throw new SpeculatorsException($"{name}: not a torch zip file (expected PK\\x03\\x04; legacy torch.save files from torch < 1.6 are not supported).");
        stream.Position = 0;
        byte[] pickle;
        try
        {
            using var zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true);
            if (zip.Entries.Count == 0) throw new SpeculatorsException($"{name}: the zip archive is empty.");
            string first = zip.Entries[0].FullName;
            int slash = first.IndexOf('/');
            if (slash <= 0) throw new SpeculatorsException($"{name}: first zip entry '{first}' is not inside a folder (torch archives keep every record under one folder).");
            string prefix = first[..(slash + 1)];
            var entry = zip.GetEntry(prefix + "data.pkl")
                ?? throw new SpeculatorsException($"{name}: no '{prefix}data.pkl' record in the torch archive.");
            foreach (var e in zip.Entries)
                if (e.FullName.StartsWith(prefix + "data/", StringComparison.Ordinal))
                    throw new SpeculatorsException($"{name}: the archive holds tensor storage ('{e.FullName}'); expected a plain dict of Python ints.");
            using var es = entry.Open();
            using var buf = new MemoryStream();
            es.CopyTo(buf);
            pickle = buf.ToArray();
        }
        catch (InvalidDataException e)
        {
            throw new SpeculatorsException($"{name}: corrupt or truncated zip archive: {e.Message}", e);
        }
        return UnpickleIntDict(pickle, name);
    }

    sealed class Mark { public static readonly Mark Instance = new(); }
    sealed class Global(string module, string name) { public string Module = module; public string Name = name; public override string ToString() => Module + "." + Name; }
    sealed class PyDict { public readonly List<KeyValuePair<object, object>> Items = new(); }

    /// <summary>Interprets the pickle subset a dict of ints can use; anything else is an error naming the opcode.</summary>
    public static List<KeyValuePair<long, long>> UnpickleIntDict(byte[] data, string name)
    {
        var stack = new List<object>();
        var memo = new Dictionary<long, object>();
        int p = 0;
        object? result = null;

        byte U8() { if (p >= data.Length) throw Truncated(); return data[p++]; }
        ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || p + n > data.Length) throw Truncated();
            var s = data.AsSpan(p, (int)n); p += (int)n; return s;
        }
        SpeculatorsException Truncated() => new($"{name}: pickle data ends unexpectedly at byte {p}.");
        object Pop() { if (stack.Count == 0) throw new SpeculatorsException($"{name}: malformed pickle (stack underflow at byte {p})."); var o = stack[^1]; stack.RemoveAt(stack.Count - 1); return o; }
        List<object> PopToMark()
        {
            int m = stack.FindLastIndex(o => ReferenceEquals(o, Mark.Instance));
            if (m < 0) throw new SpeculatorsException($"{name}: malformed pickle (no MARK before byte {p}).");
            var items = stack.GetRange(m + 1, stack.Count - m - 1);
            stack.RemoveRange(m, stack.Count - m);
            return items;
        }
        string ReadLine()
        {
            int start = p;
            while (p < data.Length && data[p] != '\n') p++;
            if (p >= data.Length) throw Truncated();
            string s = Encoding.Latin1.GetString(data, start, p - start);
            p++;
            return s;
        }
        PyDict TargetDict(int at)
        {
            if (at < 0 || stack[at] is not PyDict d)
                throw new SpeculatorsException($"{name}: SETITEM(S) on {(at < 0 ? "nothing" : Describe(stack[at]))}; expected a dict.");
            return d;
        }

        while (result == null)
        {
            int opPos = p;
            byte op = U8();
            switch (op)
            {
                case 0x80: U8(); break;                                      // PROTO
                case 0x95: Take(8); break;                                   // FRAME
                case (byte)'}': stack.Add(new PyDict()); break;              // EMPTY_DICT
                case (byte)')': stack.Add(Array.Empty<object>()); break;     // EMPTY_TUPLE
                case (byte)']': stack.Add(new List<object>()); break;        // EMPTY_LIST
                case (byte)'(': stack.Add(Mark.Instance); break;             // MARK
                case (byte)'N': stack.Add(NoneValue); break;                 // NONE
                case 0x88: stack.Add(true); break;                           // NEWTRUE
                case 0x89: stack.Add(false); break;                          // NEWFALSE
                case (byte)'K': stack.Add((BigInteger)U8()); break;          // BININT1
                case (byte)'M': stack.Add((BigInteger)BinaryPrimitives.ReadUInt16LittleEndian(Take(2))); break; // BININT2
                case (byte)'J': stack.Add((BigInteger)BinaryPrimitives.ReadInt32LittleEndian(Take(4))); break;  // BININT
                case 0x8A: { int n = U8(); stack.Add(new BigInteger(Take(n), isUnsigned: false, isBigEndian: false)); break; } // LONG1
                case 0x8B: { int n = BinaryPrimitives.ReadInt32LittleEndian(Take(4)); stack.Add(new BigInteger(Take(n), isUnsigned: false, isBigEndian: false)); break; } // LONG4
                case (byte)'I':                                              // INT (protocol 0)
                    {
                        string s = ReadLine();
                        if (s == "01") stack.Add(true);
                        else if (s == "00") stack.Add(false);
                        else stack.Add(ParseBig(s, name));
                        break;
                    }
                case (byte)'L': stack.Add(ParseBig(ReadLine().TrimEnd('L'), name)); break; // LONG (protocol 0)
                case (byte)'q': memo[U8()] = Peek(stack, name); break;       // BINPUT
                case (byte)'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Take(4))] = Peek(stack, name); break; // LONG_BINPUT
                case (byte)'p': memo[long.Parse(ReadLine(), System.Globalization.CultureInfo.InvariantCulture)] = Peek(stack, name); break; // PUT
                case 0x94: memo[memo.Count] = Peek(stack, name); break;      // MEMOIZE
                case (byte)'h': stack.Add(MemoGet(memo, U8(), name)); break; // BINGET
                case (byte)'j': stack.Add(MemoGet(memo, BinaryPrimitives.ReadUInt32LittleEndian(Take(4)), name)); break; // LONG_BINGET
                case (byte)'g': stack.Add(MemoGet(memo, long.Parse(ReadLine(), System.Globalization.CultureInfo.InvariantCulture), name)); break; // GET
                case (byte)'s':                                              // SETITEM
                    {
                        var v = Pop(); var k = Pop();
                        TargetDict(stack.Count - 1).Items.Add(new(k, v));
                        break;
                    }
                case (byte)'u':                                              // SETITEMS
                    {
                        var items = PopToMark();
                        if (items.Count % 2 != 0) throw new SpeculatorsException($"{name}: SETITEMS with an odd number of stack items at byte {opPos}.");
                        var d = TargetDict(stack.Count - 1);
                        for (int i = 0; i < items.Count; i += 2) d.Items.Add(new(items[i], items[i + 1]));
                        break;
                    }
                case (byte)'t': stack.Add(PopToMark().ToArray()); break;     // TUPLE
                case 0x85: stack.Add(new[] { Pop() }); break;                // TUPLE1
                case 0x86: { var b = Pop(); var a = Pop(); stack.Add(new[] { a, b }); break; } // TUPLE2
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); stack.Add(new[] { a, b, c }); break; } // TUPLE3
                case (byte)'c':                                              // GLOBAL
                    {
                        string module = ReadLine(); string nm = ReadLine();
                        stack.Add(new Global(module, nm));
                        break;
                    }
                case (byte)'R':                                              // REDUCE
                case 0x81:                                                   // NEWOBJ
                    {
                        var args = Pop(); var fn = Pop();
                        stack.Add(CallDictLike(fn, args, name, opPos));
                        break;
                    }
                case (byte)'.': result = Pop(); break;                       // STOP
                default:
                    throw new SpeculatorsException(
                        $"{name}: unsupported pickle opcode 0x{op:X2} at byte {opPos}; expected a pickled dict of Python ints (as torch.save(dict) writes).");
            }
        }

        if (result is not PyDict dict)
            throw new SpeculatorsException($"{name}: the pickled object is {Describe(result)}; expected a dict of token id → count.");
        var list = new List<KeyValuePair<long, long>>(dict.Items.Count);
        foreach (var (k, v) in dict.Items)
        {
            if (k is not BigInteger bk || v is not BigInteger bv)
                throw new SpeculatorsException($"{name}: dict item {Describe(k)}: {Describe(v)} is not int: int.");
            if (bk < long.MinValue || bk > long.MaxValue || bv < long.MinValue || bv > long.MaxValue)
                throw new SpeculatorsException($"{name}: dict item {bk}: {bv} does not fit in 64 bits.");
            list.Add(new((long)bk, (long)bv));
        }
        return list;
    }

    static readonly object NoneValue = new();

    static object Peek(List<object> stack, string name) =>
        stack.Count > 0 ? stack[^1] : throw new SpeculatorsException($"{name}: malformed pickle (memo put on an empty stack).");

    static object MemoGet(Dictionary<long, object> memo, long key, string name) =>
        memo.TryGetValue(key, out var v) ? v : throw new SpeculatorsException($"{name}: malformed pickle (memo key {key} not set).");

    static BigInteger ParseBig(string s, string name) =>
        BigInteger.TryParse(s, System.Globalization.NumberStyles.AllowLeadingSign, System.Globalization.CultureInfo.InvariantCulture, out var v)
            ? v : throw new SpeculatorsException($"{name}: bad integer literal '{s}' in pickle.");

    static object CallDictLike(object fn, object args, string name, int at)
    {
        if (fn is Global g && g.Module == "collections" && (g.Name == "OrderedDict" || g.Name == "Counter")
            || fn is Global g2 && g2.Module is "builtins" or "__builtin__" && g2.Name == "dict")
        {
            var a = args as object[] ?? throw new SpeculatorsException($"{name}: call of {fn} at byte {at} without an argument tuple.");
            var d = new PyDict();
            if (a.Length == 0) return d;
            if (a.Length == 1 && a[0] is PyDict src) { d.Items.AddRange(src.Items); return d; }
            if (a.Length == 1 && a[0] is List<object> pairs)
            {
                foreach (var pair in pairs)
                    if (pair is object[] { Length: 2 } kv) d.Items.Add(new(kv[0], kv[1]));
                    else throw new SpeculatorsException($"{name}: {fn} at byte {at} built from a list that is not of pairs.");
                return d;
            }
            throw new SpeculatorsException($"{name}: {fn} at byte {at} called with unsupported arguments.");
        }
        throw new SpeculatorsException($"{name}: the pickle calls {fn} at byte {at}; only dict, collections.OrderedDict and collections.Counter are accepted for a token-frequency file.");
    }

    static string Describe(object? o) => o switch
    {
        null => "nothing",
        PyDict => "a dict",
        BigInteger b => "int " + b,
        bool b => b ? "True" : "False",
        object[] t => $"a tuple of {t.Length}",
        List<object> l => $"a list of {l.Count}",
        Global g => "global " + g,
        _ when ReferenceEquals(o, NoneValue) => "None",
        _ => o.GetType().Name,
    };
}
