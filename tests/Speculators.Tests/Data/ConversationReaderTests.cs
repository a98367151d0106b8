using System.IO.Compression;
using System.Text;
using System.Text.Json.Nodes;
using Speculators.Data;

namespace Speculators.Tests.Data;

public class ConversationReaderTests
{
    /// <summary>Counts bytes handed out, to prove a reader streams.</summary>
    sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead;
        public override int Read(byte[] buffer, int offset, int count) { int n = inner.Read(buffer, offset, count); BytesRead += n; return n; }
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        protected override void Dispose(bool disposing) { if (disposing) inner.Dispose(); base.Dispose(disposing); }
    }

    [Fact]
    public void JsonLinesReportFileAndLineForMalformedRows()
    {
        using var dir = new TempDir();
        string path = dir.File("d.jsonl");
        File.WriteAllText(path, "{\"conversations\": []}\n\n{\"conversations\": [\n[1, 2]\n{\"a\": 1}\r\n");
        var recs = ConversationReader.Read(path).ToList();
        Assert.Equal(4, recs.Count);
        Assert.True(recs[0].IsValid);
        Assert.Equal($"{path}:1", recs[0].Location);
        Assert.False(recs[1].IsValid);
        Assert.Equal(3, recs[1].Line);
        Assert.StartsWith("malformed JSON", recs[1].Error);
        Assert.Contains($"{path}:3", recs[1].ToString());
        Assert.Contains("array", recs[2].Error);
        Assert.Equal(4, recs[2].Line);
        Assert.True(recs[3].IsValid);
        Assert.Equal(5, recs[3].Line);
    }

    static string ElementJson(int i) =>
        $"  {{\n    \"id\": {i},\n    \"conversations\": [{{\"from\": \"human\", \"value\": \"question {i} {new string('x', 150)}\"}}, {{\"from\": \"gpt\", \"value\": \"answer {i}\"}}]\n  }}";

    [Fact]
    public void LargeJsonArrayIsStreamedElementByElement()
    {
        using var dir = new TempDir();
        string path = dir.File("big.json");
        const int count = 20_000;
        using (var w = new StreamWriter(path, false, new UTF8Encoding(false)))
        {
            w.Write("[\n");
            for (int i = 0; i < count; i++) { w.Write(ElementJson(i)); w.Write(i + 1 < count ? ",\n" : "\n"); }
            w.Write("]\n");
        }
        long size = new FileInfo(path).Length;
        Assert.True(size > 4_000_000, $"fixture is {size} bytes");

        using var counting = new CountingStream(File.OpenRead(path));
        using var e = ConversationReader.ReadJsonArray(counting, path).GetEnumerator();
        Assert.True(e.MoveNext());
        Assert.Equal(0, (int)e.Current.Row!["id"]!);
        Assert.Equal(2, e.Current.Line); // the first element starts on line 2
        Assert.True(counting.BytesRead < 256 * 1024, $"read {counting.BytesRead} bytes of {size} to get the first element");
        int n = 1;
        long lastLine = 0;
        while (e.MoveNext())
        {
            Assert.True(e.Current.IsValid);
            Assert.Equal(n, (int)e.Current.Row!["id"]!);
            lastLine = e.Current.Line!.Value;
            n++;
        }
        Assert.Equal(count, n);
        Assert.Equal(2 + 4L * (count - 1), lastLine); // each element spans 4 lines
        // The file API chooses the array reader by the first byte.
        Assert.Equal(count, ConversationReader.Read(path).Count());
    }

    [Fact]
    public void JsonArrayBrokenMidwayYieldsEarlierElementsThenOneError()
    {
        using var dir = new TempDir();
        string path = dir.File("broken.json");
        File.WriteAllText(path, "[\n" + ElementJson(0) + ",\n" + ElementJson(1) + ",\n  {\"id\": 2, \"conversations\": [}\n]");
        var recs = ConversationReader.Read(path).ToList();
        Assert.Equal(3, recs.Count);
        Assert.True(recs[0].IsValid && recs[1].IsValid);
        Assert.False(recs[2].IsValid);
        Assert.Contains("malformed JSON", recs[2].Error);
        Assert.Equal(10, recs[2].Line);
        Assert.StartsWith($"{path}:10", recs[2].Location);

        File.WriteAllText(dir.File("cut.json"), "[" + ElementJson(0) + ", {\"id\": 1, \"conv");
        var cut = ConversationReader.Read(dir.File("cut.json")).ToList();
        Assert.Equal(2, cut.Count);
        Assert.True(cut[0].IsValid);
        Assert.False(cut[1].IsValid);
        Assert.Contains("rest of this file is skipped", cut[1].Error);
    }

    [Fact]
    public void JsonFilesMayBeLinesColumnsOrOneObject()
    {
        using var dir = new TempDir();
        File.WriteAllText(dir.File("lines.json"), "{\"a\": 1}\n{\"a\": 2}\n");
        Assert.Equal(new[] { 1, 2 }, ConversationReader.Read(dir.File("lines.json")).Select(r => (int)r.Row!["a"]!).ToArray());
        File.WriteAllText(dir.File("cols.json"), "{\n \"a\": [1, 2, 3],\n \"b\": [\"x\", \"y\", null]\n}");
        var cols = ConversationReader.Read(dir.File("cols.json")).ToList();
        Assert.Equal(3, cols.Count);
        Assert.Equal("y", (string)cols[1].Row!["b"]!);
        Assert.Null(cols[2].Row!["b"]);
        File.WriteAllText(dir.File("one.json"), "{\n \"conversations\": [\n  {\"from\": \"human\", \"value\": \"hi\"}\n ]\n}");
        var one = Assert.Single(ConversationReader.Read(dir.File("one.json")));
        Assert.IsType<JsonArray>(one.Row!["conversations"]);
    }

    [Fact]
    public void DirectoriesAreReadRecursivelyInOrderSkippingMetadata()
    {
        using var dir = new TempDir();
        Directory.CreateDirectory(dir.File("sub"));
        Directory.CreateDirectory(dir.File(".cache"));
        File.WriteAllText(dir.File("b.jsonl"), "{\"n\": 2}\n");
        File.WriteAllText(dir.File("a.jsonl"), "{\"n\": 1}\n");
        File.WriteAllText(dir.File("sub", "c.json"), "[{\"n\": 3}]");
        File.WriteAllText(dir.File(".cache", "x.jsonl"), "{\"n\": 99}\n");
        File.WriteAllText(dir.File("dataset_infos.json"), "{\"default\": {}}");
        File.WriteAllText(dir.File("README.md"), "# readme");
        using (var gz = new GZipStream(File.Create(dir.File("d.jsonl.gz")), CompressionLevel.Fastest))
            gz.Write("{\"n\": 4}\n"u8);
        Assert.Equal(new[] { 1, 2, 4, 3 }, ConversationReader.Read(dir.Path).Select(r => (int)r.Row!["n"]!).ToArray());
        Directory.CreateDirectory(dir.File("emptydir"));
        Assert.Contains("no data files", Assert.Throws<SpeculatorsException>(() => ConversationReader.ListFiles(dir.File("emptydir"))).Message);
        Assert.Contains("unsupported", Assert.Throws<SpeculatorsException>(() => ConversationReader.ListFiles(dir.File("README.md"))).Message);
    }

    [Fact]
    public void ParquetRowsStreamByRowGroup()
    {
        string path = DataFixtures.Path("conversations_mixed.parquet");
        var recs = ConversationReader.Read(path).ToList();
        Assert.Equal(5, recs.Count);
        Assert.Equal($"{path} row 4", recs[4].Location);
        var turns = (JsonArray)recs[1].Row!["conversations"]!;
        Assert.Equal("system", (string)turns[0]!["role"]!);
        Assert.Equal("Be brief.", (string)turns[0]!["content"]!);
        Assert.Equal("Hello 👋", (string)((JsonArray)recs[0].Row!["conversations"]!)[1]!["value"]!);
        Assert.Equal("[{\"type\": \"function\", \"function\": {\"name\": \"add\"}}]", (string)recs[1].Row!["tools"]!);
    }

    [Fact]
    public void TruncatedParquetAndArrowNameTheFile()
    {
        using var dir = new TempDir();
        byte[] pq = File.ReadAllBytes(DataFixtures.Path("conversations_mixed.parquet"));
        File.WriteAllBytes(dir.File("cut.parquet"), pq[..(pq.Length - 100)]);
        var e = Assert.Throws<SpeculatorsException>(() => ConversationReader.Read(dir.File("cut.parquet")).ToList());
        Assert.Contains("cut.parquet", e.Message);
        byte[] arrow = File.ReadAllBytes(DataFixtures.Path("multi", "data-00000-of-00002.arrow"));
        File.WriteAllBytes(dir.File("cut.arrow"), arrow[..(arrow.Length - 300)]);
        var e2 = Assert.Throws<SpeculatorsException>(() => ConversationReader.Read(dir.File("cut.arrow")).ToList());
        Assert.Contains("cut.arrow", e2.Message);
    }

    [Fact]
    public void ArrowShardsAndSavedDatasetDirectoriesAreReadAsRows()
    {
        var recs = ConversationReader.Read(DataFixtures.Path("multi")).ToList();
        Assert.Equal(9, recs.Count);
        var r7 = recs[7].Row!;
        Assert.Equal("q7", (string)r7["messages"]![0]!["content"]!);
        Assert.Equal("assistant", (string)r7["messages"]![1]!["role"]!);
        Assert.Equal(7000L, (long)r7["input_ids"]![0]!);
        Assert.Equal($"{DataFixtures.Path("multi", "data-00001-of-00002.arrow")} row 2", recs[7].Location);
    }
}
