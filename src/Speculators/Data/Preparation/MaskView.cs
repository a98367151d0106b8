using System.Globalization;
using System.Net;
using System.Text;
using Speculators.Text;

namespace Speculators.Data.Preparation;

/// <summary>
/// The text of one or more consecutive tokens of a row (several when a character is split over tokens:
/// the text appears once it is complete) and how many of them are supervised.
/// </summary>
public sealed record MaskPiece(int FirstToken, int LastToken, int[] Ids, string Text, int Supervised)
{
    public int Count => LastToken - FirstToken + 1;
    public bool AllSupervised => Supervised == Count;
}

/// <summary>Counts shown with a row.</summary>
public sealed record MaskStats(int Tokens, int Supervised, int SupervisedRuns)
{
    public double Fraction => Tokens == 0 ? 0 : (double)Supervised / Tokens;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"{Tokens} tokens, {Supervised} supervised ({100 * Fraction:F1}%) in {SupervisedRuns} run(s)");
}

/// <summary>
/// Shows a prepared row with its supervised tokens highlighted: terminal colours (token boundaries as alternating
/// shades), plain text (supervised runs in ⟦…⟧), a token table, or a standalone HTML page (escaped text, one box
/// per token with its index, id and mask in the tooltip).
/// </summary>
public static class MaskView
{
    /// <summary>Splits a row into decoded pieces with <see cref="HfTokenizer.CreateStreamDecoder"/>.</summary>
    public static List<MaskPiece> Pieces(HfTokenizer tokenizer, ReadOnlySpan<long> ids, ReadOnlySpan<long> mask)
    {
        if (ids.Length != mask.Length) throw new ArgumentException($"input_ids has {ids.Length} tokens but loss_mask has {mask.Length}.");
        var pieces = new List<MaskPiece>();
        var decoder = tokenizer.CreateStreamDecoder();
        int start = 0, supervised = 0;
        for (int i = 0; i < ids.Length; i++)
        {
            if (mask[i] != 0) supervised++;
            long id = ids[i];
            string? text = id is >= 0 and <= int.MaxValue ? decoder.Step((int)id) : $"<id {id}>";
            if (text == null && i < ids.Length - 1) continue;
            text ??= decoder.Flush();
            pieces.Add(new MaskPiece(start, i, ToInts(ids[start..(i + 1)]), text, supervised));
            start = i + 1;
            supervised = 0;
        }
        return pieces;
    }

    static int[] ToInts(ReadOnlySpan<long> s)
    {
        var a = new int[s.Length];
        for (int i = 0; i < s.Length; i++) a[i] = (int)Math.Clamp(s[i], int.MinValue, int.MaxValue);
        return a;
    }

    public static MaskStats Stats(ReadOnlySpan<long> mask)
    {
        int supervised = 0, runs = 0;
        bool prev = false;
        foreach (long m in mask)
        {
            bool on = m != 0;
            if (on) supervised++;
            if (on && !prev) runs++;
            prev = on;
        }
        return new MaskStats(mask.Length, supervised, runs);
    }

    /// <summary>The supervised text: the decoded runs of supervised tokens, in order.</summary>
    public static List<string> SupervisedRuns(HfTokenizer tokenizer, ReadOnlySpan<long> ids, ReadOnlySpan<long> mask)
    {
        var runs = new List<string>();
        var current = new List<int>();
        for (int i = 0; i <= ids.Length; i++)
        {
            if (i < ids.Length && mask[i] != 0) { current.Add((int)ids[i]); continue; }
            if (current.Count > 0) runs.Add(tokenizer.Decode(current));
            current.Clear();
        }
        return runs;
    }

    /// <summary>ANSI colours: supervised tokens on green, context in grey; neighbouring tokens alternate shades.</summary>
    public static string Ansi(IReadOnlyList<MaskPiece> pieces)
    {
        var sb = new StringBuilder();
        for (int k = 0; k < pieces.Count; k++)
        {
            var p = pieces[k];
            bool alt = k % 2 == 1;
            string style = p.Supervised > 0
                ? (alt ? "\u001b[30;48;5;114m" : "\u001b[30;48;5;151m")
                : (alt ? "\u001b[37;48;5;238m" : "\u001b[37;48;5;236m");
            var lines = Visible(p.Text).Split('\n');
            for (int i = 0; i < lines.Length; i++)
            {
                if (i > 0) sb.Append('\n');
                if (lines[i].Length > 0) sb.Append(style).Append(lines[i]).Append("\u001b[0m");
            }
        }
        return sb.ToString();
    }

