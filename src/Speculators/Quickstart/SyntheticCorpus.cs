using System.Text;
using System.Text.Json.Nodes;

namespace Speculators.Quickstart;

/// <summary>One synthetic chat task: a user prompt and the one correct assistant answer.</summary>
public sealed record SyntheticExample(string Task, string Prompt, string Answer)
{
    /// <summary>The conversation in OpenAI/ShareGPT-normalized form: user, assistant.</summary>
    public JsonArray ToMessages(bool includeAnswer = true)
    {
        var messages = new JsonArray { new JsonObject { ["role"] = "user", ["content"] = Prompt } };
        if (includeAnswer) messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = Answer });
        return messages;
    }

    /// <summary>The assistant's reply counts as correct when it equals the answer (ignoring surrounding whitespace).</summary>
    public bool IsCorrect(string response) => string.Equals(response.Trim(), Answer, StringComparison.Ordinal);
}

/// <summary>
/// The quickstart's built-in chat corpus: small tasks with real structure that a ~6M-parameter
/// model can learn in minutes — arithmetic, list manipulation, unit conversion, spelling,
/// counting and templated stories — each with several phrasings. Deterministic from a seed.
/// Held-out prompts are disjoint from training prompts by construction: every task instance has a
/// key (its operands), and keys whose stable hash falls in the held-out bucket never appear in
/// training data.
/// </summary>
public static class SyntheticCorpus
{
    public static readonly IReadOnlyList<string> Tasks = ["add", "reverse", "convert", "spell", "count", "story"];

    const int HeldOutBuckets = 8; // 1 in 8 instance keys is reserved for evaluation

    /// <summary>
    /// The order training examples cycle through: the tasks that need more than memorizing a template (adding, reversing)
    /// come twice per cycle, so the few minutes of target training go where the model has most to learn. Held-out
    /// prompts cycle through <see cref="Tasks"/> evenly.
    /// </summary>
    public static readonly IReadOnlyList<string> TrainingRotation = ["add", "reverse", "convert", "add", "reverse", "spell", "count", "story"];

    static readonly string[] Words =
    [
        "apple", "river", "stone", "cloud", "tiger", "lamp", "garden", "pencil", "mirror", "rocket",
        "bread", "violin", "forest", "candle", "planet", "window", "ocean", "turtle", "basket", "dragon",
        "silver", "orange", "winter", "castle", "meadow", "button", "rabbit", "island", "hammer", "feather",
        "yellow", "spider", "pocket", "shadow", "bridge", "kitten", "anchor", "tunnel", "saddle", "lemon",
        "helmet", "carpet", "puzzle", "ladder", "wallet", "harbor", "copper", "jacket", "pillow", "marble",
    ];
    static readonly string[] Names = ["Mia", "Leo", "Ava", "Sam", "Noor", "Kai", "Ella", "Omar", "Lina", "Theo", "Ruby", "Ivan"];
    static readonly string[] Animals = ["fox", "owl", "bear", "cat", "otter", "wolf", "deer", "frog", "duck", "mouse"];
    static readonly string[] Places = ["forest", "village", "valley", "harbor", "desert", "garden", "mountain", "city"];
    static readonly string[] Objects = ["a red kite", "a lost key", "a tiny boat", "a silver bell", "an old map", "a blue stone"];
    static readonly (string From, string To, int Factor)[] Units =
    [
        ("km", "m", 1000), ("m", "cm", 100), ("kg", "g", 1000), ("l", "ml", 1000), ("cm", "mm", 10), ("m", "mm", 1000),
    ];

    /// <summary>
    /// Generates <paramref name="count"/> examples, cycling through the tasks. With
    /// <paramref name="heldOut"/> only held-out instance keys are produced, otherwise only
    /// training keys. Duplicates are allowed in training data (as in real corpora), not in held-out sets.
    /// </summary>
    public static List<SyntheticExample> Generate(int count, ulong seed, bool heldOut)
    {
        var rng = new SplitMix64(seed ^ (heldOut ? 0x5EEDF00Dul : 0ul));
        var result = new List<SyntheticExample>(count);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var tasks = (heldOut ? Tasks : TrainingRotation).ToList();
        var misses = new int[Tasks.Count];
        int turn = 0;
        while (result.Count < count)
        {
            if (tasks.Count == 0) throw new InvalidOperationException($"synthetic corpus: only {result.Count} distinct held-out prompts exist");
            string task = tasks[turn % tasks.Count];
            var (key, example) = Make(task, ref rng);
            bool accepted = IsHeldOutKey(key) == heldOut && (!heldOut || seen.Add(example.Prompt));
            int ti = IndexOfTask(task);
            if (!accepted)
            {
                // A small task (e.g. spelling) runs out of distinct held-out prompts: leave it
                // out of the rotation and fill the set with the other tasks.
                if (++misses[ti] > 2000) tasks.RemoveAll(t => t == task);
                continue;
            }
            misses[ti] = 0;
            result.Add(example);
            turn++;
        }
        return result;
    }

    static int IndexOfTask(string task)
    {
        for (int i = 0; i < Tasks.Count; i++) if (Tasks[i] == task) return i;
        throw new ArgumentOutOfRangeException(nameof(task), task, "unknown synthetic task");
    }

    /// <summary>True when the instance key belongs to the evaluation split.</summary>
    public static bool IsHeldOutKey(string key) => StableHash(key) % HeldOutBuckets == 0;

