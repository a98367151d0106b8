using Speculators.Formats;
using Speculators.Modeling;
using Speculators.Tests.Modeling;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Cli;

public class DumpHiddenStatesTests
{
    public DumpHiddenStatesTests() => TestTorch.SingleThreaded();

    public static TheoryData<ModelFamily> Families() => new(Enum.GetValues<ModelFamily>());

    [Theory]
    [MemberData(nameof(Families))]
    public void DumpsRequestedLayersTokenIdsAndLogits(ModelFamily family)
    {
        using var dir = new TempDir();
        var o = new TinyModelOptions { Family = family, NumLayers = 5, Seed = 3, WriteTokenizer = false, SlidingWindow = family == ModelFamily.Mistral ? 3 : null };
        TinyModelFactory.Create(dir.Path, o);
        string outPath = dir.File("hs.safetensors");
        var r = CliRunner.Ok("dump-hidden-states", "--model", dir.Path, "--input-ids", "1, 5,9,300,2,2", "--layer-ids", "5,0,2,2", "--output", outPath);
        Assert.Contains("hidden_states [6, 3, 64]", r.Stdout);

        using var scope = NewDisposeScope();
        using var st = SafeTensorsFile.Open(outPath);
        var hs = st.Load("hidden_states");
        var ids = st.Load("token_ids");
        var logits = st.Load("logits");
        Assert.Equal(new long[] { 6, 3, 64 }, hs.shape);
        Assert.Equal(ScalarType.Int64, ids.dtype);
        Assert.Equal(new long[] { 1, 5, 9, 300, 2, 2 }, ids.data<long>().ToArray());
        Assert.Equal(ScalarType.Float32, logits.dtype);
        Assert.Equal(new long[] { 6, 320 }, logits.shape);
        Assert.Equal("[0, 2, 5]", st.Metadata["layer_ids"]);

        using var model = CausalLM.LoadFromDirectory(dir.Path, ScalarType.Float32, torch.CPU);
        using var expected = model.Forward(ids.unsqueeze(0), captureLayerIds: [0, 2, 5]);
        Assert.True(expected.HiddenStates![0].eq(hs).all().item<bool>());
        Assert.True(expected.Logits![0].eq(logits).all().item<bool>());
    }

    [Fact]
    public void PromptIsTokenizedWithTheModelsTokenizer()
    {
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, new TinyModelOptions { NumLayers = 4, HiddenSize = 32 });
        string outPath = dir.File("hs.safetensors");
        const string prompt = "<|im_start|>user\nhello there<|im_end|>";
        CliRunner.Ok("dump-hidden-states", "--model", dir.Path, "--prompt", prompt, "--output", outPath);
        var expectedIds = Speculators.Text.HfTokenizer.Load(dir.Path).EncodeToIds(prompt, addSpecialTokens: true).Select(i => (long)i).ToArray();
        Assert.True(expectedIds.Length > 3);
        using var scope = NewDisposeScope();
        using var st = SafeTensorsFile.Open(outPath);
        Assert.Equal(expectedIds, st.Load("token_ids").data<long>().ToArray());
    }

    [Fact]
    public void DefaultLayersAndBfloat16()
    {
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, new TinyModelOptions { NumLayers = 8, HiddenSize = 32, WriteTokenizer = false });
        string outPath = dir.File("hs.safetensors");
        CliRunner.Ok("dump-hidden-states", "--model", dir.Path, "--input-ids", "3,4,5", "--dtype", "bfloat16", "--device", "cpu", "--output", outPath);
        using var scope = NewDisposeScope();
        using var st = SafeTensorsFile.Open(outPath);
        Assert.Equal("[2, 4, 5, 8]", st.Metadata["layer_ids"]);
        Assert.Equal(ScalarType.BFloat16, st.Load("hidden_states").dtype);
        Assert.Equal(new long[] { 3, 4, 32 }, st.Load("hidden_states").shape);
        Assert.Equal(ScalarType.Float32, st.Load("logits").dtype);
    }

    [Theory]
    [InlineData("--layer-ids", "0,9", "layer id 9 is out of range [0, 4]")]
    [InlineData("--layer-ids", "a", "'a' is not an integer")]
    [InlineData("--input-ids", "1,320", "token id 320 is outside the vocabulary [0, 320)")]
    [InlineData("--dtype", "float16", "expected float32 or bfloat16")]
    [InlineData("--device", "tpu", "expected cpu, cuda or cuda:N")]
    [InlineData("--prompt", "hello", "--input-ids")]
    public void BadArgumentsFailWithAMessageBeforeAnyWork(string flag, string value, string expected)
    {
        using var dir = new TempDir();
        TinyModelFactory.Create(dir.Path, new TinyModelOptions { NumLayers = 4, WriteTokenizer = false });
        string outPath = dir.File("out.safetensors");
        var args = new List<string> { "dump-hidden-states", "--model", dir.Path, "--output", outPath };
        if (flag != "--input-ids" && flag != "--prompt") args.AddRange(["--input-ids", "1,2"]);
        args.AddRange([flag, value]);
        var r = CliRunner.Run(args.ToArray());
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(expected, r.Stderr);
        Assert.False(File.Exists(outPath));
    }

    [Fact]
    public void PromptAndInputIdsAreExclusive()
    {
        using var dir = new TempDir();
        var r = CliRunner.Run("dump-hidden-states", "--model", dir.Path, "--output", dir.File("x.safetensors"));
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("exactly one of --prompt", r.Stderr);
    }
}
