using System.Text;

namespace Speculators.Text;

/// <summary>A tokenizer.json decoder: HF's <c>decode_chain</c> over token strings.</summary>
internal abstract class TokenDecoder
{
    public abstract List<string> DecodeChain(List<string> tokens);
}

internal sealed class SequenceDecoder(IReadOnlyList<TokenDecoder> steps) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var s in steps) tokens = s.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>
/// HF ByteLevel decoder: every token whose characters are all byte characters becomes those
/// bytes, any other token its own UTF-8; the concatenation is decoded lossily (U+FFFD per invalid
/// maximal subsequence, as Rust's from_utf8_lossy and .NET's UTF8 decoder both do).
/// </summary>
internal sealed class ByteLevelDecoder : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        Span<byte> tmp = stackalloc byte[4];
        foreach (var t in tokens)
        {
            bool all = true;
            foreach (char c in t) if (ByteLevelAlphabet.CharToByte(c) < 0) { all = false; break; }
            if (all) foreach (char c in t) bytes.Add((byte)ByteLevelAlphabet.CharToByte(c));
            else bytes.AddRange(Encoding.UTF8.GetBytes(t));
        }
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

/// <summary>HF Replace decoder (string or regex pattern → content), per token.</summary>
internal sealed class ReplaceDecoder(string? literal, CodePointRegex? regex, string content) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var matches = new List<(int Start, int End)>();
        foreach (var t in tokens)
        {
            if (literal != null) { result.Add(literal.Length == 0 ? t : t.Replace(literal, content, StringComparison.Ordinal)); continue; }
            matches.Clear();
            regex!.Matches(t, matches);
            if (matches.Count == 0) { result.Add(t); continue; }
            var sb = new StringBuilder();
            int last = 0;
            foreach (var (s, e) in matches) { sb.Append(t, last, s - last).Append(content); last = e; }
            sb.Append(t, last, t.Length - last);
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>HF ByteFallback: runs of &lt;0xXX&gt; tokens become their UTF-8 string, or one U+FFFD per byte if invalid.</summary>
internal sealed class ByteFallbackDecoder : TokenDecoder
{
    static readonly UTF8Encoding Strict = new(false, throwOnInvalidBytes: true);

    internal static bool TryParseByteToken(string t, out byte b)
    {
        b = 0;
        return t.Length == 6 && t.StartsWith("<0x", StringComparison.Ordinal) && t[5] == '>'
               && byte.TryParse(t.AsSpan(3, 2), System.Globalization.NumberStyles.HexNumber, null, out b);
    }

    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        void Flush()
        {
            if (pending.Count == 0) return;
            try { result.Add(Strict.GetString(pending.ToArray())); }
            catch (DecoderFallbackException) { for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD"); }
            pending.Clear();
        }
        foreach (var t in tokens)
        {
            if (TryParseByteToken(t, out byte b)) { pending.Add(b); continue; }
            Flush();
            result.Add(t);
        }
        Flush();
        return result;
    }
}

internal sealed class FuseDecoder : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>HF Strip decoder: removes up to <c>start</c> leading and <c>stop</c> trailing <c>content</c> chars per token.</summary>
internal sealed class StripDecoder(string content, int start, int stop) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        foreach (var t in tokens)
        {
            var runes = t.EnumerateRunes().ToList();
            int a = 0;
            for (int i = 0; i < Math.Min(start, runes.Count); i++)
            {
                if (runes[i].ToString() == content) a = i + 1; else break;
            }
            int b = runes.Count;
            for (int i = 0; i < stop && runes.Count - i - 1 >= 0; i++)
            {
                int idx = runes.Count - i - 1;
                if (runes[idx].ToString() == content) b = idx; else break;
            }
            var sb = new StringBuilder();
            for (int i = a; i < b; i++) sb.Append(runes[i].ToString());
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>HF Metaspace decoder: replacement → ' ', dropped in the first token unless prepend_scheme is never.</summary>
internal sealed class MetaspaceDecoder(char replacement, string prependScheme) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c == replacement) { if (!(i == 0 && prependScheme != "never")) sb.Append(' '); }
                else sb.Append(c);
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}

/// <summary>HF BPEDecoder: the end-of-word suffix becomes a space (nothing on the last token).</summary>
internal sealed class BpeSuffixDecoder(string suffix) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
            result.Add(suffix.Length == 0 ? tokens[i] : tokens[i].Replace(suffix, i == tokens.Count - 1 ? "" : " ", StringComparison.Ordinal));
        return result;
    }
}

/// <summary>HF WordPiece decoder: continuing tokens lose their prefix, others get a leading space; optional cleanup.</summary>
internal sealed class WordPieceDecoder(string prefix, bool cleanup) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            string t = tokens[i];
            if (i != 0) t = t.StartsWith(prefix, StringComparison.Ordinal) ? t[prefix.Length..] : " " + t;
            if (cleanup) t = CleanUp(t);
            result.Add(t);
        }
        return result;
    }

    internal static string CleanUp(string s) => s.Replace(" .", ".").Replace(" ?", "?").Replace(" !", "!").Replace(" ,", ",")
        .Replace(" ' ", "'").Replace(" n't", "n't").Replace(" 'm", "'m").Replace(" do not", " don't")
        .Replace(" 's", "'s").Replace(" 've", "'ve").Replace(" 're", "'re");
}
