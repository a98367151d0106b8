using System.Text.Json.Nodes;
using Apache.Arrow;
using Apache.Arrow.Ipc;
using Apache.Arrow.Types;
using Speculators.Data;

namespace Speculators.Tests.Data;

public class PreparedDatasetTests
{
    // hf_formats.md §1.8: the exact bytes datasets 4.x writes (json.dump indent=2, no trailing newline).
    const string ExpectedDatasetInfo = """
        {
          "citation": "",
          "description": "",
          "features": {
            "input_ids": {
              "feature": {
                "dtype": "int64",
                "_type": "Value"
              },
              "_type": "List"
            },
            "loss_mask": {
              "feature": {
                "dtype": "int64",
                "_type": "Value"
              },
              "_type": "List"
            },
            "seq_len": {
              "dtype": "int64",
              "_type": "Value"
            }
          },
          "homepage": "",
          "license": ""
        }
        """;

    const string ExpectedState = """
        {
          "_data_files": [
            {
              "filename": "data-00000-of-00001.arrow"
            }
          ],
          "_fingerprint": "3f2c9a1b7d4e6f80",
          "_format_columns": null,
          "_format_kwargs": {},
          "_format_type": "torch",
          "_output_all_columns": false,
          "_split": null
        }
        """;

    const string ExpectedMetadata = "{\"info\": {\"features\": {\"input_ids\": {\"feature\": {\"dtype\": \"int64\", \"_type\": \"Value\"}, \"_type\": \"List\"}, \"loss_mask\": {\"feature\": {\"dtype\": \"int64\", \"_type\": \"Value\"}, \"_type\": \"List\"}, \"seq_len\": {\"dtype\": \"int64\", \"_type\": \"Value\"}}}}";

    static List<PreparedRow> RandomRows(int count, int seed, int maxLen = 40)
    {
        var rng = new Random(seed);
        var rows = new List<PreparedRow>();
        for (int i = 0; i < count; i++)
        {
            int n = i == 3 ? 0 : rng.Next(1, maxLen);
            var ids = new long[n];
            var mask = new long[n];
            for (int k = 0; k < n; k++) { ids[k] = rng.NextInt64(0, 200_000); mask[k] = rng.Next(0, 2); }
            rows.Add(new PreparedRow(ids, mask));
        }
        return rows;
    }

    static PreparedDatasetSummary Write(string dir, IEnumerable<PreparedRow> rows, PreparedDatasetWriterOptions? options = null)
    {
        using var w = new PreparedDatasetWriter(dir, options);
        foreach (var r in rows) w.Append(r);
        return w.Complete();
    }

    static void AssertRowsEqual(IReadOnlyList<PreparedRow> expected, PreparedDataset ds)
    {
        Assert.Equal(expected.Count, ds.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var row = ds.GetRow(i);
            Assert.Equal(expected[i].InputIds, row.InputIds);
            Assert.Equal(expected[i].LossMask, row.LossMask);
            Assert.Equal(expected[i].Length, ds.SeqLens[i]);
        }
    }

