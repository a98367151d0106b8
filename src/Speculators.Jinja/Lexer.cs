using System.Globalization;
using System.Text;
using Speculators.Jinja.Runtime;

namespace Speculators.Jinja;

internal enum Tok
{
    Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float,
    // operators
    Add, Sub, Div, FloorDiv, Mul, Mod, Pow, Tilde, LBracket, RBracket, LParen, RParen, LBrace, RBrace,
    Eq, Ne, Gt, GtEq, Lt, LtEq, Assign, Dot, Colon, Pipe, Comma, Semicolon,
    Eof,
}

internal readonly struct Token
{
    public readonly Tok Type;
    public readonly int Pos;
    public readonly object? Value;
    public Token(Tok type, int pos, object? value = null) { Type = type; Pos = pos; Value = value; }
    public string? Str => Value as string;
    public bool IsName(string name) => Type == Tok.Name && (string)Value! == name;
}

/// <summary>Maps offsets in the (newline-normalized) source to 1-based line and column.</summary>
internal sealed class SourceMap
{
    readonly int[] _lineStarts;
    public SourceMap(string source)
    {
        var starts = new List<int> { 0 };
        for (int i = 0; i < source.Length; i++) if (source[i] == '\n') starts.Add(i + 1);
        _lineStarts = starts.ToArray();
    }
    public (int line, int col) Locate(int pos)
    {
        int idx = Array.BinarySearch(_lineStarts, pos);
        if (idx < 0) idx = ~idx - 1;
        return (idx + 1, pos - _lineStarts[idx] + 1);
    }
}

/// <summary>
/// jinja2's lexer with trim_blocks / lstrip_blocks: the same data/tag splitting, whitespace control
/// ('-' strips, '+' keeps), raw blocks and comments, and the same expression tokens.
/// </summary>
internal sealed class Lexer
{
    readonly string _src;
    readonly bool _trimBlocks, _lstripBlocks;
    readonly SourceMap _map;
    readonly List<Token> _tokens = new();
    int _pos;
    bool _lineStarting = true;

    Lexer(string src, bool trimBlocks, bool lstripBlocks)
    {
        _src = src;
        _trimBlocks = trimBlocks;
        _lstripBlocks = lstripBlocks;
        _map = new SourceMap(src);
    }

    /// <summary>Splits on \r\n, \r and \n, joins with \n, and drops one trailing newline (keep_trailing_newline=False).</summary>
    public static string NormalizeNewlines(string source)
    {
        if (source.IndexOf('\r') >= 0) source = source.Replace("\r\n", "\n").Replace('\r', '\n');
        if (source.EndsWith('\n')) source = source.Substring(0, source.Length - 1);
        return source;
    }

    public static (List<Token> tokens, SourceMap map) Tokenize(string normalizedSource, bool trimBlocks, bool lstripBlocks)
    {
        var lx = new Lexer(normalizedSource, trimBlocks, lstripBlocks);
        lx.Run();
        return (lx._tokens, lx._map);
    }

    JinjaException Error(string msg, int pos)
    {
        var (line, col) = _map.Locate(Math.Min(pos, Math.Max(0, _src.Length)));
        return new JinjaException("TemplateSyntaxError", msg, line, col);
    }

    static bool IsWs(char c) => PyStr.IsSpace(c);

    static string RStripWs(string s)
    {
        int e = s.Length;
        while (e > 0 && IsWs(s[e - 1])) e--;
        return e == s.Length ? s : s.Substring(0, e);
    }

    /// <summary>The whitespace control jinja applies to the text before a tag.</summary>
    string ApplyLeftControl(string text, char sign, bool isVariable)
    {
        if (sign == '-') return RStripWs(text);
        if (sign != '+' && _lstripBlocks && !isVariable)
        {
            int lpos = text.LastIndexOf('\n') + 1;
            if ((lpos > 0 || _lineStarting) && lpos < text.Length)
            {
                bool allWs = true;
                for (int i = lpos; i < text.Length; i++) if (!IsWs(text[i])) { allWs = false; break; }
                if (allWs) return text.Substring(0, lpos);
            }
        }
        return text;
    }

