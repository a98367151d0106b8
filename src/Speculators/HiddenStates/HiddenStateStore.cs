using static TorchSharp.torch;

namespace Speculators.HiddenStates;

/// <summary>Choices for a store that does not exist yet (online or hybrid generation into an empty directory).</summary>
public sealed record NewStoreOptions
{
    /// <summary>Element type of generated states (bfloat16 by default).</summary>
    public ScalarType DType { get; init; } = ScalarType.BFloat16;
    /// <summary>Longest row to run; null = the verifier's max_position_embeddings.</summary>
    public int? MaxTokens { get; init; }
    public TooLongPolicy TooLong { get; init; } = TooLongPolicy.Skip;
}

/// <summary>The store directory as a whole: deciding its <see cref="HiddenStateSpec"/> and checking it against the verifier.</summary>
public static class HiddenStateStore
{
    /// <summary>
    /// The layout the trainer must expect from <paramref name="storeDirectory"/>:
    /// <list type="bullet">
    /// <item>with <c>metadata.json</c>: its layout, after checking it against <paramref name="verifier"/> (layers, hidden size,
    /// weights fingerprint) and, when given, <paramref name="targetAuxLayerIds"/>; any difference throws, listing them all;</item>
    /// <item>without metadata but with <c>hs_*.safetensors</c> files (written by Python speculators or vLLM):
    /// <paramref name="targetAuxLayerIds"/> is required (the files do not say which layers they hold); A and H are read
    /// from a file's header and must agree with it and the verifier; the dtype is the file's;</item>
    /// <item>an empty or absent directory (online/hybrid generation): the aux ids given, else Eagle-3's default,
    /// plus <paramref name="newStore"/>'s dtype and context policy.</item>
    /// </list>
    /// </summary>
    public static HiddenStateSpec ResolveSpec(string storeDirectory, VerifierIdentity verifier, IReadOnlyList<int>? targetAuxLayerIds,
        NewStoreOptions? newStore = null)
    {
        if (targetAuxLayerIds != null)
            Modeling.AuxLayerIds.ValidateEagle3(targetAuxLayerIds, verifier.NumHiddenLayers, "--target-layer-ids");
        var meta = Directory.Exists(storeDirectory) ? HiddenStateStoreMetadata.Load(storeDirectory) : null;
        if (meta != null)
        {
            var stored = meta.ToSpec();
            var wanted = targetAuxLayerIds == null ? stored : stored with { LayerIds = [.. targetAuxLayerIds, verifier.NumHiddenLayers] };
            var problems = meta.Mismatches(wanted with { HiddenSize = verifier.HiddenSize }, verifier, compareDType: false, compareContext: false);
            if (problems.Count > 0)
                throw new SpeculatorsException(
                    $"{HiddenStateStoreMetadata.PathIn(storeDirectory)} does not match this run:\n  " + string.Join("\n  ", problems) +
                    "\nRegenerate the store (speculators datagen) for this verifier and these layer ids, or point --hidden-states-path elsewhere.");
            return stored;
        }

        string? probe = Directory.Exists(storeDirectory) ? FirstFile(storeDirectory) : null;
        if (probe != null)
        {
            if (targetAuxLayerIds == null)
                throw new SpeculatorsException(
                    $"{storeDirectory} has hidden-state files but no {HiddenStateStoreMetadata.FileName} (a store written by Python speculators or vLLM); " +
                    "the files do not record which layers they hold, so pass --target-layer-ids with the aux ids they were made with (e.g. 2,16,29).");
            var layout = HiddenStateFile.ReadLayout(probe);
            if (layout.LayerCount != targetAuxLayerIds.Count + 1)
                throw new SpeculatorsException(
                    $"{probe}: holds {layout.LayerCount} layers per token (A+1), but --target-layer-ids [{string.Join(", ", targetAuxLayerIds)}] " +
                    $"implies {targetAuxLayerIds.Count + 1} (the aux ids plus the final layer).");
            if (layout.HiddenSize != verifier.HiddenSize)
                throw new SpeculatorsException($"{probe}: hidden size {layout.HiddenSize}, but the verifier '{verifier.Name}' has hidden_size {verifier.HiddenSize}.");
            return new HiddenStateSpec
            {
                LayerIds = [.. targetAuxLayerIds, verifier.NumHiddenLayers],
                HiddenSize = layout.HiddenSize,
                DType = layout.DType,
            };
        }

        var o = newStore ?? new NewStoreOptions();
        return HiddenStateSpec.ForVerifier(targetAuxLayerIds ?? Modeling.AuxLayerIds.Default(verifier.NumHiddenLayers),
            verifier.NumHiddenLayers, verifier.HiddenSize, o.DType, o.MaxTokens ?? verifier.MaxPositionEmbeddings, o.TooLong, "--target-layer-ids");
    }

    /// <summary>Any <c>hs_{i}.safetensors</c> in the directory (the lowest-numbered of the first few listed), or null.</summary>
    static string? FirstFile(string dir)
    {
        string? best = null;
        long bestRow = long.MaxValue;
        int seen = 0;
        foreach (var f in Directory.EnumerateFiles(dir, "hs_*.safetensors"))
        {
            if (!HiddenStateFile.TryParseRow(f, out long row)) continue;
            if (row < bestRow)
            {
                bestRow = row;
                best = f;
            }
            if (++seen >= 64) break;
        }
        return best;
    }

    /// <summary>
    /// Writes <c>metadata.json</c> for <paramref name="spec"/> when the store has none; when it has one, it must match
    /// (dtype and long-row policy included, since new files will be added). Used before adding files.
    /// </summary>
    public static void EnsureMetadata(string storeDirectory, HiddenStateSpec spec, VerifierIdentity verifier)
    {
        var existing = Directory.Exists(storeDirectory) ? HiddenStateStoreMetadata.Load(storeDirectory) : null;
        if (existing == null)
        {
            try
            {
                HiddenStateStoreMetadata.Create(spec, verifier).Save(storeDirectory);
                return;
            }
            catch (IOException)
            {
                // Another rank sharing the directory is writing the same file right now (its .tmp is locked):
                // let it finish, then check what it wrote like any existing metadata.
                Thread.Sleep(200);
                existing = HiddenStateStoreMetadata.Load(storeDirectory);
                if (existing == null) throw;
            }
        }
        var problems = existing.Mismatches(spec, verifier);
        if (problems.Count > 0)
            throw new SpeculatorsException(
                $"{HiddenStateStoreMetadata.PathIn(storeDirectory)} describes a different store than this run would write:\n  " +
                string.Join("\n  ", problems) + "\nUse another --output directory, or delete this one to start over.");
    }
}
