namespace Speculators.Text;

/// <summary>A tokenizer.json post-processor for a single sequence; tokens it inserts get offsets (0, 0).</summary>
internal abstract class PostProcessorStep
{
    /// <summary>Rewrites <paramref name="tokens"/> (ids + offsets into the caller's text).</summary>
    public abstract void Process(TokenBuffer tokens, bool addSpecialTokens, Func<int, string?> idToToken);

    /// <summary>Ids this post-processor adds around a single sequence when special tokens are on.</summary>
    public abstract (int[] Prefix, int[] Suffix) SpecialIds { get; }

    protected static void Wrap(TokenBuffer tokens, int[] prefix, int[] suffix)
    {
        if (prefix.Length == 0 && suffix.Length == 0) return;
        int n = tokens.Count;
        var ids = tokens.Ids[..n];
        var s = tokens.Starts[..n];
        var e = tokens.Ends[..n];
        tokens.Clear();
        foreach (var id in prefix) tokens.Add(id, 0, 0);
        for (int i = 0; i < n; i++) tokens.Add(ids[i], s[i], e[i]);
        foreach (var id in suffix) tokens.Add(id, 0, 0);
    }
}

/// <summary>HF TemplateProcessing, single-sequence template ($A plus special tokens, each possibly several ids).</summary>
internal sealed class TemplatePostProcessor(int[] prefix, int[] suffix) : PostProcessorStep
{
    public override (int[] Prefix, int[] Suffix) SpecialIds => (prefix, suffix);

    public override void Process(TokenBuffer tokens, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        if (addSpecialTokens) Wrap(tokens, prefix, suffix);
    }
}

/// <summary>HF BertProcessing / RobertaProcessing: [cls] $A [sep]; Roberta may also trim offsets.</summary>
internal sealed class ClsSepPostProcessor(int cls, int sep, bool trimOffsets, bool addPrefixSpace) : PostProcessorStep
{
    public override (int[] Prefix, int[] Suffix) SpecialIds => ([cls], [sep]);

    public override void Process(TokenBuffer tokens, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        if (trimOffsets) ByteLevelPostProcessor.TrimOffsets(tokens, addPrefixSpace, idToToken);
        if (addSpecialTokens) Wrap(tokens, [cls], [sep]);
    }
}

/// <summary>
/// HF ByteLevel post-processor: adds nothing; with <c>trim_offsets</c> it moves offsets past the
/// leading/trailing spaces a token carries (as HF's <c>process_offsets</c>).
/// </summary>
internal sealed class ByteLevelPostProcessor(bool trimOffsets, bool addPrefixSpace) : PostProcessorStep
{
    public override (int[] Prefix, int[] Suffix) SpecialIds => ([], []);

    public override void Process(TokenBuffer tokens, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        if (trimOffsets) TrimOffsets(tokens, addPrefixSpace, idToToken);
    }

    internal static void TrimOffsets(TokenBuffer tokens, bool addPrefixSpace, Func<int, string?> idToToken)
    {
        char space = ByteLevelAlphabet.ByteToChar((byte)' ');
        for (int i = 0; i < tokens.Count; i++)
        {
            string? tok = idToToken(tokens.Ids[i]);
            if (string.IsNullOrEmpty(tok)) continue;
            int lead = 0;
            while (lead < tok.Length && (tok[lead] == space || char.IsWhiteSpace(tok[lead]))) lead++;
            int trail = 0;
            while (trail < tok.Length - lead && (tok[tok.Length - 1 - trail] == space || char.IsWhiteSpace(tok[tok.Length - 1 - trail]))) trail++;
            int s = tokens.Starts[i], e = tokens.Ends[i];
            if (lead > 0)
            {
                bool isFirst = i == 0 || s == 0;
                if (!(isFirst && addPrefixSpace && lead == 1)) s = Math.Min(s + lead, e);
            }
            if (trail > 0 && e >= trail) e = Math.Max(e - trail, s);
            tokens.Starts[i] = s;
            tokens.Ends[i] = e;
        }
    }
}

internal sealed class SequencePostProcessor(IReadOnlyList<PostProcessorStep> steps) : PostProcessorStep
{
    public override (int[] Prefix, int[] Suffix) SpecialIds
    {
        get
        {
            var pre = new List<int>();
            var suf = new List<int>();
            foreach (var s in steps)
            {
                var (p, x) = s.SpecialIds;
                pre.InsertRange(0, p);
                suf.AddRange(x);
            }
            return (pre.ToArray(), suf.ToArray());
        }
    }

    public override void Process(TokenBuffer tokens, bool addSpecialTokens, Func<int, string?> idToToken)
    {
        foreach (var s in steps) s.Process(tokens, addSpecialTokens, idToToken);
    }
}