    int SkipWs(int p)
    {
        while (p < _src.Length && IsWs(_src[p])) p++;
        return p;
    }

    /// <summary>Matches a block end (+%}, -%}\s*, %}\n?) at p; returns its end or -1.</summary>
    int MatchBlockEnd(int p)
    {
        if (Starts(p, "+%}")) return p + 3;
        if (Starts(p, "-%}")) return SkipWs(p + 3);
        if (Starts(p, "%}")) return p + 2 + (_trimBlocks && p + 2 < _src.Length && _src[p + 2] == '\n' ? 1 : 0);
        return -1;
    }

    bool Starts(int p, string s) => string.CompareOrdinal(_src, p, s, 0, s.Length) == 0 && p + s.Length <= _src.Length;

    void Run()
    {
        while (_pos < _src.Length)
        {
            int p = FindTagStart(_pos);
            if (p < 0)
            {
                _tokens.Add(new Token(Tok.Data, _pos, _src.Substring(_pos)));
                _pos = _src.Length;
                break;
            }
            string text = _src.Substring(_pos, p - _pos);
            char kind = _src[p + 1];
            char sign = p + 2 < _src.Length && (_src[p + 2] == '-' || _src[p + 2] == '+') ? _src[p + 2] : '\0';
            int rawEnd = kind == '%' ? MatchRawBegin(p) : -1;
            text = ApplyLeftControl(text, sign, kind == '{');
            if (text.Length > 0) _tokens.Add(new Token(Tok.Data, _pos, text));
            if (rawEnd >= 0)
            {
                _lineStarting = _src[rawEnd - 1] == '\n';
                _pos = rawEnd;
                LexRaw(p);
                continue;
            }
            int after = p + 2 + (sign != '\0' ? 1 : 0);
            _lineStarting = false;
            _pos = after;
            switch (kind)
            {
                case '#': LexComment(p); break;
                case '%': _tokens.Add(new Token(Tok.BlockBegin, p)); LexTag(false); break;
                default: _tokens.Add(new Token(Tok.VarBegin, p)); LexTag(true); break;
            }
        }
        _tokens.Add(new Token(Tok.Eof, _src.Length));
    }

    int FindTagStart(int from)
    {
        int i = from;
        while (true)
        {
            i = _src.IndexOf('{', i);
            if (i < 0 || i + 1 >= _src.Length) return -1;
            char c = _src[i + 1];
            if (c == '%' || c == '{' || c == '#') return i;
            i++;
        }
    }

    /// <summary>{%[-+]?\s*raw\s*(-%}\s*|%}) at p; returns the end or -1.</summary>
    int MatchRawBegin(int p)
    {
        int q = p + 2;
        if (q < _src.Length && (_src[q] == '-' || _src[q] == '+')) q++;
        q = SkipWs(q);
        if (!Starts(q, "raw")) return -1;
        q = SkipWs(q + 3);
        if (Starts(q, "-%}")) return SkipWs(q + 3);
        if (Starts(q, "%}")) return q + 2;
        return -1;
    }

    void LexRaw(int beginPos)
    {
        int i = _pos;
        while (true)
        {
            int k = _src.IndexOf("{%", i, StringComparison.Ordinal);
            if (k < 0) throw Error("Missing end of raw directive", beginPos);
            int q = k + 2;
            char sign = '\0';
            if (q < _src.Length && (_src[q] == '-' || _src[q] == '+')) { sign = _src[q]; q++; }
            q = SkipWs(q);
            if (Starts(q, "endraw"))
            {
                int e = MatchBlockEnd(SkipWs(q + 6));
                if (e >= 0)
                {
                    string text = ApplyLeftControl(_src.Substring(_pos, k - _pos), sign, false);
                    if (text.Length > 0) _tokens.Add(new Token(Tok.Data, _pos, text));
                    _lineStarting = _src[e - 1] == '\n';
                    _pos = e;
                    return;
                }
            }
            i = k + 2;
        }
    }

