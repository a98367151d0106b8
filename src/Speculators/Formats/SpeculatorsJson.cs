using System.Collections;
using System.Globalization;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Speculators.Formats;

/// <summary>One problem found in a speculator checkpoint: the file, the key (JSON path or tensor name) and what is wrong.</summary>
/// <param name="File">file name inside the checkpoint (<c>config.json</c>, <c>model.safetensors</c>) or the checkpoint itself</param>
/// <param name="Key">JSON path (<c>speculators_config.verifier.name_or_path</c>) or tensor name (<c>fc.weight</c>)</param>
/// <param name="Message">expected vs found</param>
public sealed record CheckpointProblem(string File, string Key, string Message)
{
    public override string ToString() => Key.Length == 0 ? $"{File}: {Message}" : $"{File}: {Key}: {Message}";
}

/// <summary>
/// What reading a config found: malformed or missing required fields (<see cref="Problems"/>) and the
/// known keys that were absent and took their default (<see cref="MissingKeys"/>, JSON paths).
/// </summary>
public sealed class ConfigIssues
{
    public ConfigIssues(string file) { File = file; }

    /// <summary>The file name used in problems (e.g. <c>config.json</c>).</summary>
    public string File { get; }
    public List<CheckpointProblem> Problems { get; } = [];
    public HashSet<string> MissingKeys { get; } = new(StringComparer.Ordinal);

    public void Add(string key, string message) => Problems.Add(new CheckpointProblem(File, key, message));
}

/// <summary>
/// Reads and writes the typed speculators config classes by reflection over their
/// <c>[JsonPropertyName]</c> properties, reporting every malformed field with its JSON path, the expected
/// kind and the value found (System.Text.Json stops at the first error and names neither). Absent keys keep
/// the property's initializer value and are recorded as missing; unknown keys go to the
/// <c>[JsonExtensionData]</c> <see cref="JsonObject"/> and are written back unchanged.
/// </summary>
public static class SpeculatorsJson
{
    sealed record Field(PropertyInfo Property, string Name, bool Nullable, bool OmitWhenNull);

    static readonly Dictionary<Type, List<Field>> FieldCache = new();
    static readonly Dictionary<Type, PropertyInfo?> ExtraCache = new();
    static readonly object Gate = new();

    static List<Field> Fields(Type t)
    {
        lock (Gate)
        {
            if (FieldCache.TryGetValue(t, out var f)) return f;
            var ctx = new NullabilityInfoContext();
            f = t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .Where(p => p.GetCustomAttribute<JsonPropertyNameAttribute>() != null && p.CanWrite
                    && p.GetCustomAttribute<JsonIgnoreAttribute>()?.Condition is not JsonIgnoreCondition.Always)
                .Select(p =>
                {
                    var ignore = p.GetCustomAttribute<JsonIgnoreAttribute>();
                    bool nullable = Nullable.GetUnderlyingType(p.PropertyType) != null
                        || (!p.PropertyType.IsValueType && ctx.Create(p).WriteState == NullabilityState.Nullable);
                    return new Field(p, p.GetCustomAttribute<JsonPropertyNameAttribute>()!.Name, nullable,
                        ignore?.Condition == JsonIgnoreCondition.WhenWritingNull);
                })
                .ToList();
            FieldCache[t] = f;
            return f;
        }
    }

    static PropertyInfo? ExtraProperty(Type t)
    {
        lock (Gate)
        {
            if (ExtraCache.TryGetValue(t, out var p)) return p;
            p = t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
                .FirstOrDefault(x => x.GetCustomAttribute<JsonExtensionDataAttribute>() != null && x.PropertyType == typeof(JsonObject));
            ExtraCache[t] = p;
            return p;
        }
    }

    /// <summary>The JSON key names of <paramref name="t"/>'s typed properties.</summary>
    public static IReadOnlyList<string> KeyNames(Type t) => Fields(t).Select(f => f.Name).ToList();

    /// <summary>
    /// Fills <paramref name="target"/> from <paramref name="obj"/>. <paramref name="path"/> prefixes JSON paths
    /// in messages ("" at the top level); keys in <paramref name="handledElsewhere"/> are neither read nor kept
    /// as unknown (the caller reads them).
    /// </summary>
    public static void Read(object target, JsonObject obj, string path, ConfigIssues issues, IReadOnlySet<string>? handledElsewhere = null)
    {
        var type = target.GetType();
        var fields = Fields(type);
        var known = new HashSet<string>(fields.Select(f => f.Name), StringComparer.Ordinal);
        foreach (var f in fields)
        {
            string key = Join(path, f.Name);
            if (!obj.TryGetPropertyValue(f.Name, out var node))
            {
                issues.MissingKeys.Add(key);
                continue;
            }
            if (node == null)
            {
                if (f.Nullable) f.Property.SetValue(target, null);
                else issues.Add(key, $"expected {Describe(f.Property.PropertyType)}, found null");
                continue;
            }
            if (TryConvert(node, f.Property.PropertyType, key, issues, out var value)) f.Property.SetValue(target, value);
        }
        var extraProp = ExtraProperty(type);
        if (extraProp == null) return;
        var extra = new JsonObject();
        foreach (var (k, v) in obj)
            if (!known.Contains(k) && handledElsewhere?.Contains(k) != true) extra[k] = v?.DeepClone();
        extraProp.SetValue(target, extra.Count > 0 ? extra : null);
    }