    [Fact]
    public void WriteThenReadBackIsIdentical()
    {
        using var tmp = new TempDir();
        var rows = RandomRows(2345, 1);
        var summary = Write(tmp.File("ds"), rows);
        Assert.Equal(new[] { "data-00000-of-00001.arrow" }, summary.ShardFiles);
        Assert.Equal(2345, summary.Rows);
        using var ds = PreparedDataset.Open(tmp.File("ds"));
        AssertRowsEqual(rows, ds);
        Assert.Equal(rows.Sum(r => (long)r.Length), ds.TotalTokens);
        Assert.Equal("torch", ds.FormatType);
        // Random access in any order, and span copies.
        var ids = new long[rows[1234].Length];
        ds.CopyInputIds(1234, ids);
        Assert.Equal(rows[1234].InputIds, ids);
        Assert.Throws<ArgumentOutOfRangeException>(() => ds.GetRow(2345));
        // No staging directory left behind.
        Assert.Equal(new[] { "ds" }, Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName).ToArray());
    }

    [Fact]
    public void JsonFilesAndSchemaAreExactlyWhatDatasetsWrites()
    {
        using var tmp = new TempDir();
        Write(tmp.File("ds"), RandomRows(1500, 2), new PreparedDatasetWriterOptions { Fingerprint = "3f2c9a1b7d4e6f80" });
        Assert.Equal(ExpectedDatasetInfo.ReplaceLineEndings("\n"), File.ReadAllText(tmp.File("ds", "dataset_info.json")));
        Assert.Equal(ExpectedState.ReplaceLineEndings("\n"), File.ReadAllText(tmp.File("ds", "state.json")));

        byte[] shard = File.ReadAllBytes(tmp.File("ds", "data-00000-of-00001.arrow"));
        // IPC stream, not file: continuation marker first, no ARROW1 magic, end-of-stream marker last.
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, shard[..4]);
        Assert.Equal(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0 }, shard[^8..]);
        using var reader = new ArrowStreamReader(new MemoryStream(shard));
        var schema = reader.Schema;
        Assert.Equal(new[] { "input_ids", "loss_mask", "seq_len" }, schema.FieldsList.Select(f => f.Name).ToArray());
        foreach (var name in new[] { "input_ids", "loss_mask" })
        {
            var field = schema.GetFieldByName(name);
            Assert.True(field.IsNullable);
            var list = Assert.IsType<ListType>(field.DataType);
            Assert.Equal("item", list.ValueField.Name);
            Assert.True(list.ValueField.IsNullable);
            Assert.IsType<Int64Type>(list.ValueDataType);
        }
        Assert.IsType<Int64Type>(schema.GetFieldByName("seq_len").DataType);
        Assert.Equal(ExpectedMetadata, schema.Metadata["huggingface"]);
        // The metadata parses to the same features as dataset_info.json.
        var info = JsonNode.Parse(File.ReadAllText(tmp.File("ds", "dataset_info.json")))!;
        Assert.True(JsonNode.DeepEquals(info["features"], JsonNode.Parse(ExpectedMetadata)!["info"]!["features"]));
        // Record batches of at most 1000 rows, seq_len column = list lengths.
        var sizes = new List<int>();
        while (reader.ReadNextRecordBatch() is { } batch)
        {
            sizes.Add(batch.Length);
            var ids = (ListArray)batch.Column(0);
            var seq = (Int64Array)batch.Column(2);
            for (int r = 0; r < batch.Length; r++) Assert.Equal(ids.GetValueLength(r), seq.GetValue(r));
        }
        Assert.Equal(new[] { 1000, 500 }, sizes);
    }

    [Fact]
    public void ShardsFollowTheDatasetsSizeRule()
    {
        using var tmp = new TempDir();
        var rows = RandomRows(2500, 3, maxLen: 12);
        const long max = 30_000;
        var summary = Write(tmp.File("ds"), rows, new PreparedDatasetWriterOptions { MaxShardBytes = max });
        // pyarrow Table.nbytes over 1000-row chunks: offsets 4·(n+1) per list column, 8 per value, 8 per seq_len.
        long nbytes = 0;
        for (int start = 0; start < rows.Count; start += 1000)
        {
            var chunk = rows.Skip(start).Take(1000).ToList();
            nbytes += 2L * 4 * (chunk.Count + 1) + 16L * chunk.Sum(r => r.Length) + 8L * chunk.Count;
        }
        int expectedShards = (int)Math.Min(rows.Count, nbytes / max + 1);
        Assert.True(expectedShards > 2);
        Assert.Equal(Enumerable.Range(0, expectedShards).Select(i => $"data-{i:D5}-of-{expectedShards:D5}.arrow"), summary.ShardFiles);
        // Contiguous, near-equal row counts (Dataset.shard(contiguous=True)).
        int div = rows.Count / expectedShards, mod = rows.Count % expectedShards;
        int seen = 0;
        for (int s = 0; s < expectedShards; s++)
        {
            using var one = new ArrowStreamReader(File.OpenRead(tmp.File("ds", summary.ShardFiles[s])));
            int n = 0;
            while (one.ReadNextRecordBatch() is { } b)
            {
                Assert.True(b.Length <= 1000);
                var ids = (ListArray)b.Column(0);
                var values = (Int64Array)ids.Values;
                for (int r = 0; r < b.Length; r++)
                {
                    var expected = rows[seen + n + r].InputIds;
                    Assert.Equal(expected, values.Values.Slice(ids.ValueOffsets[r], ids.GetValueLength(r)).ToArray());
                }
                n += b.Length;
            }
            Assert.Equal(div + (s < mod ? 1 : 0), n);
            seen += n;
        }
        using var ds = PreparedDataset.Open(tmp.File("ds"));
        AssertRowsEqual(rows, ds);
    }

    [Fact]
    public void ReadsAMultiShardDatasetWrittenByAnotherArrowImplementation()
    {
        // Written by apache-arrow (JS): 2 shards × 2 record batches, an extra 'messages' column, _format_type null.
        using var ds = PreparedDataset.Open(DataFixtures.Path("multi"));
        Assert.Equal(9, ds.Count);
        Assert.Null(ds.FormatType);
        Assert.Equal(2, ds.ShardPaths.Count);
        for (int r = 0; r < 9; r++)
        {
            int len = 1 + (r * 7) % 11;
            var row = ds.GetRow(r);
            Assert.Equal(Enumerable.Range(0, len).Select(k => (long)(r * 1000 + k * 37)), row.InputIds);
            Assert.Equal(Enumerable.Range(0, len).Select(k => k >= len / 2.0 ? 1L : 0L), row.LossMask);
            Assert.Equal(len, ds.SeqLens[r]);
        }
        using var i32 = PreparedDataset.Open(DataFixtures.Path("int32"));
        Assert.Equal(4, i32.Count);
        Assert.Equal(Enumerable.Range(0, 1 + 21 % 11).Select(k => (long)(3000 + k * 37)), i32.GetRow(3).InputIds);
        Assert.Equal("torch", i32.FormatType);
    }

    [Fact]
    public void CountsTokenFrequenciesOverTheDataset()
    {
        using var ds = PreparedDataset.Open(DataFixtures.Path("multi"));
        var f = ds.CountTokenFrequencies();
        long expected = 0;
        for (int r = 0; r < 9; r++) { int len = 1 + (r * 7) % 11; for (int k = 0; k < len; k++) if (k >= len / 2.0) expected++; }
        Assert.Equal(expected, f.Total);
        Assert.Equal(1, f[8000 + 37]); // row 8 (len 2): token at k = 1 is supervised
        Assert.Equal(0, f[8000]);
    }

    [Fact]
    public void AbortedWriteLeavesNothingAndExistingDatasetsNeedOverwrite()
    {
        using var tmp = new TempDir();
        using (var w = new PreparedDatasetWriter(tmp.File("ds")))
        {
            w.Append([1, 2, 3], [0, 1, 1]);
            // no Complete: as if the run was killed or failed
        }
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));

        Write(tmp.File("ds"), RandomRows(5, 4));
        File.WriteAllText(tmp.File("ds", "notes.txt"), "user file");
        File.WriteAllText(tmp.File("ds", "token_freq.json"), "{}");
        var e = Assert.Throws<SpeculatorsException>(() => new PreparedDatasetWriter(tmp.File("ds")));
        Assert.Contains("state.json", e.Message);
        Assert.Contains("--overwrite", e.Message);

        var rows = RandomRows(7, 5);
        Write(tmp.File("ds"), rows, new PreparedDatasetWriterOptions { Overwrite = true });
        using (var ds = PreparedDataset.Open(tmp.File("ds"))) AssertRowsEqual(rows, ds);
        Assert.Equal("user file", File.ReadAllText(tmp.File("ds", "notes.txt")));
        Assert.True(File.Exists(tmp.File("ds", "token_freq.json")));
        Assert.DoesNotContain(Directory.GetFileSystemEntries(tmp.File("ds")), p => Path.GetFileName(p).StartsWith('.'));

        // An empty dataset still gets one (schema-only) shard, so load_from_disk works.
        Write(tmp.File("empty"), []);
        using var empty = PreparedDataset.Open(tmp.File("empty"));
        Assert.Equal(0, empty.Count);
        Assert.Single(empty.ShardPaths);
    }

    [Fact]
    public void BrokenDirectoriesGiveActionableErrors()
    {
        using var tmp = new TempDir();
        Write(tmp.File("ds"), RandomRows(300, 6));
        string shard = tmp.File("ds", "data-00000-of-00001.arrow");
        byte[] bytes = File.ReadAllBytes(shard);
        File.WriteAllBytes(shard, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<SpeculatorsException>(() => PreparedDataset.Open(tmp.File("ds")));
        Assert.Contains("data-00000-of-00001.arrow", e.Message);

        File.Delete(shard);
        Assert.Contains("data-00000-of-00001.arrow", Assert.Throws<SpeculatorsException>(() => PreparedDataset.Open(tmp.File("ds"))).Message);

        Directory.CreateDirectory(tmp.File("dd"));
        File.WriteAllText(tmp.File("dd", "dataset_dict.json"), "{\"splits\": [\"train\", \"test\"]}");
        var e3 = Assert.Throws<SpeculatorsException>(() => PreparedDataset.Open(tmp.File("dd")));
        Assert.Contains("train, test", e3.Message);

        Directory.CreateDirectory(tmp.File("none"));
        Assert.Contains("state.json", Assert.Throws<SpeculatorsException>(() => PreparedDataset.Open(tmp.File("none"))).Message);
    }
}