    void LexComment(int beginPos)
    {
        int q = _src.IndexOf("#}", _pos, StringComparison.Ordinal);
        if (q < 0) throw Error("Missing end of comment tag", beginPos);
        int end;
        if (q - 1 >= _pos && _src[q - 1] == '+') end = q + 2;
        else if (q - 1 >= _pos && _src[q - 1] == '-') end = SkipWs(q + 2);
        else end = q + 2 + (_trimBlocks && q + 2 < _src.Length && _src[q + 2] == '\n' ? 1 : 0);
        _lineStarting = _src[end - 1] == '\n';
        _pos = end;
    }

    void LexTag(bool variable)
    {
        var balance = new Stack<char>();
        while (true)
        {
            int p = _pos;
            if (balance.Count == 0)
            {
                int end = variable ? MatchVarEnd(p) : MatchBlockEnd(p);
                if (end >= 0)
                {
                    _tokens.Add(new Token(variable ? Tok.VarEnd : Tok.BlockEnd, p));
                    _lineStarting = _src[end - 1] == '\n';
                    _pos = end;
                    return;
                }
            }
            if (p >= _src.Length) return; // the parser reports the unexpected end
            char c = _src[p];
            if (IsWs(c))
            {
                _pos = SkipWs(p);
                _lineStarting = _src[_pos - 1] == '\n';
                continue;
            }
            _lineStarting = false;
            if (TryNumber(p)) continue;
            if (IsNameStart(c))
            {
                int q = p + 1;
                while (q < _src.Length && IsNameChar(_src[q])) q++;
                _tokens.Add(new Token(Tok.Name, p, _src.Substring(p, q - p)));
                _pos = q;
                continue;
            }
            if (c == '\'' || c == '"')
            {
                int q = p + 1;
                while (q < _src.Length && _src[q] != c)
                {
                    if (_src[q] == '\\') q++;
                    q++;
                }
                if (q < _src.Length)
                {
                    string raw = _src.Substring(p + 1, q - p - 1);
                    _tokens.Add(new Token(Tok.String, p, Unescape(raw, p)));
                    _pos = q + 1;
                    _lineStarting = false;
                    continue;
                }
            }
            var op = MatchOperator(p, out int len);
            if (op != null)
            {
                var t = op.Value;
                if (t is Tok.LParen or Tok.LBracket or Tok.LBrace) balance.Push(t == Tok.LParen ? ')' : t == Tok.LBracket ? ']' : '}');
                else if (t is Tok.RParen or Tok.RBracket or Tok.RBrace)
                {
                    char data = _src[p];
                    if (balance.Count == 0) throw Error($"unexpected '{data}'", p);
                    char expected = balance.Pop();
                    if (expected != data) throw Error($"unexpected '{data}', expected '{expected}'", p);
                }
                _tokens.Add(new Token(t, p, _src.Substring(p, len)));
                _pos = p + len;
                continue;
            }
            throw Error($"unexpected char {Py.Repr(c.ToString())} at {p}", p);
        }
    }

    int MatchVarEnd(int p)
    {
        if (Starts(p, "-}}")) return SkipWs(p + 3);
        if (Starts(p, "}}")) return p + 2;
        return -1;
    }

    static bool IsNameStart(char c) => c == '_' || char.IsLetter(c);
    static bool IsNameChar(char c) => c == '_' || char.IsLetterOrDigit(c)
        || CharUnicodeInfo.GetUnicodeCategory(c) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.ConnectorPunctuation;