    /// <summary>No colours: supervised runs are wrapped in ⟦ ⟧.</summary>
    public static string Plain(IReadOnlyList<MaskPiece> pieces)
    {
        var sb = new StringBuilder();
        bool open = false;
        foreach (var p in pieces)
        {
            bool on = p.Supervised > 0;
            if (on && !open) sb.Append('⟦');
            if (!on && open) sb.Append('⟧');
            open = on;
            sb.Append(p.Text);
        }
        if (open) sb.Append('⟧');
        return sb.ToString();
    }

    /// <summary>One line per token: index, id, mask, the token's text as a JSON string (the text of a split character is on its last token).</summary>
    public static string TokenTable(IReadOnlyList<MaskPiece> pieces, ReadOnlySpan<long> mask)
    {
        var sb = new StringBuilder();
        sb.Append("index\tid\tmask\ttext\n");
        foreach (var p in pieces)
            for (int t = p.FirstToken; t <= p.LastToken; t++)
            {
                string text = t == p.LastToken ? p.Text : "";
                sb.Append(t).Append('\t').Append(p.Ids[t - p.FirstToken]).Append('\t').Append(mask[t]).Append('\t')
                  .Append(System.Text.Json.JsonSerializer.Serialize(text)).Append('\n');
            }
        return sb.ToString();
    }

    /// <summary>A standalone HTML page (all text escaped).</summary>
    public static string Html(IReadOnlyList<MaskPiece> pieces, ReadOnlySpan<long> mask, string title, MaskStats stats)
    {
        var sb = new StringBuilder();
        sb.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>").Append(WebUtility.HtmlEncode(title)).Append("</title>\n<style>\n")
          .Append("body{font-family:sans-serif;margin:2em;}\n")
          .Append(".row{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all;line-height:1.7;}\n")
          .Append(".t{border-right:1px solid #bbb;padding:1px 0;}\n")
          .Append(".s{background:#b9e4b9;color:#000;}\n.s.a{background:#8fd18f;}\n")
          .Append(".u{background:#f2f2f2;color:#777;}\n.u.a{background:#e4e4e4;}\n")
          .Append(".m{background:#ffe08a;}\n.nl{color:#999;}\n")
          .Append("</style>\n</head>\n<body>\n<h1>").Append(WebUtility.HtmlEncode(title)).Append("</h1>\n<p>")
          .Append(WebUtility.HtmlEncode(stats.ToString()))
          .Append(". <span class=\"t s\">supervised</span> <span class=\"t u\">context</span> (one box per token; hover for index, id and mask)</p>\n<div class=\"row\">");
        for (int k = 0; k < pieces.Count; k++)
        {
            var p = pieces[k];
            string cls = p.Supervised == 0 ? "u" : p.AllSupervised ? "s" : "m";
            if (k % 2 == 1) cls += " a";
            var tip = new StringBuilder();
            for (int t = p.FirstToken; t <= p.LastToken; t++)
            {
                if (t > p.FirstToken) tip.Append('\n');
                tip.Append('#').Append(t).Append(" id ").Append(p.Ids[t - p.FirstToken]).Append(" mask ").Append(mask[t]);
            }
            sb.Append("<span class=\"t ").Append(cls).Append("\" title=\"").Append(WebUtility.HtmlEncode(tip.ToString())).Append("\">");
            string text = p.Text;
            for (int i = 0; i < text.Length; i++)
            {
                char c = text[i];
                if (c == '\n') sb.Append("<span class=\"nl\">↵</span>\n");
                else if (char.IsHighSurrogate(c) && i + 1 < text.Length) { sb.Append(WebUtility.HtmlEncode(text.Substring(i, 2))); i++; }
                else sb.Append(WebUtility.HtmlEncode(c.ToString()));
            }
            sb.Append("</span>");
        }
        sb.Append("</div>\n</body>\n</html>\n");
        return sb.ToString();
    }

    /// <summary>Newlines get a visible ↵ before them; other control characters are shown as \uXXXX.</summary>
    static string Visible(string s)
    {
        var sb = new StringBuilder(s.Length + 4);
        foreach (char c in s)
        {
            if (c == '\n') sb.Append("↵\n");
            else if (c == '\t') sb.Append('\t');
            else if (char.IsControl(c)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
