using System.Text.RegularExpressions;
using Speculators.Quickstart;

namespace Speculators.Tests.Quickstart;

public class SyntheticCorpusTests
{
    [Fact]
    public void DeterministicFromSeedAndCoversEveryTask()
    {
        var a = SyntheticCorpus.Generate(600, 7, heldOut: false);
        var b = SyntheticCorpus.Generate(600, 7, heldOut: false);
        Assert.Equal(a, b);
        Assert.NotEqual(a, SyntheticCorpus.Generate(600, 8, heldOut: false));
        // training data follows the rotation: 600 / 8 = 75 cycles, adding and reversing twice per cycle
        foreach (var task in SyntheticCorpus.Tasks) Assert.Equal(75 * SyntheticCorpus.TrainingRotation.Count(t => t == task), a.Count(e => e.Task == task));
        var held = SyntheticCorpus.Generate(300, 7, heldOut: true);
        foreach (var task in SyntheticCorpus.Tasks) Assert.Contains(held, e => e.Task == task);
    }

    [Fact]
    public void HeldOutPromptsNeverAppearInTrainingData()
    {
        var train = SyntheticCorpus.Generate(20000, 1, heldOut: false).Select(e => e.Prompt).ToHashSet();
        var held = SyntheticCorpus.Generate(300, 1, heldOut: true);
        Assert.Equal(300, held.Select(e => e.Prompt).Distinct().Count());
        Assert.DoesNotContain(held, e => train.Contains(e.Prompt));
    }

    [Fact]
    public void AnswersAreCorrectForTheirPrompts()
    {
        foreach (var e in SyntheticCorpus.Generate(1200, 3, heldOut: false))
        {
            switch (e.Task)
            {
                case "add":
                {
                    var n = Regex.Matches(e.Prompt, @"\d+").Select(m => int.Parse(m.Value)).ToArray();
                    Assert.EndsWith($"So {n[0]} + {n[1]} = {n[0] + n[1]}.", e.Answer);
                    Assert.Equal(e.Answer, SyntheticCorpus.AdditionAnswer(n[0], n[1]));
                    break;
                }
                case "reverse":
                {
                    var words = e.Prompt[(e.Prompt.IndexOf(':') + 2)..].TrimEnd('.').Split(", ");
                    Assert.Equal(string.Join(", ", words.Reverse()) + ".", e.Answer);
                    break;
                }
                case "convert":
                {
                    int n = int.Parse(Regex.Match(e.Prompt, @"\d+").Value);
                    var m = Regex.Match(e.Answer, @"^(\d+) (\w+) is (\d+) (\w+)\.$");
                    Assert.True(m.Success, e.Answer);
                    Assert.Equal(n, int.Parse(m.Groups[1].Value));
                    long factor = (m.Groups[2].Value, m.Groups[4].Value) switch
                    {
                        ("km", "m") or ("kg", "g") or ("l", "ml") or ("m", "mm") => 1000,
                        ("m", "cm") => 100, ("cm", "mm") => 10, var u => throw new Xunit.Sdk.XunitException($"unexpected units {u}"),
                    };
                    Assert.Equal(n * factor, long.Parse(m.Groups[3].Value));
                    break;
                }
                case "spell":
                {
                    string w = e.Answer[..e.Answer.IndexOf(' ')];
                    Assert.Contains(w, e.Prompt);
                    Assert.Equal(w, e.Answer[(e.Answer.LastIndexOf(' ') + 1)..].TrimEnd('.').Replace("-", ""));
                    break;
                }
                case "count":
                    Assert.Equal($"There are {e.Prompt.Split(", ").Length} words.", e.Answer);
                    break;
                case "story":
                    Assert.StartsWith("Once upon a time, ", e.Answer);
                    break;
                default:
                    throw new Xunit.Sdk.XunitException("unknown task " + e.Task);
            }
            Assert.True(e.IsCorrect("  " + e.Answer + "\n"));
            Assert.False(e.IsCorrect(e.Answer + " extra"));
        }
    }

    [Theory]
    [InlineData(21, 30, "21 + 30: ones 1 + 0 = 1; tens 2 + 3 = 5. So 21 + 30 = 51.")]
    [InlineData(75, 97, "75 + 97: ones 5 + 7 = 12, write 2, carry 1; tens 7 + 9 + 1 = 17. So 75 + 97 = 172.")]
    [InlineData(56, 9, "56 + 9: ones 6 + 9 = 15, write 5, carry 1; tens 5 + 0 + 1 = 6. So 56 + 9 = 65.")]
    [InlineData(0, 0, "0 + 0: ones 0 + 0 = 0; tens 0 + 0 = 0. So 0 + 0 = 0.")]
    public void AdditionIsWorkedColumnByColumn(int a, int b, string expected) => Assert.Equal(expected, SyntheticCorpus.AdditionAnswer(a, b));

    [Fact]
    public void RepetitionDetectsLoopsAndUnfinishedResponses()
    {
        int[] loop = [5, 6, 7, 8, 5, 6, 7, 8, 5, 6, 7, 8];
        int[] fine = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4];
        Assert.True(GenerationQuality.HasRepeatedNGram(loop, 4, 3));
        Assert.False(GenerationQuality.HasRepeatedNGram(fine, 4, 3));
        Assert.Equal(0.5, GenerationQuality.RepetitionRate([loop, fine], [true, true]));
        Assert.Equal(0.5, GenerationQuality.RepetitionRate([fine, fine], [true, false]));
    }
}
