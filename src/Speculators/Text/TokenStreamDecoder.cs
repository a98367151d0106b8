namespace Speculators.Text;

/// <summary>
/// Incremental detokenization for generation (HF <c>DecodeStream</c>): feed ids one at a time and
/// get back only the new, complete text. A token that ends inside a multi-byte UTF-8 character
/// (byte-level or byte-fallback pieces) yields nothing until the character is complete, and
/// context-dependent decoders (Llama-2's leading-space strip, Metaspace) are handled by decoding a
/// short window of previous ids and emitting only the difference. Not thread-safe (one per stream).
/// </summary>
public sealed class TokenStreamDecoder
{
    readonly HfTokenizer _tokenizer;
    readonly bool _skipSpecialTokens;
    readonly List<int> _ids = new();
    string _prefix = "";
    int _prefixIndex;

    internal TokenStreamDecoder(HfTokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one id; returns the newly completed text, or null when more ids are needed.</summary>
    public string? Step(int id)
    {
        if (_prefix.Length == 0 && _ids.Count > 0)
        {
            string p = _tokenizer.Decode(_ids, _skipSpecialTokens);
            if (!p.EndsWith('\uFFFD'))
            {
                _prefix = p;
                _prefixIndex = _ids.Count;
            }
        }
        _ids.Add(id);
        string s = _tokenizer.Decode(_ids, _skipSpecialTokens);
        if (s.Length <= _prefix.Length || s.EndsWith('\uFFFD')) return null;
        if (!s.StartsWith(_prefix, StringComparison.Ordinal))
            throw new SpeculatorsException(
                $"{_tokenizer.Source}: streaming decode is not prefix-stable for this decoder (expected the text to start with '{_prefix}', got '{s}' after id {id}).");
        string added = s[_prefix.Length..];
        int newPrefixIndex = _ids.Count - _prefixIndex;
        _ids.RemoveRange(0, _prefixIndex);
        _prefix = _tokenizer.Decode(_ids, _skipSpecialTokens);
        _prefixIndex = newPrefixIndex;
        return added;
    }

    /// <summary>At the end of a stream: whatever is still held back (e.g. an incomplete character as U+FFFD), or "".</summary>
    public string Flush()
    {
        string s = _tokenizer.Decode(_ids, _skipSpecialTokens);
        string rest = s.Length > _prefix.Length && s.StartsWith(_prefix, StringComparison.Ordinal) ? s[_prefix.Length..] : "";
        _ids.Clear();
        _prefix = "";
        _prefixIndex = 0;
        return rest;
    }
}
