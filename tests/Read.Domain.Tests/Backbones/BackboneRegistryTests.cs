using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert.Onnx;

namespace Read.Domain.Tests.Backbones;

public sealed class BackboneRegistryTests
{
    [Fact]
    public void List_TinyBackbone_DescribesItAndGetCachesTheInstance()
    {
        using var temp = new TempDirectory();
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = temp.Path, ImportBundledBackbones = false });

        var info = Assert.Single(registry.List());
        Assert.Equal("tiny-bert", info.Id);
        Assert.Equal(4, info.Layers);
        Assert.Equal(64, info.HiddenSize);
        var backbone = registry.Get("tiny-bert");
        Assert.Equal(backbone.Model.parameters().Sum(p => p.numel()), info.Parameters);
        Assert.Same(backbone, registry.Get("tiny-bert"));
        Assert.True(registry.Contains("tiny-bert"));
        Assert.False(registry.Contains("nope"));
        Assert.Throws<KeyNotFoundException>(() => registry.Get("nope"));
    }

    [Fact]
    public void TinyBackbone_GeneratedTwice_HasTheSameWeightsHash()
    {
        using var a = new TempDirectory();
        using var b = new TempDirectory();
        using var first = new BackboneRegistry(new BackboneOptions { DataDirectory = a.Path, ImportBundledBackbones = false });
        using var second = new BackboneRegistry(new BackboneOptions { DataDirectory = b.Path, ImportBundledBackbones = false });
        Assert.Equal(first.Get("tiny-bert").WeightsHash, second.Get("tiny-bert").WeightsHash);
    }

    [Fact]
    public void List_Defaults_ImportsTheBundledBackbonesIntoTheDataDirectory()
    {
        using var temp = new TempDirectory();
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = temp.Path, GenerateTinyBackbone = false });

        var infos = registry.List();

        Assert.Equal([BundledBackbones.MiniLmId, BundledBackbones.ArcticXsId], infos.Select(i => i.Id));
        Assert.All(infos, i => Assert.Equal((6, 384, 22_565_376L), (i.Layers, i.HiddenSize, i.Parameters)));
        Assert.True(File.Exists(Path.Combine(temp.Path, "backbones", BackboneRegistry.DefaultBackboneId, HuggingFaceCheckpoint.WeightsFile)));
        Assert.Equal(["all-minilm-l6-v2", "arctic-xs"], Directory.GetDirectories(Path.Combine(temp.Path, "backbones")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Get_BundledBackboneInTwoRegistriesAtOnce_BothLoadTheSameWeights()
    {
        using var temp = new TempDirectory();
        var options = new BackboneOptions { DataDirectory = temp.Path, GenerateTinyBackbone = false };
        using var first = new BackboneRegistry(options);
        using var second = new BackboneRegistry(options);

        var hashes = new[] { first, second }.AsParallel().Select(r => r.Get(BackboneRegistry.DefaultBackboneId).WeightsHash).ToArray();

        Assert.Equal(hashes[0], hashes[1]);
        Assert.Single(Directory.GetDirectories(Path.Combine(temp.Path, "backbones")));
    }

    [Fact]
    public void Constructor_BundledImportsDisabled_DoesNotRegisterThem()
    {
        using var temp = new TempDirectory();
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = temp.Path, ImportBundledBackbones = false });
        Assert.False(registry.Contains(BackboneRegistry.DefaultBackboneId));
        Assert.True(registry.Contains(BackboneRegistry.TinyBackboneId));
    }
}
