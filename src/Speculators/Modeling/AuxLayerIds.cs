namespace Speculators.Modeling;

/// <summary>
/// Layer ids for hidden-state capture, with vLLM's semantics: id k is the residual stream entering
/// decoder layer k (0 = embedding output), id N (= number of layers) is the last layer's output before
/// the final norm. Captures are returned in ascending id order, duplicates collapsed.
/// </summary>
public static class AuxLayerIds
{
    /// <summary>
    /// Eagle-3's default auxiliary ids for a verifier with <paramref name="numLayers"/> layers (DESIGN.md §4):
    /// <c>[2, N//2, N−3]</c> when those are distinct and inside [1, N−1], otherwise <c>[1, N//2, N−1]</c>
    /// (three distinct ids spread over [1, N−1]). N &lt; 4 is rejected: three distinct ids need N−1 ≥ 3.
    /// </summary>
    public static int[] Default(int numLayers)
    {
        if (numLayers < 4)
            throw new SpeculatorsException(
                $"Eagle-3 needs a verifier with at least 4 layers (three distinct auxiliary layer ids in [1, N-1]); this one has {numLayers}.");
        int[] ids = [2, numLayers / 2, numLayers - 3];
        if (ids.Distinct().Count() == 3 && ids.All(i => i >= 1 && i <= numLayers - 1) && ids[0] < ids[1] && ids[1] < ids[2]) return ids;
        return [1, numLayers / 2, numLayers - 1];
    }

    /// <summary>
    /// Checks Eagle-3 auxiliary ids: unique, ascending, each in [1, N−1]. <paramref name="source"/> names
    /// the flag or config key in the message.
    /// </summary>
    public static void ValidateEagle3(IReadOnlyList<int> ids, int numLayers, string source = "aux layer ids")
    {
        if (ids.Count == 0) throw new SpeculatorsException($"{source}: at least one layer id is required.");
        for (int i = 0; i < ids.Count; i++)
        {
            if (ids[i] < 1 || ids[i] > numLayers - 1)
                throw new SpeculatorsException(
                    $"{source}: layer id {ids[i]} is outside [1, {numLayers - 1}] for a verifier with {numLayers} layers " +
                    $"(id {numLayers}, the final layer, is added by data generation and must not be listed).");
            if (i > 0 && ids[i] <= ids[i - 1])
                throw new SpeculatorsException($"{source}: layer ids must be unique and ascending, found [{string.Join(", ", ids)}].");
        }
    }

    /// <summary>
    /// Capture ids for a forward pass: any ids in [0, N], returned sorted with duplicates removed. An id
    /// out of range is rejected before any work.
    /// </summary>
    public static int[] NormalizeCapture(IEnumerable<int> ids, int numLayers, string source = "layer ids")
    {
        var list = ids.ToList();
        foreach (var id in list)
            if (id < 0 || id > numLayers)
                throw new SpeculatorsException(
                    $"{source}: layer id {id} is out of range [0, {numLayers}] for a model with {numLayers} layers " +
                    "(0 = embeddings, k = input of decoder layer k, N = last layer output before the final norm).");
        return list.Distinct().Order().ToArray();
    }

    /// <summary>Default ids for <c>dump-hidden-states</c>: Eagle-3's aux ids plus N; every id 0..N for N &lt; 4.</summary>
    public static int[] DefaultDump(int numLayers) =>
        numLayers >= 4 ? [.. Default(numLayers), numLayers] : Enumerable.Range(0, numLayers + 1).ToArray();

    /// <summary>Parses "0,2,5" (spaces allowed); <paramref name="source"/> names the flag in errors.</summary>
    public static int[] Parse(string text, string source)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new SpeculatorsException($"{source}: expected a comma-separated list of integers, found '{text}'.");
        return parts.Select(p => int.TryParse(p, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int v)
            ? v : throw new SpeculatorsException($"{source}: '{p}' is not an integer (expected e.g. 0,2,5).")).ToArray();
    }
}