    /// <summary>
    /// The JSON object of <paramref name="source"/>: every typed property (nulls written as null unless the
    /// property is marked <c>[JsonIgnore(Condition = WhenWritingNull)]</c>), then the unknown keys it kept.
    /// </summary>
    public static JsonObject Write(object source)
    {
        var obj = new JsonObject();
        foreach (var f in Fields(source.GetType()))
        {
            object? v = f.Property.GetValue(source);
            if (v == null && f.OmitWhenNull) continue;
            obj[f.Name] = ToNode(v);
        }
        if (ExtraProperty(source.GetType())?.GetValue(source) is JsonObject extra)
            foreach (var (k, v) in extra)
                if (!obj.ContainsKey(k)) obj[k] = v?.DeepClone();
        return obj;
    }

    static JsonNode? ToNode(object? v) => v switch
    {
        null => null,
        bool b => JsonValue.Create(b),
        int i => JsonValue.Create(i),
        long l => JsonValue.Create(l),
        double d => JsonNode.Parse(PythonFloatJsonConverter.Format(d)),
        string s => JsonValue.Create(s),
        JsonNode n => n.DeepClone(),
        IEnumerable e => new JsonArray(e.Cast<object?>().Select(ToNode).ToArray()),
        _ => Write(v),
    };

    /// <summary>The value of a JSON number node, whatever .NET type backs it.</summary>
    public static double Number(JsonNode node) => double.Parse(node.ToJsonString(), NumberStyles.Float, CultureInfo.InvariantCulture);

    static string Join(string path, string key) => path.Length == 0 ? key : path + "." + key;

    /// <summary>Short JSON text of a node for messages.</summary>
    public static string Show(JsonNode? node)
    {
        string s = node?.ToJsonString() ?? "null";
        return s.Length > 80 ? s[..77] + "..." : s;
    }

    static string Describe(Type t)
    {
        t = Nullable.GetUnderlyingType(t) ?? t;
        if (t == typeof(bool)) return "true or false";
        if (t == typeof(int) || t == typeof(long)) return "an integer";
        if (t == typeof(double)) return "a number";
        if (t == typeof(string)) return "a string";
        if (t == typeof(JsonObject)) return "an object";
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>))
        {
            var el = t.GetGenericArguments()[0];
            return el == typeof(string) ? "a list of strings"
                : el == typeof(int) || el == typeof(long) ? "a list of integers"
                : "a list of objects";
        }
        return "an object";
    }

    static bool TryConvert(JsonNode node, Type type, string key, ConfigIssues issues, out object? value)
    {
        value = null;
        var t = Nullable.GetUnderlyingType(type) ?? type;
        bool Fail()
        {
            issues.Add(key, $"expected {Describe(type)}, found {Show(node)}");
            return false;
        }
        var kind = node.GetValueKind();
        if (t == typeof(bool))
        {
            if (kind is not (JsonValueKind.True or JsonValueKind.False)) return Fail();
            value = kind == JsonValueKind.True;
            return true;
        }
        if (t == typeof(int) || t == typeof(long))
        {
            if (kind != JsonValueKind.Number) return Fail();
            string text = node.ToJsonString();
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long exact))
            {
                if (t == typeof(int) && (exact > int.MaxValue || exact < int.MinValue)) return Fail();
                value = t == typeof(int) ? (object)(int)exact : exact;
                return true;
            }
            // pydantic (lax) accepts integral floats such as 3.0 for int fields.
            double d = Number(node);
            if (d != Math.Floor(d) || (t == typeof(int) && (d > int.MaxValue || d < int.MinValue)) || Math.Abs(d) > 9.007199254740992e15) return Fail();
            value = t == typeof(int) ? (object)(int)d : (long)d;
            return true;
        }
        if (t == typeof(double))
        {
            if (kind != JsonValueKind.Number) return Fail();
            value = Number(node);
            return true;
        }
        if (t == typeof(string))
        {
            if (kind != JsonValueKind.String) return Fail();
            value = node.GetValue<string>();
            return true;
        }
        if (t == typeof(JsonObject))
        {
            if (node is not JsonObject o) return Fail();
            value = (JsonObject)o.DeepClone();
            return true;
        }
        if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>))
        {
            if (node is not JsonArray arr) return Fail();
            var el = t.GetGenericArguments()[0];
            var list = (IList)Activator.CreateInstance(t)!;
            bool ok = true;
            for (int i = 0; i < arr.Count; i++)
            {
                string ek = key + "[" + i.ToString(CultureInfo.InvariantCulture) + "]";
                if (arr[i] == null)
                {
                    issues.Add(ek, $"expected {Describe(el)}, found null");
                    ok = false;
                    continue;
                }
                if (TryConvert(arr[i]!, el, ek, issues, out var item)) list.Add(item);
                else ok = false;
            }
            value = list;
            return ok;
        }
        if (t.IsClass && t.GetConstructor(Type.EmptyTypes) != null)
        {
            if (node is not JsonObject o) return Fail();
            var inst = Activator.CreateInstance(t)!;
            int before = issues.Problems.Count;
            Read(inst, o, key, issues);
            value = inst;
            return issues.Problems.Count == before;
        }
        throw new InvalidOperationException($"SpeculatorsJson: unsupported property type {type} for '{key}'.");
    }

    /// <summary>
    /// The JSON text with keys sorted recursively, indented by 2 (what transformers' <c>to_json_string</c> writes:
    /// <c>json.dumps(d, indent=2, sort_keys=True)</c>), plus a trailing newline.
    /// </summary>
    public static string ToSortedJson(JsonNode node) => SortKeys(node)!.ToJsonString(HfJson.Write) + "\n";

    static JsonNode? SortKeys(JsonNode? node) => node switch
    {
        JsonObject o => new JsonObject(o.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Select(kv => KeyValuePair.Create(kv.Key, SortKeys(kv.Value)))),
        JsonArray a => new JsonArray(a.Select(SortKeys).ToArray()),
        _ => node?.DeepClone(),
    };
}
