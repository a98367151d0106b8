using Speculators.Util;
using TorchSharp;
using static TorchSharp.torch;

namespace Speculators.Tests.Util;

public class RuntimeTests
{
    [Fact]
    public void LibTorchLoadsAndComputes()
    {
        // Fails with "doesn't contain a reference to libtorch-cpu-linux-x64" if the build's
        // GLIBCXX weak-version patch (Directory.Build.targets) did not run.
        using var a = tensor(new float[] { 1, 2, 3, 4 }).reshape(2, 2);
        using var b = a.mm(a);
        Assert.Equal(new float[] { 7, 10, 15, 22 }, b.data<float>().ToArray());
        Assert.StartsWith("2.10", torch.__version__);
    }

    [Fact]
    public void DeviceParsingRejectsUnknownWithActionableMessage()
    {
        Assert.Equal(DeviceType.CPU, Devices.Parse("cpu").type);
        Assert.Equal(DeviceType.CPU, Devices.Parse(null).type);
        var e = Assert.Throws<SpeculatorsException>(() => Devices.Parse("tpu"));
        Assert.Contains("expected cpu, cuda or cuda:N", e.Message);
        if (!torch.cuda.is_available())
            Assert.Contains("CUDA is not available", Assert.Throws<SpeculatorsException>(() => Devices.Parse("cuda:0")).Message);
    }

    [Fact]
    public void AtomicWriteLeavesNoTempFileAndReplaces()
    {
        using var dir = new TempDir();
        var path = dir.File("sub", "x.txt");
        AtomicFile.WriteAllText(path, "one");
        AtomicFile.WriteAllText(path, "two");
        Assert.Equal("two", File.ReadAllText(path));
        Assert.False(File.Exists(AtomicFile.TempPathFor(path)));
        Assert.Throws<InvalidOperationException>(() => AtomicFile.Write(path, _ => throw new InvalidOperationException("boom")));
        Assert.Equal("two", File.ReadAllText(path));
        Assert.False(File.Exists(AtomicFile.TempPathFor(path)));
    }

    [Fact]
    public void SharedFixturesAreFound()
    {
        Assert.True(File.Exists(TestPaths.Data("chat_templates", "goldens.jsonl")));
    }
}
