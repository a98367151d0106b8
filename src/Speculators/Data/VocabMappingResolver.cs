using Speculators.Util;

namespace Speculators.Data;

/// <summary>What the trainer knows when it needs a draft vocabulary.</summary>
public sealed record VocabMappingRequest
{
    /// <summary>Target (verifier) vocabulary size V: the model config's <c>vocab_size</c>.</summary>
    public required int TargetVocabSize { get; init; }
    /// <summary><c>--draft-vocab-size</c> (Vd), or null when not given.</summary>
    public int? DraftVocabSize { get; init; }
    /// <summary><c>--d2t-path</c>; must come with <see cref="T2DPath"/>.</summary>
    public string? D2TPath { get; init; }
    /// <summary><c>--t2d-path</c>; must come with <see cref="D2TPath"/>.</summary>
    public string? T2DPath { get; init; }
    /// <summary>The prepared-data directory (holds token_freq.* and the cached mapping).</summary>
    public string? DataDir { get; init; }
    /// <summary><c>--token-freq-path</c>; default <c>&lt;data&gt;/token_freq.pt</c>, then <c>&lt;data&gt;/token_freq.json</c>.</summary>
    public string? TokenFreqPath { get; init; }
}

/// <summary>Where the mapping came from (speculators.md §5.3 steps).</summary>
public enum VocabMappingSource
{
    /// <summary>Step 1: <c>--d2t-path</c> / <c>--t2d-path</c>.</summary>
    ExplicitFiles,
    /// <summary>Step 2: cached <c>d2t*.npy</c>/<c>t2d*.npy</c> in the data directory.</summary>
    DataDirCache,
    /// <summary>Step 3: built from token frequencies (and cached in the data directory).</summary>
    BuiltFromTokenFrequencies,
    /// <summary>Step 4: no mapping; the draft uses the full target vocabulary (Vd = V).</summary>
    FullVocabulary,
}

/// <param name="Mapping">Null for <see cref="VocabMappingSource.FullVocabulary"/>.</param>
/// <param name="Description">One line for the log (which files were used).</param>
public sealed record VocabMappingResolution(VocabMapping? Mapping, VocabMappingSource Source, string Description)
{
    public int DraftVocabSize(int targetVocabSize) => Mapping?.DraftVocabSize ?? targetVocabSize;
}