    Tok? MatchOperator(int p, out int len)
    {
        len = 2;
        if (p + 1 < _src.Length)
        {
            switch (_src.Substring(p, 2))
            {
                case "//": return Tok.FloorDiv;
                case "**": return Tok.Pow;
                case "==": return Tok.Eq;
                case "!=": return Tok.Ne;
                case ">=": return Tok.GtEq;
                case "<=": return Tok.LtEq;
            }
        }
        len = 1;
        return _src[p] switch
        {
            '+' => Tok.Add, '-' => Tok.Sub, '/' => Tok.Div, '*' => Tok.Mul, '%' => Tok.Mod, '~' => Tok.Tilde,
            '[' => Tok.LBracket, ']' => Tok.RBracket, '(' => Tok.LParen, ')' => Tok.RParen, '{' => Tok.LBrace, '}' => Tok.RBrace,
            '>' => Tok.Gt, '<' => Tok.Lt, '=' => Tok.Assign, '.' => Tok.Dot, ':' => Tok.Colon, '|' => Tok.Pipe, ',' => Tok.Comma, ';' => Tok.Semicolon,
            _ => null,
        };
    }

    // digits possibly separated by single underscores: (\d+_)*\d+
    int Digits(int p)
    {
        int q = p;
        if (q >= _src.Length || !char.IsAsciiDigit(_src[q])) return -1;
        while (true)
        {
            while (q < _src.Length && char.IsAsciiDigit(_src[q])) q++;
            if (q + 1 < _src.Length && _src[q] == '_' && char.IsAsciiDigit(_src[q + 1])) { q++; continue; }
            return q;
        }
    }

    bool TryNumber(int p)
    {
        if (!char.IsAsciiDigit(_src[p])) return false;
        // float: (?<!\.)(\d+_)*\d+((\.(\d+_)*\d+)?e[+\-]?(\d+_)*\d+|\.(\d+_)*\d+)
        if (p == 0 || _src[p - 1] != '.')
        {
            int ip = Digits(p);
            int q = ip;
            int fracEnd = -1;
            if (q < _src.Length && _src[q] == '.') fracEnd = Digits(q + 1);
            int afterFrac = fracEnd >= 0 ? fracEnd : ip;
            int expEnd = -1;
            if (afterFrac < _src.Length && (_src[afterFrac] == 'e' || _src[afterFrac] == 'E'))
            {
                int e = afterFrac + 1;
                if (e < _src.Length && (_src[e] == '+' || _src[e] == '-')) e++;
                expEnd = Digits(e);
            }
            int end = expEnd >= 0 ? expEnd : fracEnd;
            if (end >= 0)
            {
                string txt = _src.Substring(p, end - p).Replace("_", "");
                _tokens.Add(new Token(Tok.Float, p, double.Parse(txt, NumberStyles.Float, CultureInfo.InvariantCulture)));
                _pos = end;
                return true;
            }
        }
        // integer: 0b.. | 0o.. | 0x.. | [1-9](_?\d)* | 0(_?0)*
        if (_src[p] == '0' && p + 1 < _src.Length && "bBoOxX".Contains(_src[p + 1]))
        {
            char k = char.ToLowerInvariant(_src[p + 1]);
            int radix = k == 'b' ? 2 : k == 'o' ? 8 : 16;
            int q = p + 2;
            var sb = new StringBuilder();
            while (q < _src.Length)
            {
                int off = _src[q] == '_' ? 1 : 0;
                if (q + off < _src.Length && IsRadixDigit(_src[q + off], radix)) { sb.Append(_src[q + off]); q += off + 1; }
                else break;
            }
            if (sb.Length > 0)
            {
                _tokens.Add(new Token(Tok.Integer, p, Py.Int(ParseRadix(sb.ToString(), radix, p))));
                _pos = q;
                return true;
            }
        }
        {
            int q = p + 1;
            bool zero = _src[p] == '0';
            while (q < _src.Length)
            {
                int off = _src[q] == '_' ? 1 : 0;
                if (q + off < _src.Length && char.IsAsciiDigit(_src[q + off]) && (!zero || _src[q + off] == '0')) q += off + 1;
                else break;
            }
            string txt = _src.Substring(p, q - p).Replace("_", "");
            if (!long.TryParse(txt, NumberStyles.None, CultureInfo.InvariantCulture, out long v))
                throw Error($"integer literal {txt} is too large (values beyond 64 bits are not supported)", p);
            _tokens.Add(new Token(Tok.Integer, p, Py.Int(v)));
            _pos = q;
            return true;
        }
    }

