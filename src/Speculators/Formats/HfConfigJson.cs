using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Speculators.Formats;

/// <summary>
/// Writes doubles the way Python's <c>json.dumps</c> does (<c>repr</c>): shortest round-trip digits,
/// always a decimal point or exponent (<c>10000.0</c>, <c>1e-06</c>, <c>1e+20</c>), so values stay floats
/// when transformers reads them back (its RoPE validation checks <c>isinstance(x, float)</c>).
/// Reads any JSON number.
/// </summary>
public sealed class PythonFloatJsonConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetDouble();

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options) =>
        writer.WriteRawValue(Format(value), skipInputValidation: true);

    /// <summary>Python <c>repr(float)</c>.</summary>
    public static string Format(double value)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
            throw new SpeculatorsException($"Cannot write {value} to JSON (not a finite number).");
        if (value == 0) return double.IsNegative(value) ? "-0.0" : "0.0";
        string r = value.ToString("R", CultureInfo.InvariantCulture);
        bool negative = r.StartsWith('-');
        if (negative) r = r[1..];
        int exp10 = 0;
        int e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exp10 = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
            r = r[..e];
        }
        int dot = r.IndexOf('.');
        string intPart = dot < 0 ? r : r[..dot];
        string frac = dot < 0 ? "" : r[(dot + 1)..];
        string digits = intPart + frac;
        int decpt = intPart.Length + exp10; // value = 0.digits × 10^decpt
        int lead = 0;
        while (lead < digits.Length - 1 && digits[lead] == '0') lead++;
        digits = digits[lead..];
        decpt -= lead;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        string body;
        if (decpt > -4 && decpt <= 16)
        {
            if (decpt <= 0) body = "0." + new string('0', -decpt) + digits;
            else if (decpt >= digits.Length) body = digits + new string('0', decpt - digits.Length) + ".0";
            else body = digits[..decpt] + "." + digits[decpt..];
        }
        else
        {
            int exp = decpt - 1;
            string mant = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            body = mant + "e" + (exp < 0 ? "-" : "+") + Math.Abs(exp).ToString("D2", CultureInfo.InvariantCulture);
        }
        return negative ? "-" + body : body;
    }
}

/// <summary>Serializer settings for HF-style config files.</summary>
public static class HfJson
{
    /// <summary>Indented like <c>json.dump(indent=2)</c>, nulls of known fields omitted, doubles as Python writes them.</summary>
    public static readonly JsonSerializerOptions Write = new()
    {
        WriteIndented = true,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new PythonFloatJsonConverter() },
    };

    public static readonly JsonSerializerOptions Read = new()
    {
        AllowTrailingCommas = false,
        ReadCommentHandling = JsonCommentHandling.Disallow,
        Converters = { new PythonFloatJsonConverter() },
    };
}