/// <summary>
/// The trainer's vocabulary-mapping resolution: speculators.md §5.3 order with the size checks of
/// DESIGN.md §4 — explicit files → cached files in the data directory (size-named
/// <c>d2t-{Vd}.npy</c>/<c>t2d-{V}.npy</c> first, then the plain names, each checked against Vd and
/// V) → build from token frequencies and cache → full vocabulary (with a warning).
/// </summary>
public static class VocabMappingResolver
{
    public static VocabMappingResolution Resolve(VocabMappingRequest r)
    {
        int v = r.TargetVocabSize;
        if (v <= 0) throw new SpeculatorsException($"target vocabulary size must be positive; got {v}.");
        if (r.DraftVocabSize is int vdReq && (vdReq <= 0 || vdReq > v))
            throw new SpeculatorsException($"--draft-vocab-size {vdReq} must be in [1, {v}] (the target vocabulary size).");

        // 1. Explicit files.
        if (r.D2TPath != null || r.T2DPath != null)
        {
            if (r.D2TPath == null || r.T2DPath == null)
                throw new SpeculatorsException("--d2t-path and --t2d-path must be given together.");
            var m = VocabMapping.Load(r.D2TPath, r.T2DPath);
            CheckSizes(m, r, r.D2TPath, r.T2DPath);
            return new(m, VocabMappingSource.ExplicitFiles, $"vocabulary mapping from {r.D2TPath} and {r.T2DPath} (Vd={m.DraftVocabSize}, V={v})");
        }

        string? dataDir = r.DataDir;
        string? freqPath = r.TokenFreqPath ?? DefaultTokenFreqPath(dataDir);

        // 2. Cached mapping in the data directory.
        if (dataDir != null)
        {
            if (r.DraftVocabSize is int vd)
            {
                string d2tSized = Path.Combine(dataDir, VocabMapping.D2TSizedName(vd));
                string t2dSized = Path.Combine(dataDir, VocabMapping.T2DSizedName(v));
                if (File.Exists(d2tSized) && File.Exists(t2dSized))
                {
                    var m = VocabMapping.Load(d2tSized, t2dSized);
                    CheckSizes(m, r, d2tSized, t2dSized);
                    return new(m, VocabMappingSource.DataDirCache, $"cached vocabulary mapping {d2tSized} and {t2dSized}");
                }
            }
            string d2tPlain = Path.Combine(dataDir, VocabMapping.D2TFileName);
            string t2dPlain = Path.Combine(dataDir, VocabMapping.T2DFileName);
            if (File.Exists(d2tPlain) && File.Exists(t2dPlain))
            {
                var m = VocabMapping.Load(d2tPlain, t2dPlain);
                string? mismatch = SizeMismatch(m, r, d2tPlain, t2dPlain);
                if (mismatch == null)
                    return new(m, VocabMappingSource.DataDirCache, $"cached vocabulary mapping {d2tPlain} and {t2dPlain}");
                // A stale cache for other sizes: rebuild if we can, else stop with the reason.
                if (r.DraftVocabSize == null || freqPath == null || !File.Exists(freqPath))
                    throw new SpeculatorsException(mismatch + (r.DraftVocabSize == null
                        ? " Pass --draft-vocab-size with a token-frequency file to build a matching mapping, or --d2t-path/--t2d-path."
                        : " No token-frequency file to rebuild from; pass --token-freq-path or --d2t-path/--t2d-path."));
                Log.Warn(mismatch + " Building a new mapping from " + freqPath + " (size-named files only; the plain-named files are left as they are).");
                return Build(r, freqPath, writePlainNames: false);
            }
        }

        // 3. Build from token frequencies.
        if (r.DraftVocabSize != null && freqPath != null && File.Exists(freqPath))
            return Build(r, freqPath, writePlainNames: true);
        if (r.TokenFreqPath != null && !File.Exists(r.TokenFreqPath))
            throw new SpeculatorsException($"--token-freq-path {r.TokenFreqPath}: file not found.");

        // 4. Full vocabulary.
        string why = r.DraftVocabSize == null
            ? "no --draft-vocab-size given"
            : $"no token-frequency file found ({(dataDir == null ? "no data directory" : $"looked for {Path.Combine(dataDir, TokenFrequencies.PtFileName)} and {Path.Combine(dataDir, TokenFrequencies.JsonFileName)}")})";
        Log.Warn($"no draft vocabulary mapping ({why}); the draft uses the full target vocabulary of {v} tokens.");
        return new(null, VocabMappingSource.FullVocabulary, $"full target vocabulary (V={v}; {why})");
    }

    static string? DefaultTokenFreqPath(string? dataDir)
    {
        if (dataDir == null) return null;
        string pt = Path.Combine(dataDir, TokenFrequencies.PtFileName);
        if (File.Exists(pt)) return pt;
        string json = Path.Combine(dataDir, TokenFrequencies.JsonFileName);
        return File.Exists(json) ? json : pt;
    }

    static VocabMappingResolution Build(VocabMappingRequest r, string freqPath, bool writePlainNames)
    {
        int vd = r.DraftVocabSize!.Value;
        var freq = TokenFrequencies.Load(freqPath);
        var counts = freq.Items();
        var m = VocabMapping.Build(counts, vd, r.TargetVocabSize, freqPath);
        string note = "";
        if (r.DataDir != null)
        {
            try
            {
                m.Save(r.DataDir, writePlainNames);
                note = $", cached in {r.DataDir}";
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log.Warn($"could not cache the vocabulary mapping in {r.DataDir}: {e.Message}");
            }
        }
        return new(m, VocabMappingSource.BuiltFromTokenFrequencies,
            $"vocabulary mapping built from {freqPath} (Vd={vd}, V={r.TargetVocabSize}, covers {100 * m.Coverage(counts):F2}% of supervised tokens{note})");
    }

    static string? SizeMismatch(VocabMapping m, VocabMappingRequest r, string d2tPath, string t2dPath)
    {
        if (m.TargetVocabSize != r.TargetVocabSize)
            return $"{t2dPath} has {m.TargetVocabSize} entries but the target model's vocab_size is {r.TargetVocabSize}.";
        if (r.DraftVocabSize is int vd && m.DraftVocabSize != vd)
            return $"{d2tPath} has {m.DraftVocabSize} entries but --draft-vocab-size is {vd}.";
        return null;
    }

    static void CheckSizes(VocabMapping m, VocabMappingRequest r, string d2tPath, string t2dPath)
    {
        string? mismatch = SizeMismatch(m, r, d2tPath, t2dPath);
        if (mismatch != null) throw new SpeculatorsException(mismatch);
    }
}
