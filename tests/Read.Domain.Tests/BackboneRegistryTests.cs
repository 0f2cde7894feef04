using Read.Domain.Backbones;

namespace Read.Domain.Tests;

public sealed class BackboneRegistryTests
{
    [Fact]
    public void List_TinyBackbone_DescribesItAndGetCachesTheInstance()
    {
        using var temp = new TempDirectory();
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = temp.Path });

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
        using var first = new BackboneRegistry(new BackboneOptions { DataDirectory = a.Path });
        using var second = new BackboneRegistry(new BackboneOptions { DataDirectory = b.Path });
        Assert.Equal(first.Get("tiny-bert").WeightsHash, second.Get("tiny-bert").WeightsHash);
    }
}
