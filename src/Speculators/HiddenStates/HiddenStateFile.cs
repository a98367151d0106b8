using System.Globalization;
using System.Runtime.InteropServices;
using Speculators.Formats;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>Outcome of checking one <c>hs_{i}.safetensors</c> file.</summary>
/// <param name="Problem">null when the file is valid</param>
/// <param name="Message">what is wrong, starting with the file path</param>
public readonly record struct HiddenStateFileCheck(HiddenStateSkipReason? Problem, string? Message)
{
    public bool Ok => Problem is null;
    public static readonly HiddenStateFileCheck Valid = new(null, null);
}

/// <summary>Shape and dtype of a file, from its header only.</summary>
public sealed record HiddenStateFileLayout(long Tokens, int LayerCount, int HiddenSize, ScalarType DType);

/// <summary>
/// One file of the hidden-state store: <c>hs_{i}.safetensors</c> for prepared row <c>i</c>, the layout vLLM's
/// extractor writes (speculators.md §6.6): <c>hidden_states</c> [T, A+1, H] in the store dtype and
/// <c>token_ids</c> [T] int64. Writes are atomic (<c>hs_{i}.safetensors.tmp</c>, fsync, rename), so a final
/// name never holds a partial file. Readers validate keys, dtypes, shapes, <c>token_ids</c> against the row,
/// and finiteness; problems come back as a <see cref="HiddenStateFileCheck"/> naming the path, never as a crash.
/// </summary>
public static class HiddenStateFile
{
    public const string HiddenStatesKey = "hidden_states";
    public const string TokenIdsKey = "token_ids";
    const string Prefix = "hs_";
    const string Suffix = ".safetensors";

    public static string FileName(long row) => Prefix + row.ToString(CultureInfo.InvariantCulture) + Suffix;

    public static string PathFor(string storeDirectory, long row) => Path.Combine(storeDirectory, FileName(row));

    /// <summary>The temporary name a write uses before its rename (left behind only by a killed process).</summary>
    public static string TempPathFor(string storeDirectory, long row) => Util.AtomicFile.TempPathFor(PathFor(storeDirectory, row));

