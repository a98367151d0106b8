using System.Globalization;
using System.Text.Json;

namespace Speculators.Training;

/// <summary>Per-position distillation losses between the draft distribution q = softmax(logits) and the verifier's p = softmax(targets).</summary>
public enum LossKind
{
    /// <summary><c>kl_div</c>: Σ p·(log p − log q) (forward KL, target → draft). Eagle-3 default.</summary>
    KlDiv,
    /// <summary><c>rkl</c>: Σ q·(log q − log p).</summary>
    ReverseKl,
    /// <summary><c>jsd</c>: ½KL(p‖m) + ½KL(q‖m), m = (p + q)/2.</summary>
    JensenShannon,
    /// <summary><c>ce</c>: −log q[argmax p] (hard label). DFlash default.</summary>
    CrossEntropy,
    /// <summary><c>tv</c>: 1 − Σ min(p, q) (one minus the acceptance rate).</summary>
    TotalVariation,
    /// <summary><c>nla</c>: −log(max(Σ min(p, q), 1e-5)).</summary>
    NegLogAcceptance,
    /// <summary><c>lk_hybrid</c>: λ·KL + (1 − λ)·TV with λ = exp(−3·α), α = Σ min(p, q) not differentiated.</summary>
    LkHybrid,
}

/// <summary>One weighted term of a loss specification.</summary>
public sealed record LossTerm(string Name, LossKind Kind, double Weight);

/// <summary>
/// A parsed <c>--loss-fn</c>: a single loss name (<c>kl_div</c>) or a JSON object of weights
/// (<c>{"ce": 0.1, "tv": 0.9}</c>; weights are not normalized, terms keep the JSON order).
/// </summary>
public sealed class LossSpec
{
    static readonly (string Name, LossKind Kind)[] Known =
    {
        ("kl_div", LossKind.KlDiv),
        ("rkl", LossKind.ReverseKl),
        ("jsd", LossKind.JensenShannon),
        ("ce", LossKind.CrossEntropy),
        ("tv", LossKind.TotalVariation),
        ("nla", LossKind.NegLogAcceptance),
        ("lk_hybrid", LossKind.LkHybrid),
    };

    public IReadOnlyList<LossTerm> Terms { get; }

    /// <summary>More than one term: each term is also reported as <c>{name}_loss</c>.</summary>
    public bool IsCompound => Terms.Count > 1;

    LossSpec(IReadOnlyList<LossTerm> terms) { Terms = terms; }

    public static LossSpec Single(LossKind kind) => new(new[] { new LossTerm(NameOf(kind), kind, 1.0) });

    /// <summary>The command-line name of a loss kind (<c>kl_div</c>, <c>ce</c>, …).</summary>
    public static string NameOf(LossKind kind) => Known.First(k => k.Kind == kind).Name;

    /// <summary>All accepted names, for help text and error messages.</summary>
    public static IReadOnlyList<string> KnownNames => Known.Select(k => k.Name).ToList();

    /// <summary>Parses a loss name or a JSON object of name → weight.</summary>
    /// <param name="spec">The user's text.</param>
    /// <param name="source">Where it came from, for error messages (a flag or config key).</param>
    public static LossSpec Parse(string spec, string source = "--loss-fn")
    {
        if (string.IsNullOrWhiteSpace(spec))
            throw new SpeculatorsException($"{source}: expected a loss name ({string.Join(", ", KnownNames)}) or a JSON object of weights, got an empty value.");
        string trimmed = spec.Trim();
        foreach (var (name, kind) in Known)
            if (trimmed == name) return Single(kind);

        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(trimmed);
        }
        catch (JsonException)
        {
            throw new SpeculatorsException(
                $"{source}: unknown loss function '{spec}'. Pass one of {string.Join(", ", KnownNames)} or a JSON object of weights, e.g. '{{\"ce\": 0.1, \"tv\": 0.9}}'.");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.EnumerateObject().Any())
                throw new SpeculatorsException(
                    $"{source}: a loss configuration must be a non-empty JSON object mapping loss names to weights, e.g. '{{\"ce\": 0.1, \"tv\": 0.9}}'; got {spec}.");
            var terms = new List<LossTerm>();
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                var match = Known.Where(k => k.Name == prop.Name).ToList();
                if (match.Count == 0)
                    throw new SpeculatorsException($"{source}: unknown loss function '{prop.Name}' in the loss configuration; choose from {string.Join(", ", KnownNames)}.");
                if (prop.Value.ValueKind != JsonValueKind.Number || !prop.Value.TryGetDouble(out double w) || !double.IsFinite(w))
                    throw new SpeculatorsException($"{source}: the weight of '{prop.Name}' must be a finite number, got {prop.Value.GetRawText()}.");
                if (terms.Any(t => t.Name == prop.Name))
                    throw new SpeculatorsException($"{source}: '{prop.Name}' appears twice in the loss configuration.");
                terms.Add(new LossTerm(prop.Name, match[0].Kind, w));
            }
            return new LossSpec(terms);
        }
    }

    /// <summary>Canonical text: the bare name for a single unit-weight term, else compact JSON.</summary>
    public override string ToString()
    {
        if (Terms.Count == 1 && Terms[0].Weight == 1.0) return Terms[0].Name;
        return "{" + string.Join(", ", Terms.Select(t => $"\"{t.Name}\": {t.Weight.ToString("R", CultureInfo.InvariantCulture)}")) + "}";
    }
}