    static (string Key, SyntheticExample Example) Make(string task, ref SplitMix64 rng)
    {
        switch (task)
        {
            case "add":
            {
                int a = rng.Next(0, 100), b = rng.Next(0, 100);
                string prompt = rng.Next(3) switch
                {
                    0 => $"What is {a} + {b}?",
                    1 => $"Add {a} and {b}.",
                    _ => $"Compute {a} plus {b}.",
                };
                return ($"add:{a}:{b}", new(task, prompt, AdditionAnswer(a, b)));
            }
            case "reverse":
            {
                var items = PickDistinct(ref rng, Words, rng.Next(3, 6));
                string list = string.Join(", ", items);
                string prompt = rng.Next(2) == 0 ? $"Reverse this list: {list}." : $"Write these words in reverse order: {list}.";
                items.Reverse();
                return ($"reverse:{list}", new(task, prompt, string.Join(", ", items) + "."));
            }
            case "convert":
            {
                var (from, to, factor) = Units[rng.Next(Units.Length)];
                int n = rng.Next(1, 100);
                string prompt = rng.Next(2) == 0 ? $"Convert {n} {from} to {to}." : $"How many {to} are in {n} {from}?";
                return ($"convert:{n}:{from}:{to}", new(task, prompt, $"{n} {from} is {n * factor} {to}."));
            }
            case "spell":
            {
                string w = Words[rng.Next(Words.Length)];
                int style = rng.Next(2);
                string prompt = style == 0 ? $"Spell the word {w}." : $"How do you spell {w}?";
                return ($"spell:{w}:{style}", new(task, prompt, $"{w} is spelled {string.Join("-", w.ToCharArray())}."));
            }
            case "count":
            {
                var items = PickDistinct(ref rng, Words, rng.Next(2, 8));
                string list = string.Join(", ", items);
                return ($"count:{list}", new(task, $"How many words are in this list: {list}?", $"There are {items.Count} words."));
            }
            case "story":
            {
                string name = Names[rng.Next(Names.Length)], animal = Animals[rng.Next(Animals.Length)];
                string place = Places[rng.Next(Places.Length)], thing = Objects[rng.Next(Objects.Length)];
                string prompt = $"Tell me a short story about {name} the {animal} from the {place}.";
                string story =
                    $"Once upon a time, {name} the {animal} lived in the {place}. " +
                    $"One morning, {name} found {thing} near home. " +
                    $"{name} showed {thing} to every friend in the {place}. " +
                    $"From that day on, {name} the {animal} was never bored again.";
                // The prompt names every slot, so the story is determined by it; held-out prompts
                // test new name/animal/place/object combinations of the learned template.
                return ($"story:{name}:{animal}:{place}:{thing}", new(task, prompt + $" It involves {thing}.", story));
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(task), task, "unknown synthetic task");
        }
    }

    /// <summary>
    /// The worked answer to <c>a + b</c> (both below 100), column by column as taught in school:
    /// <c>75 + 97: ones 5 + 7 = 12, write 2, carry 1; tens 7 + 9 + 1 = 17. So 75 + 97 = 172.</c> Written out, each
    /// step is a one-digit sum a small model learns from a few thousand examples; the bare result is not.
    /// </summary>
    public static string AdditionAnswer(int a, int b)
    {
        if (a is < 0 or > 99 || b is < 0 or > 99) throw new ArgumentOutOfRangeException(nameof(a), "operands are below 100");
        int ones = a % 10 + b % 10, carry = ones / 10;
        string onesStep = carry == 0 ? $"ones {a % 10} + {b % 10} = {ones}" : $"ones {a % 10} + {b % 10} = {ones}, write {ones % 10}, carry 1";
        string tensStep = $"tens {a / 10} + {b / 10}" + (carry == 0 ? "" : " + 1") + $" = {a / 10 + b / 10 + carry}";
        return $"{a} + {b}: {onesStep}; {tensStep}. So {a} + {b} = {a + b}.";
    }

    static List<string> PickDistinct(ref SplitMix64 rng, string[] pool, int n)
    {
        var picked = new List<string>(n);
        while (picked.Count < n)
        {
            string w = pool[rng.Next(pool.Length)];
            if (!picked.Contains(w)) picked.Add(w);
        }
        return picked;
    }

    /// <summary>FNV-1a over UTF-8: stable across processes and .NET versions (unlike string.GetHashCode).</summary>
    static ulong StableHash(string s)
    {
        ulong h = 14695981039346656037ul;
        foreach (byte b in Encoding.UTF8.GetBytes(s)) { h ^= b; h *= 1099511628211ul; }
        return h;
    }

    /// <summary>Plain text for training the quickstart tokenizer (prompts and answers).</summary>
    public static IEnumerable<string> TokenizerTrainingText(IEnumerable<SyntheticExample> examples)
    {
        foreach (var e in examples) { yield return e.Prompt; yield return e.Answer; }
    }
}

/// <summary>SplitMix64: a tiny, well-mixed, fully specified PRNG (same stream on every platform).</summary>
public struct SplitMix64
{
    ulong _state;
    public SplitMix64(ulong seed) { _state = seed; }

    public ulong NextULong()
    {
        ulong z = _state += 0x9E3779B97F4A7C15ul;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ul;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBul;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, maxExclusive).</summary>
    public int Next(int maxExclusive) => (int)(NextULong() % (ulong)maxExclusive);

    /// <summary>Uniform in [min, maxExclusive).</summary>
    public int Next(int min, int maxExclusive) => min + Next(maxExclusive - min);
}
