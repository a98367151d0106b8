using System.Globalization;
using System.Numerics;
using System.Text;

namespace Speculators.Jinja.Runtime;

/// <summary>Python number formatting: float repr, printf-style %, str.format, round(), strftime.</summary>
internal static class PyFormat
{
    // ---------------------------------------------------------------- float repr

    /// <summary>repr(float): shortest round-trip digits, exponent form when exp &lt; -4 or &gt;= 16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        if (d == Math.Floor(d) && Math.Abs(d) < 1e16) return ((long)d).ToString(CultureInfo.InvariantCulture) + ".0";
        var (neg, digits, decpt) = ShortestDigits(d);
        var sb = new StringBuilder(24);
        if (neg) sb.Append('-');
        if (decpt <= -4 || decpt > 16)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            int e = decpt - 1;
            sb.Append('e').Append(e < 0 ? '-' : '+');
            e = Math.Abs(e);
            if (e < 10) sb.Append('0');
            sb.Append(e);
        }
        else if (decpt <= 0)
        {
            sb.Append("0.").Append('0', -decpt).Append(digits);
        }
        else if (decpt >= digits.Length)
        {
            sb.Append(digits).Append('0', decpt - digits.Length).Append(".0");
        }
        else
        {
            sb.Append(digits, 0, decpt).Append('.').Append(digits, decpt, digits.Length - decpt);
        }
        return sb.ToString();
    }

    /// <summary>Shortest round-trip significant digits and the decimal point position (value = 0.DIGITS × 10^decpt).</summary>
    static (bool neg, string digits, int decpt) ShortestDigits(double d)
    {
        string shortest = d.ToString("R", CultureInfo.InvariantCulture);
        // "R" gives the shortest round-trip form, in fixed or exponent notation; normalize it.
        bool neg = shortest[0] == '-';
        if (neg) shortest = shortest.Substring(1);
        int exp = 0;
        int ePos = shortest.IndexOfAny(['E', 'e']);
        string mant = shortest;
        if (ePos >= 0)
        {
            exp = int.Parse(shortest.AsSpan(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            mant = shortest.Substring(0, ePos);
        }
        int dot = mant.IndexOf('.');
        string intPart = dot >= 0 ? mant.Substring(0, dot) : mant;
        string frac = dot >= 0 ? mant.Substring(dot + 1) : "";
        string all = intPart + frac;
        int decpt = intPart.Length + exp;
        int lead = 0;
        while (lead < all.Length - 1 && all[lead] == '0') { lead++; decpt--; }
        all = all.Substring(lead).TrimEnd('0');
        if (all.Length == 0) all = "0";
        return (neg, all, decpt);
    }

    // ---------------------------------------------------------------- exact decimal rounding

    /// <summary>
    /// |d| written with exactly <paramref name="places"/> digits after the point, rounded half-even on
    /// the exact binary value (what Python's '%.Nf' and round() do). Returns the digit string without
    /// a point; the point goes <paramref name="places"/> digits from the right.
    /// </summary>
    static BigInteger ScaledRound(double d, int places)
    {
        long bits = BitConverter.DoubleToInt64Bits(Math.Abs(d));
        int exponent = (int)((bits >> 52) & 0x7FF);
        long mantissa = bits & 0xFFFFFFFFFFFFFL;
        if (exponent == 0) exponent = 1; else mantissa |= 1L << 52;
        exponent -= 1075; // value = mantissa * 2^exponent
        BigInteger num = mantissa;
        BigInteger den = BigInteger.One;
        if (exponent > 0) num <<= exponent; else den <<= -exponent;
        if (places >= 0) num *= BigInteger.Pow(10, places); else den *= BigInteger.Pow(10, -places);
        var q = BigInteger.DivRem(num, den, out var rem);
        var twice = rem * 2;
        int c = twice.CompareTo(den);
        if (c > 0 || (c == 0 && !q.IsEven)) q += 1;
        return q;
    }

    /// <summary>'%.{p}f' formatting of a finite double.</summary>
    public static string Fixed(double d, int precision)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsInfinity(d)) return d > 0 ? "inf" : "-inf";
        var q = ScaledRound(d, precision).ToString(CultureInfo.InvariantCulture);
        if (q.Length <= precision) q = new string('0', precision - q.Length + 1) + q;
        string s = precision == 0 ? q : q.Substring(0, q.Length - precision) + "." + q.Substring(q.Length - precision);
        return double.IsNegative(d) ? "-" + s : s;
    }

    /// <summary>Significant digits (rounded half-even, exact) and the exponent of the first digit.</summary>
    static (string digits, int exp10) Significant(double d, int ndigits)
    {
        if (d == 0) return (new string('0', ndigits), 0);
        int e = (int)Math.Floor(Math.Log10(Math.Abs(d)));
        for (int attempt = 0; attempt < 3; attempt++)
        {
            var q = ScaledRound(d, ndigits - 1 - e).ToString(CultureInfo.InvariantCulture);
            if (q.Length == ndigits) return (q, e);
            if (q.Length > ndigits) e++; else e--;
        }
        var last = ScaledRound(d, ndigits - 1 - e).ToString(CultureInfo.InvariantCulture);
        return (last.Substring(0, Math.Min(ndigits, last.Length)).PadRight(ndigits, '0'), e);
    }

    /// <summary>'%.{p}e' formatting.</summary>
    public static string Exp(double d, int precision, bool upper)
    {
        if (double.IsNaN(d)) return upper ? "NAN" : "nan";
        if (double.IsInfinity(d)) return (d > 0 ? "" : "-") + (upper ? "INF" : "inf");
        var (digits, e) = Significant(d, precision + 1);
        var sb = new StringBuilder();
        if (double.IsNegative(d)) sb.Append('-');
        sb.Append(digits[0]);
        if (precision > 0) sb.Append('.').Append(digits, 1, precision);
        sb.Append(upper ? 'E' : 'e').Append(e < 0 ? '-' : '+');
        int ae = Math.Abs(e);
        if (ae < 10) sb.Append('0');
        sb.Append(ae);
        return sb.ToString();
    }

    /// <summary>'%.{p}g' formatting (alt keeps trailing zeros).</summary>
    public static string General(double d, int precision, bool upper, bool alt, bool addDot0 = false)
    {
        if (double.IsNaN(d)) return upper ? "NAN" : "nan";
        if (double.IsInfinity(d)) return (d > 0 ? "" : "-") + (upper ? "INF" : "inf");
        if (precision == 0) precision = 1;
        int e = d == 0 ? 0 : Significant(d, precision).exp10;
        string s;
        // format() with a precision and no type ("{:.5}") is 'g' that switches to exponent form one digit
        // earlier and keeps a ".0" (CPython's Py_DTSF_ADD_DOT_0).
        if (e >= -4 && e < (addDot0 ? precision - 1 : precision))
        {
            s = Fixed(d, precision - 1 - e);
            if (!alt && s.Contains('.')) s = s.TrimEnd('0').TrimEnd('.');
            if (addDot0 && !s.Contains('.')) s += ".0";
        }
        else
        {
            s = Exp(d, precision - 1, upper);
            if (!alt)
            {
                int ep = s.IndexOfAny(['e', 'E']);
                string m = s.Substring(0, ep);
                if (m.Contains('.')) m = m.TrimEnd('0').TrimEnd('.');
                s = m + s.Substring(ep);
            }
        }
        return s;
    }

    /// <summary>Python round(x, ndigits) for floats: correctly rounded, half-even.</summary>
    public static double Round(double x, long ndigits)
    {
        if (double.IsNaN(x) || double.IsInfinity(x) || x == 0) return x;
        if (ndigits > 330) return x;
        if (ndigits < -330) return 0.0 * x;
        var q = ScaledRound(x, (int)ndigits);
        string s = q.ToString(CultureInfo.InvariantCulture);
        string text = ndigits >= 0 ? s + "E-" + ndigits : s + "E+" + (-ndigits);
        double r = double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture);
        return double.IsNegative(x) ? -r : r;
    }

    // ---------------------------------------------------------------- printf-style %

    /// <summary>str % args.</summary>
    public static string Percent(string fmt, object? args, bool escape)
    {
        object?[] items;
        PyDict? mapping = null;
        if (args is PyTuple t) items = t.Items;
        else
        {
            items = [args];
            if (args is PyDict d) mapping = d;
        }
        bool mappingLike = args is PyDict || args is List<object?>;
        int argi = 0;
        var sb = new StringBuilder(fmt.Length + 16);
        int i = 0;
        object? NextArg()
        {
            if (argi >= items.Length) throw Py.TypeError("not enough arguments for format string");
            var a = items[argi++];
            return escape ? Markup.EscapeValue(a) : a;
        }
        while (i < fmt.Length)
        {
            char c = fmt[i];
            if (c != '%') { sb.Append(c); i++; continue; }
            i++;
            if (i >= fmt.Length) throw Py.ValueError("incomplete format");
            object? value = null;
            bool haveValue = false;
            if (fmt[i] == '(')
            {
                if (mapping == null) throw Py.TypeError("format requires a mapping");
                int depth = 1, k = i + 1;
                while (k < fmt.Length && depth > 0) { if (fmt[k] == '(') depth++; else if (fmt[k] == ')') depth--; k++; }
                if (depth > 0) throw Py.ValueError("incomplete format key");
                string key = fmt.Substring(i + 1, k - i - 2);
                if (!mapping.TryGet(key, out value)) throw new JinjaException("KeyError", Py.Repr(key));
                if (escape) value = Markup.EscapeValue(value);
                haveValue = true;
                i = k;
            }
            var spec = new Spec();
            while (i < fmt.Length && "-+ #0".Contains(fmt[i]))
            {
                switch (fmt[i])
                {
                    case '-': spec.Left = true; break;
                    case '+': spec.Sign = '+'; break;
                    case ' ': if (spec.Sign != '+') spec.Sign = ' '; break;
                    case '#': spec.Alt = true; break;
                    case '0': spec.Zero = true; break;
                }
                i++;
            }
            if (i < fmt.Length && fmt[i] == '*')
            {
                var w = NextArg();
                if (!Py.IsInt(w)) throw Py.TypeError("* wants int");
                spec.Width = (int)Py.AsLong(w);
                if (spec.Width < 0) { spec.Left = true; spec.Width = -spec.Width; }
                i++;
            }
            else spec.Width = ReadInt(fmt, ref i);
            if (i < fmt.Length && fmt[i] == '.')
            {
                i++;
                if (i < fmt.Length && fmt[i] == '*')
                {
                    var p = NextArg();
                    if (!Py.IsInt(p)) throw Py.TypeError("* wants int");
                    spec.Precision = Math.Max(0, (int)Py.AsLong(p));
                    i++;
                }
                else spec.Precision = Math.Max(0, ReadInt(fmt, ref i));
            }
            while (i < fmt.Length && fmt[i] is 'h' or 'l' or 'L') i++;
            if (i >= fmt.Length) throw Py.ValueError("incomplete format");
            char type = fmt[i++];
            if (type == '%') { sb.Append('%'); continue; }
            if (!haveValue) value = NextArg();
            sb.Append(FormatOne(value, type, spec, i - 1));
        }
        if (argi < items.Length && !mappingLike) throw Py.TypeError("not all arguments converted during string formatting");
        return sb.ToString();
    }

    static int ReadInt(string s, ref int i)
    {
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        return i == start ? -1 : int.Parse(s.AsSpan(start, i - start), CultureInfo.InvariantCulture);
    }

    struct Spec
    {
        public bool Left, Alt, Zero;
        public char Sign;
        public int Width;
        public int Precision;
        public Spec() { Width = -1; Precision = -1; Sign = '\0'; }
    }

    static string FormatOne(object? v, char type, Spec spec, int pos)
    {
        string body;
        bool numeric = false;
        switch (type)
        {
            case 's':
                body = Py.Str(v);
                if (spec.Precision >= 0) body = TruncateCodePoints(body, spec.Precision);
                break;
            case 'r':
            case 'a':
                body = type == 'a' ? AsciiRepr(v) : Py.Repr(v);
                if (spec.Precision >= 0) body = TruncateCodePoints(body, spec.Precision);
                break;
            case 'd':
            case 'i':
            case 'u':
            {
                if (!Py.IsNumber(v)) throw Py.TypeError($"%{type} format: a real number is required, not {Py.TypeName(v)}");
                long l = v is double dd ? TruncToLong(dd) : Py.AsLong(v);
                body = SignedInt(l, spec, 10, false);
                numeric = true;
                break;
            }
            case 'x':
            case 'X':
            case 'o':
            {
                if (!Py.IsInt(v)) throw Py.TypeError($"%{type} format: an integer is required, not {Py.TypeName(v)}");
                int radix = type == 'o' ? 8 : 16;
                body = SignedInt(Py.AsLong(v), spec, radix, type == 'X');
                numeric = true;
                break;
            }
            case 'e':
            case 'E':
            case 'f':
            case 'F':
            case 'g':
            case 'G':
            {
                if (!Py.IsNumber(v)) throw Py.TypeError($"must be real number, not {Py.TypeName(v)}");
                double d = Py.AsDouble(v);
                int p = spec.Precision < 0 ? 6 : spec.Precision;
                string s = type switch
                {
                    'e' or 'E' => Exp(d, p, type == 'E'),
                    'f' or 'F' => Fixed(d, p),
                    _ => General(d, p, type == 'G', spec.Alt),
                };
                if (type == 'F') s = s.ToUpperInvariant();
                if (spec.Alt && !s.Contains('.') && type is 'f' or 'F' or 'e' or 'E' && !s.Contains("nan") && !s.Contains("inf"))
                {
                    int ep = s.IndexOfAny(['e', 'E']);
                    s = ep < 0 ? s + "." : s.Insert(ep, ".");
                }
                if (!s.StartsWith('-') && spec.Sign != '\0') s = spec.Sign + s;
                body = s;
                numeric = true;
                break;
            }
            case 'c':
                if (Py.IsInt(v)) body = PyStr.CodePointString((int)Py.AsLong(v));
                else if (v is string cs && PyStr.Length(cs) == 1) body = cs;
                else throw Py.TypeError("%c requires int or char");
                break;
            default:
                throw Py.ValueError($"unsupported format character '{type}' (0x{(int)type:x}) at index {pos}");
        }
        return PadField(body, spec, numeric);
    }

    static long TruncToLong(double d)
    {
        if (double.IsNaN(d)) throw Py.ValueError("cannot convert float NaN to integer");
        if (double.IsInfinity(d)) throw new JinjaException("OverflowError", "cannot convert float infinity to integer");
        return (long)Math.Truncate(d);
    }

    static string SignedInt(long l, Spec spec, int radix, bool upper)
    {
        bool neg = l < 0;
        ulong mag = neg ? (ulong)(-(l + 1)) + 1 : (ulong)l;
        string digits = radix == 10 ? mag.ToString(CultureInfo.InvariantCulture) : radix == 16 ? mag.ToString(upper ? "X" : "x") : Convert.ToString((long)mag, 8);
        if (spec.Precision > digits.Length) digits = new string('0', spec.Precision - digits.Length) + digits;
        string prefix = spec.Alt ? radix switch { 16 => upper ? "0X" : "0x", 8 => "0o", _ => "" } : "";
        string sign = neg ? "-" : spec.Sign != '\0' ? spec.Sign.ToString() : "";
        return sign + prefix + digits;
    }

    static string PadField(string body, Spec spec, bool numeric)
    {
        int len = PyStr.Length(body);
        if (spec.Width <= len) return body;
        int pad = spec.Width - len;
        if (spec.Left) return body + new string(' ', pad);
        if (spec.Zero && numeric && !body.Contains("inf") && !body.Contains("nan") && !body.Contains("INF") && !body.Contains("NAN"))
        {
            int signLen = body.Length > 0 && (body[0] == '-' || body[0] == '+' || body[0] == ' ') ? 1 : 0;
            if (body.Length >= signLen + 2 && body[signLen] == '0' && body[signLen + 1] is 'x' or 'X' or 'o') signLen += 2;
            return body.Substring(0, signLen) + new string('0', pad) + body.Substring(signLen);
        }
        return new string(' ', pad) + body;
    }

    static string TruncateCodePoints(string s, int n)
    {
        if (PyStr.Length(s) <= n) return s;
        return PyStr.Slice(s, new PySlice(null, (long)n, null));
    }

    /// <summary>ascii(v): repr with every non-ASCII code point escaped.</summary>
    public static string AsciiRepr(object? v)
    {
        string r = Py.Repr(v);
        var sb = new StringBuilder(r.Length);
        foreach (int cp in PyStr.CodePoints(r))
        {
            if (cp < 0x80) sb.Append((char)cp);
            else if (cp <= 0xff) sb.Append("\\x").Append(cp.ToString("x2"));
            else if (cp <= 0xffff) sb.Append("\\u").Append(cp.ToString("x4"));
            else sb.Append("\\U").Append(cp.ToString("x8"));
        }
        return sb.ToString();
    }

    // ---------------------------------------------------------------- str.format

    /// <summary>str.format(*args, **kwargs) through jinja's sandboxed formatter (attribute access is sandboxed).</summary>
    public static string StrFormat(RenderState st, string fmt, IReadOnlyList<object?> args, PyDict kwargs, bool escape)
    {
        var sb = new StringBuilder(fmt.Length + 16);
        int auto = 0;
        bool usedAuto = false, usedManual = false;
        int i = 0;
        while (i < fmt.Length)
        {
            char c = fmt[i];
            if (c == '{')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '{') { sb.Append('{'); i += 2; continue; }
                int depth = 1, k = i + 1;
                while (k < fmt.Length && depth > 0)
                {
                    if (fmt[k] == '{') depth++;
                    else if (fmt[k] == '}') depth--;
                    if (depth > 0) k++;
                }
                if (k >= fmt.Length) throw Py.ValueError("expected '}' before end of string");
                string field = fmt.Substring(i + 1, k - i - 1);
                i = k + 1;
                string? conv = null, fspec = "";
                int colon = IndexOutsideBrackets(field, ':');
                if (colon >= 0) { fspec = field.Substring(colon + 1); field = field.Substring(0, colon); }
                int bang = IndexOutsideBrackets(field, '!');
                if (bang >= 0) { conv = field.Substring(bang + 1); field = field.Substring(0, bang); }
                // Nested replacement fields inside the spec, e.g. {:{width}}.
                if (fspec.Contains('{')) fspec = StrFormat(st, fspec, args, kwargs, false);
                object? value = ResolveField(st, field, args, kwargs, ref auto, ref usedAuto, ref usedManual);
                if (conv != null)
                {
                    value = conv switch
                    {
                        "r" => Py.Repr(value),
                        "s" => Py.Str(value),
                        "a" => AsciiRepr(value),
                        _ => throw Py.ValueError($"Unknown conversion specifier {conv}"),
                    };
                }
                if (escape) value = Markup.EscapeValue(value);
                sb.Append(FormatSpec(value, fspec));
                continue;
            }
            if (c == '}')
            {
                if (i + 1 < fmt.Length && fmt[i + 1] == '}') { sb.Append('}'); i += 2; continue; }
                throw Py.ValueError("Single '}' encountered in format string");
            }
            sb.Append(c);
            i++;
        }
        return sb.ToString();
    }

    static int IndexOutsideBrackets(string s, char ch)
    {
        int depth = 0;
        for (int i = 0; i < s.Length; i++)
        {
            if (s[i] == '[') depth++;
            else if (s[i] == ']') depth--;
            else if (s[i] == ch && depth == 0) return i;
        }
        return -1;
    }

    static object? ResolveField(RenderState st, string field, IReadOnlyList<object?> args, PyDict kwargs, ref int auto, ref bool usedAuto, ref bool usedManual)
    {
        int k = 0;
        while (k < field.Length && field[k] != '.' && field[k] != '[') k++;
        string first = field.Substring(0, k);
        object? obj;
        if (first.Length == 0)
        {
            if (usedManual) throw Py.ValueError("cannot switch from manual field specification to automatic field numbering");
            usedAuto = true;
            int idx = auto++;
            if (idx >= args.Count) throw new JinjaException("IndexError", $"Replacement index {idx} out of range for positional args tuple");
            obj = args[idx];
        }
        else if (first.All(char.IsAsciiDigit))
        {
            if (usedAuto) throw Py.ValueError("cannot switch from automatic field numbering to manual field specification");
            usedManual = true;
            int idx = int.Parse(first, CultureInfo.InvariantCulture);
            if (idx >= args.Count) throw new JinjaException("IndexError", $"Replacement index {idx} out of range for positional args tuple");
            obj = args[idx];
        }
        else
        {
            if (!kwargs.TryGet(first, out obj)) throw new JinjaException("KeyError", Py.Repr(first));
        }
        while (k < field.Length)
        {
            if (field[k] == '.')
            {
                int e = k + 1;
                while (e < field.Length && field[e] != '.' && field[e] != '[') e++;
                obj = Access.GetAttr(obj, field.Substring(k + 1, e - k - 1));
                k = e;
            }
            else
            {
                int e = field.IndexOf(']', k);
                if (e < 0) throw Py.ValueError("Missing ']' in format string");
                string key = field.Substring(k + 1, e - k - 1);
                object keyObj = key.Length > 0 && key.All(char.IsAsciiDigit) ? Py.Int(long.Parse(key, CultureInfo.InvariantCulture)) : key;
                obj = Access.GetItem(obj, keyObj);
                k = e + 1;
            }
        }
        _ = st;
        return obj;
    }

    /// <summary>format(value, spec) for the format mini-language.</summary>
    public static string FormatSpec(object? value, string spec)
    {
        if (spec.Length == 0) return Py.Str(value);
        int i = 0;
        char fill = ' ', align = '\0';
        if (spec.Length >= 2 && spec[1] is '<' or '>' or '^' or '=') { fill = spec[0]; align = spec[1]; i = 2; }
        else if (spec[0] is '<' or '>' or '^' or '=') { align = spec[0]; i = 1; }
        char sign = '\0';
        if (i < spec.Length && spec[i] is '+' or '-' or ' ') sign = spec[i++];
        bool alt = false;
        if (i < spec.Length && spec[i] == '#') { alt = true; i++; }
        if (i < spec.Length && spec[i] == '0')
        {
            if (align == '\0') { fill = '0'; align = '='; }
            i++;
        }
        int width = ReadInt(spec, ref i);
        char grouping = '\0';
        if (i < spec.Length && spec[i] is ',' or '_') grouping = spec[i++];
        int precision = -1;
        if (i < spec.Length && spec[i] == '.')
        {
            i++;
            precision = ReadInt(spec, ref i);
            if (precision < 0) throw Py.ValueError("Format specifier missing precision");
        }
        char type = i < spec.Length ? spec[i++] : '\0';
        if (i != spec.Length) throw Py.ValueError("Invalid format specifier");

        string body;
        bool numeric = Py.IsNumber(value) && value is not bool || (value is bool && type != '\0' && type != 's');
        if (value is string || value is Markup || (!Py.IsNumber(value)))
        {
            if (type != '\0' && type != 's') throw Py.ValueError($"Unknown format code '{type}' for object of type '{Py.TypeName(value)}'");
            body = Py.Str(value);
            if (precision >= 0) body = TruncateCodePoints(body, precision);
            if (align == '\0') align = '<';
            numeric = false;
        }
        else if (value is bool && type == '\0')
        {
            body = Py.Str(value);
            if (align == '\0') align = '<';
            numeric = false;
        }
        else
        {
            if (align == '\0') align = '>';
            bool isInt = Py.IsInt(value);
            if (type == '\0' && isInt) type = 'd';
            string s;
            switch (type)
            {
                case 'd' or 'n':
                    if (!isInt) throw Py.ValueError($"Unknown format code 'd' for object of type 'float'");
                    s = Math.Abs((decimal)Py.AsLong(value)).ToString(CultureInfo.InvariantCulture);
                    s = Group(s, grouping);
                    break;
                case 'x' or 'X' or 'o' or 'b':
                {
                    if (!isInt) throw Py.ValueError($"Unknown format code '{type}' for object of type 'float'");
                    long l = Py.AsLong(value);
                    ulong mag = l < 0 ? (ulong)(-(l + 1)) + 1 : (ulong)l;
                    s = type switch { 'x' => mag.ToString("x"), 'X' => mag.ToString("X"), 'o' => Convert.ToString((long)mag, 8), _ => Convert.ToString((long)mag, 2) };
                    if (alt) s = (type switch { 'x' => "0x", 'X' => "0X", 'o' => "0o", _ => "0b" }) + s;
                    break;
                }
                case 'c':
                    s = PyStr.CodePointString((int)Py.AsLong(value));
                    break;
                case 'f' or 'F' or 'e' or 'E' or 'g' or 'G' or '%' or '\0':
                {
                    double d = Math.Abs(Py.AsDouble(value));
                    int p = precision < 0 ? 6 : precision;
                    if (type == '\0')
                    {
                        s = precision < 0 ? PyFormat.FloatRepr(d) : General(d, p, false, alt, addDot0: true);
                    }
                    else if (type == '%') s = Fixed(d * 100, p) + "%";
                    else s = type switch
                    {
                        'f' => Fixed(d, p),
                        'F' => Fixed(d, p).ToUpperInvariant(),
                        'e' or 'E' => Exp(d, p, type == 'E'),
                        _ => General(d, p, type == 'G', alt),
                    };
                    if (grouping != '\0')
                    {
                        int dot = s.IndexOfAny(['.', 'e', 'E', '%']);
                        string ip = dot < 0 ? s : s.Substring(0, dot);
                        s = Group(ip, grouping) + (dot < 0 ? "" : s.Substring(dot));
                    }
                    break;
                }
                default:
                    throw Py.ValueError($"Unknown format code '{type}' for object of type '{Py.TypeName(value)}'");
            }
            bool neg = value is double dv ? double.IsNegative(dv) && !double.IsNaN(dv) : Py.AsLong(value) < 0;
            string signStr = neg ? "-" : sign == '+' ? "+" : sign == ' ' ? " " : "";
            body = signStr + s;
            if (align == '=' && width > PyStr.Length(body))
                return signStr + new string(fill, width - PyStr.Length(body)) + s;
        }
        int len = PyStr.Length(body);
        if (width <= len) return body;
        int pad = width - len;
        return align switch
        {
            '<' => body + new string(fill, pad),
            '^' => new string(fill, pad / 2) + body + new string(fill, pad - pad / 2),
            '=' => new string(fill, pad) + body,
            _ => new string(fill, pad) + body,
        };
    }

    static string Group(string digits, char sep)
    {
        if (sep == '\0' || digits.Length <= 3) return digits;
        var sb = new StringBuilder();
        int first = digits.Length % 3;
        if (first > 0) sb.Append(digits, 0, first);
        for (int i = first; i < digits.Length; i += 3)
        {
            if (sb.Length > 0) sb.Append(sep);
            sb.Append(digits, i, 3);
        }
        return sb.ToString();
    }

    // ---------------------------------------------------------------- strftime

    static readonly string[] DayAbbr = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    static readonly string[] DayFull = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
    static readonly string[] MonAbbr = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    static readonly string[] MonFull = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];

    /// <summary>datetime.strftime in the C locale (glibc directives, including the '-' no-padding flag).</summary>
    public static string Strftime(DateTime t, string fmt)
    {
        var sb = new StringBuilder();
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c != '%' || i + 1 >= fmt.Length) { sb.Append(c); continue; }
            char d = fmt[++i];
            bool noPad = false;
            if ((d == '-' || d == '_') && i + 1 < fmt.Length) { noPad = d == '-'; d = fmt[++i]; }
            string Num(int v, int w) => noPad ? v.ToString(CultureInfo.InvariantCulture) : v.ToString(CultureInfo.InvariantCulture).PadLeft(w, '0');
            int hour12 = t.Hour % 12 == 0 ? 12 : t.Hour % 12;
            switch (d)
            {
                case 'a': sb.Append(DayAbbr[(int)t.DayOfWeek]); break;
                case 'A': sb.Append(DayFull[(int)t.DayOfWeek]); break;
                case 'b' or 'h': sb.Append(MonAbbr[t.Month - 1]); break;
                case 'B': sb.Append(MonFull[t.Month - 1]); break;
                case 'c': sb.Append(Strftime(t, "%a %b %e %H:%M:%S %Y")); break;
                case 'C': sb.Append(Num(t.Year / 100, 2)); break;
                case 'd': sb.Append(Num(t.Day, 2)); break;
                case 'D': sb.Append(Strftime(t, "%m/%d/%y")); break;
                case 'e': sb.Append(noPad ? t.Day.ToString(CultureInfo.InvariantCulture) : t.Day.ToString(CultureInfo.InvariantCulture).PadLeft(2, ' ')); break;
                case 'f': sb.Append(((t.Ticks % TimeSpan.TicksPerSecond) / 10).ToString("D6", CultureInfo.InvariantCulture)); break;
                case 'F': sb.Append(Strftime(t, "%Y-%m-%d")); break;
                case 'G': sb.Append(ISOWeek.GetYear(t).ToString(CultureInfo.InvariantCulture)); break;
                case 'g': sb.Append(Num(ISOWeek.GetYear(t) % 100, 2)); break;
                case 'H': sb.Append(Num(t.Hour, 2)); break;
                case 'I': sb.Append(Num(hour12, 2)); break;
                case 'j': sb.Append(Num(t.DayOfYear, 3)); break;
                case 'k': sb.Append(t.Hour.ToString(CultureInfo.InvariantCulture).PadLeft(2, ' ')); break;
                case 'l': sb.Append(hour12.ToString(CultureInfo.InvariantCulture).PadLeft(2, ' ')); break;
                case 'm': sb.Append(Num(t.Month, 2)); break;
                case 'M': sb.Append(Num(t.Minute, 2)); break;
                case 'n': sb.Append('\n'); break;
                case 'p': sb.Append(t.Hour < 12 ? "AM" : "PM"); break;
                case 'P': sb.Append(t.Hour < 12 ? "am" : "pm"); break;
                case 'r': sb.Append(Strftime(t, "%I:%M:%S %p")); break;
                case 'R': sb.Append(Strftime(t, "%H:%M")); break;
                case 'S': sb.Append(Num(t.Second, 2)); break;
                case 't': sb.Append('\t'); break;
                case 'T': sb.Append(Strftime(t, "%H:%M:%S")); break;
                case 'u': sb.Append(t.DayOfWeek == DayOfWeek.Sunday ? 7 : (int)t.DayOfWeek); break;
                case 'U': sb.Append(Num((t.DayOfYear + 6 - (int)t.DayOfWeek) / 7, 2)); break;
                case 'V': sb.Append(Num(ISOWeek.GetWeekOfYear(t), 2)); break;
                case 'w': sb.Append((int)t.DayOfWeek); break;
                case 'W': sb.Append(Num((t.DayOfYear + 6 - ((int)t.DayOfWeek + 6) % 7) / 7, 2)); break;
                case 'x': sb.Append(Strftime(t, "%m/%d/%y")); break;
                case 'X': sb.Append(Strftime(t, "%H:%M:%S")); break;
                case 'y': sb.Append(Num(t.Year % 100, 2)); break;
                case 'Y': sb.Append(t.Year.ToString(CultureInfo.InvariantCulture)); break;
                case 'z': break;
                case 'Z': break;
                case '%': sb.Append('%'); break;
                default: sb.Append('%').Append(d); break;
            }
        }
        return sb.ToString();
    }
}
