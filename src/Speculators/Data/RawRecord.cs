using System.Text.Json.Nodes;

namespace Speculators.Data;

/// <summary>How a record was found in its file (decides how <see cref="RawRecord.Location"/> reads).</summary>
public enum RecordOrigin
{
    /// <summary>A line of a JSON Lines file; <see cref="RawRecord.Line"/> is the 1-based line.</summary>
    JsonLine,
    /// <summary>An element of a top-level JSON array; <see cref="RawRecord.Index"/> is 0-based, <see cref="RawRecord.Line"/> where it starts.</summary>
    JsonArrayElement,
    /// <summary>A row of a column-oriented JSON object (<c>{"col": [v0, v1, …]}</c>).</summary>
    JsonColumns,
    /// <summary>A row of a Parquet file (0-based over all row groups).</summary>
    ParquetRow,
    /// <summary>A row of an Arrow IPC stream shard (0-based within the shard).</summary>
    ArrowRow,
}

/// <summary>
/// One input row, as read: the parsed JSON object, or the reason it could not be parsed. Readers
/// never throw for a bad row; they yield a record with <see cref="Error"/> set so the caller can
/// count it or stop (<c>--strict</c>). <see cref="Location"/> names file and line/row for messages.
/// </summary>
public sealed record RawRecord(string SourceFile, RecordOrigin Origin, long Index, long? Line, JsonObject? Row, string? Error)
{
    public bool IsValid => Row != null && Error == null;

    /// <summary><c>file:line</c>, <c>file:line (element i)</c> or <c>file row i</c>.</summary>
    public string Location => Origin switch
    {
        RecordOrigin.JsonLine => $"{SourceFile}:{Line}",
        RecordOrigin.JsonArrayElement => Line != null ? $"{SourceFile}:{Line} (element {Index})" : $"{SourceFile} (element {Index})",
        _ => $"{SourceFile} row {Index}",
    };

    public override string ToString() => Error == null ? Location : $"{Location}: {Error}";
}