    static bool IsRadixDigit(char c, int radix) => radix switch
    {
        2 => c is '0' or '1',
        8 => c is >= '0' and <= '7',
        _ => char.IsAsciiHexDigit(c),
    };

    long ParseRadix(string digits, int radix, int pos)
    {
        long v = 0;
        try
        {
            foreach (char c in digits) v = checked(v * radix + Convert.ToInt32(c.ToString(), 16));
        }
        catch (OverflowException) { throw Error("integer literal is too large (values beyond 64 bits are not supported)", pos); }
        return v;
    }

    /// <summary>Python's <c>.encode("ascii", "backslashreplace").decode("unicode-escape")</c> on a string literal's body.</summary>
    string Unescape(string raw, int pos)
    {
        if (raw.IndexOf('\\') < 0) return raw;
        // 1) backslashreplace: non-ASCII becomes \xhh, \uhhhh or \Uhhhhhhhh escape text.
        var ascii = new StringBuilder(raw.Length + 8);
        for (int i = 0; i < raw.Length; i++)
        {
            char c = raw[i];
            if (c < 0x80) { ascii.Append(c); continue; }
            if (char.IsHighSurrogate(c) && i + 1 < raw.Length && char.IsLowSurrogate(raw[i + 1]))
            {
                ascii.Append("\\U").Append(char.ConvertToUtf32(c, raw[i + 1]).ToString("x8"));
                i++;
            }
            else if (c <= 0xff) ascii.Append("\\x").Append(((int)c).ToString("x2"));
            else ascii.Append("\\u").Append(((int)c).ToString("x4"));
        }
        // 2) unicode-escape decoding.
        string s = ascii.ToString();
        var sb = new StringBuilder(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            char c = s[i];
            if (c != '\\') { sb.Append(c); continue; }
            if (i + 1 >= s.Length) throw Error("\\ at end of string", pos);
            char e = s[++i];
            switch (e)
            {
                case '\n': break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'v': sb.Append('\v'); break;
                case >= '0' and <= '7':
                {
                    int v = e - '0', n = 1;
                    while (n < 3 && i + 1 < s.Length && s[i + 1] is >= '0' and <= '7') { v = v * 8 + (s[++i] - '0'); n++; }
                    PyStr.AppendCodePoint(sb, v);
                    break;
                }
                case 'x': sb.Append((char)HexEscape(s, ref i, 2, "truncated \\xXX escape", pos)); break;
                case 'u': sb.Append((char)HexEscape(s, ref i, 4, "truncated \\uXXXX escape", pos)); break;
                case 'U':
                {
                    int v = HexEscape(s, ref i, 8, "truncated \\UXXXXXXXX escape", pos);
                    if (v > 0x10FFFF) throw Error("illegal Unicode character", pos);
                    PyStr.AppendCodePoint(sb, v);
                    break;
                }
                case 'N': throw Error("\\N{...} escapes are not supported", pos);
                default: sb.Append('\\').Append(e); break;
            }
        }
        return sb.ToString();
    }

    int HexEscape(string s, ref int i, int n, string msg, int pos)
    {
        int v = 0;
        for (int k = 1; k <= n; k++)
        {
            if (i + k >= s.Length || !char.IsAsciiHexDigit(s[i + k])) throw Error(msg, pos);
            v = v * 16 + Convert.ToInt32(s[i + k].ToString(), 16);
        }
        i += n;
        return v;
    }
}