    /// <summary>Parses <c>hs_{i}.safetensors</c> → i.</summary>
    public static bool TryParseRow(string fileName, out long row)
    {
        row = -1;
        string name = Path.GetFileName(fileName);
        if (!name.StartsWith(Prefix, StringComparison.Ordinal) || !name.EndsWith(Suffix, StringComparison.Ordinal)) return false;
        var digits = name.AsSpan(Prefix.Length, name.Length - Prefix.Length - Suffix.Length);
        return digits.Length > 0 && digits[0] != '+' && digits[0] != '-'
            && long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out row);
    }

    /// <summary>
    /// Writes <paramref name="hidden"/> [T, A+1, H] (converted to <paramref name="spec"/>'s dtype when it differs) and
    /// <paramref name="tokenIds"/> [T] to <paramref name="path"/> atomically.
    /// </summary>
    public static void Write(string path, Tensor hidden, IReadOnlyList<long> tokenIds, HiddenStateSpec spec)
    {
        if (hidden.dim() != 3 || hidden.shape[0] != tokenIds.Count || hidden.shape[1] != spec.LayerCount || hidden.shape[2] != spec.HiddenSize)
            throw new ArgumentException(
                $"{path}: hidden states [{string.Join(", ", hidden.shape)}] do not match [T={tokenIds.Count}, A+1={spec.LayerCount}, H={spec.HiddenSize}].");
        using var scope = NewDisposeScope();
        var h = hidden.dtype == spec.DType ? hidden : hidden.to(spec.DType);
        var ids = torch.tensor(tokenIds as long[] ?? tokenIds.ToArray(), ScalarType.Int64);
        SafeTensorsWriter.Save(path, [KeyValuePair.Create(HiddenStatesKey, h), KeyValuePair.Create(TokenIdsKey, ids)]);
    }

    /// <summary>
    /// Checks <paramref name="path"/> against <paramref name="spec"/> and <paramref name="expectedTokens"/> from the header and
    /// <c>token_ids</c> alone; with <paramref name="checkFinite"/> also loads <c>hidden_states</c> and rejects NaN/Inf.
    /// </summary>
    public static HiddenStateFileCheck Check(string path, long[] expectedTokens, HiddenStateSpec spec, bool checkFinite)
    {
        var (sample, check) = Inspect(path, -1, expectedTokens, spec, loadHidden: checkFinite, checkFinite);
        sample?.Dispose();
        return check;
    }

    /// <summary>
    /// Reads and validates the file of row <paramref name="row"/>. Returns the sample (caller owns it) or null with the
    /// problem (<see cref="HiddenStateSkipReason.Missing"/> when the file does not exist).
    /// </summary>
    public static (HiddenStateSample? Sample, HiddenStateFileCheck Check) Read(string path, int row, long[] expectedTokens, HiddenStateSpec spec,
        bool checkFinite = true) =>
        Inspect(path, row, expectedTokens, spec, loadHidden: true, checkFinite);

    /// <summary>Reads only the header: T, A+1, H and the dtype of <c>hidden_states</c> (used to infer a Python store's layout).</summary>
    public static HiddenStateFileLayout ReadLayout(string path)
    {
        var header = SafeTensorsHeader.Read(path);
        if (!header.ByName.TryGetValue(HiddenStatesKey, out var hs))
            throw new SpeculatorsException($"{path}: no '{HiddenStatesKey}' tensor (found {string.Join(", ", header.ByName.Keys)}); not a hidden-state file.");
        if (hs.Shape.Length != 3)
            throw new SpeculatorsException($"{path}: '{HiddenStatesKey}' has shape {hs.ShapeText}; expected [T, A+1, H].");
        if (!hs.DType.TryToTorch(out var dt) || dt is not (ScalarType.BFloat16 or ScalarType.Float32 or ScalarType.Float16))
            throw new SpeculatorsException($"{path}: '{HiddenStatesKey}' has dtype {hs.DType.Name()}; expected BF16, F32 or F16.");
        return new HiddenStateFileLayout(hs.Shape[0], checked((int)hs.Shape[1]), checked((int)hs.Shape[2]), dt);
    }

    static (HiddenStateSample?, HiddenStateFileCheck) Fail(HiddenStateSkipReason reason, string message) => (null, new HiddenStateFileCheck(reason, message));

    static (HiddenStateSample?, HiddenStateFileCheck) Inspect(string path, int row, long[] expected, HiddenStateSpec spec, bool loadHidden, bool checkFinite)
    {
        if (!File.Exists(path)) return Fail(HiddenStateSkipReason.Missing, $"{path}: no such file.");
        SafeTensorsFile file;
        try
        {
            file = SafeTensorsFile.Open(path);
        }
        catch (SpeculatorsException e)
        {
            return File.Exists(path) ? Fail(HiddenStateSkipReason.Unreadable, e.Message) : Fail(HiddenStateSkipReason.Missing, $"{path}: no such file.");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Fail(HiddenStateSkipReason.Unreadable, $"{path}: cannot read: {e.Message}");
        }
        using (file)
        {
            if (!file.Contains(HiddenStatesKey) || !file.Contains(TokenIdsKey))
                return Fail(HiddenStateSkipReason.WrongKeys,
                    $"{path}: expected tensors '{HiddenStatesKey}' and '{TokenIdsKey}', found [{string.Join(", ", file.Keys.Select(k => "'" + k + "'"))}].");
            var hs = file.Info(HiddenStatesKey);
            var ti = file.Info(TokenIdsKey);
            var wantHs = SafeTensorsDTypes.FromTorch(spec.DType, path);
            if (hs.DType != wantHs)
                return Fail(HiddenStateSkipReason.WrongDType, $"{path}: '{HiddenStatesKey}' is {hs.DType.Name()}, but the store holds {wantHs.Name()} ({HiddenStateSpec.DTypeName(spec.DType)}).");
            if (ti.DType != SafeTensorsDType.I64)
                return Fail(HiddenStateSkipReason.WrongDType, $"{path}: '{TokenIdsKey}' is {ti.DType.Name()}; expected I64.");
            if (ti.Shape.Length != 1)
                return Fail(HiddenStateSkipReason.WrongShape, $"{path}: '{TokenIdsKey}' has shape {ti.ShapeText}; expected [T].");
            long t = ti.Shape[0];
            if (hs.Shape.Length != 3 || hs.Shape[0] != t || hs.Shape[1] != spec.LayerCount || hs.Shape[2] != spec.HiddenSize)
                return Fail(HiddenStateSkipReason.WrongShape,
                    $"{path}: '{HiddenStatesKey}' has shape {hs.ShapeText}; expected [T={t}, A+1={spec.LayerCount}, H={spec.HiddenSize}] " +
                    $"(layer ids [{string.Join(", ", spec.LayerIds)}]).");
            if (t != expected.Length)
                return Fail(HiddenStateSkipReason.TokenMismatch, $"{path}: holds {t} tokens but the prepared row has {expected.Length}" +
                    (spec.MaxTokens is int m && expected.Length == m ? $" (after truncation to {m})" : "") + ".");
            var bytes = file.ReadBytes(TokenIdsKey);
            var ids = MemoryMarshal.Cast<byte, long>(bytes);
            for (int i = 0; i < ids.Length; i++)
                if (ids[i] != expected[i])
                    return Fail(HiddenStateSkipReason.TokenMismatch,
                        $"{path}: token_ids differ from the prepared row's input_ids at position {i} (file {ids[i]}, row {expected[i]}); " +
                        "the file belongs to another row or another dataset.");
            if (!loadHidden) return (null, HiddenStateFileCheck.Valid);

            var hidden = file.Load(HiddenStatesKey);
            try
            {
                if (checkFinite && t > 0)
                {
                    using var finite = torch.isfinite(hidden);
                    using var all = finite.all();
                    if (!all.item<bool>())
                    {
                        hidden.Dispose();
                        return Fail(HiddenStateSkipReason.NonFinite, $"{path}: '{HiddenStatesKey}' contains NaN or Inf values.");
                    }
                }
                return (new HiddenStateSample(row, expected.ToArray(), hidden, SampleOrigin.File), HiddenStateFileCheck.Valid);
            }
            catch
            {
                hidden.Dispose();
                throw;
            }
        }
    }

    /// <summary>
    /// Deletes <c>hs_{i}.safetensors.tmp</c> left by a killed writer, for the rows in [<paramref name="start"/>,
    /// <paramref name="start"/> + <paramref name="count"/>) only (other ranks may be writing theirs). Returns how many were removed.
    /// </summary>
    public static int DeleteStaleTemporaries(string storeDirectory, long start, long count)
    {
        if (!Directory.Exists(storeDirectory)) return 0;
        int removed = 0;
        foreach (var tmp in Directory.EnumerateFiles(storeDirectory, Prefix + "*" + Suffix + ".tmp"))
        {
            string name = Path.GetFileName(tmp);
            if (!TryParseRow(name[..^".tmp".Length], out long row) || row < start || row >= start + count) continue;
            try
            {
                File.Delete(tmp);
                removed++;
            }
            catch (IOException)
            {
            }
        }
        return removed;
    }
}
