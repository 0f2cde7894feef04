using Read.Api.Adapters;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.SideNetwork;

namespace Read.Api.Tests;

/// <summary>
/// The loaded-adapter cache under the interleavings a concurrent predict and a delete or eviction produce, driven step
/// by step so every run takes the same path. Before leases, Remove disposed the side network under the predict.
/// </summary>
public sealed class LoadedAdapterCacheTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "read-adapter-cache-" + Guid.NewGuid().ToString("N"));
    private readonly BackboneRegistry registry;
    private readonly byte[] artifact;

    public LoadedAdapterCacheTests()
    {
        registry = new BackboneRegistry(new BackboneOptions { DataDirectory = directory, ImportBundledBackbones = false });
        var backbone = registry.Get(BackboneRegistry.TinyBackboneId);
        var d = backbone.Shape.HiddenSize;
        var layers = Enumerable.Range(1, backbone.Shape.NumHiddenLayers).ToArray();
        using var classifier = new ReadClassifier(new ReadSideNetwork(d, 8, zeroInitOutput: false), d, 2);
        artifact = AdapterArtifact.Write(
            new AdapterConfig(backbone.Id, backbone.WeightsHash, d, RecurrentCell.Gru, 8, LayerAggregation.Mean, layers, ["neg", "pos"], 32, AdapterTokenizerConfig.From(backbone.TokenizerSettings)),
            classifier, new { });
    }

    private static IReadOnlyList<Prediction> Predict(LoadedAdapterCache.Lease lease) =>
        AdapterPredictor.Predict(lease.Backbone, lease.Adapter, ["the movie was good"], null);

    [Fact]
    public void Remove_WhileAPredictHoldsALease_DisposesOnlyAfterTheLeaseEnds()
    {
        using var cache = new LoadedAdapterCache(registry);
        var lease = cache.Acquire("a1", BackboneRegistry.TinyBackboneId, () => artifact);
        var expected = Predict(lease);

        cache.Remove("a1"); // DELETE /v1/adapters/a1 lands mid-predict

        Assert.Equal(expected[0].Probabilities, Predict(lease)[0].Probabilities); // still usable, same weights
        lease.Dispose();
        Assert.Empty(lease.Adapter.Classifier.parameters()); // disposed: TorchSharp drops a disposed module's parameters
    }

    [Fact]
    public void Eviction_WhileAPredictHoldsALease_KeepsItsAdapterAlive()
    {
        using var cache = new LoadedAdapterCache(registry);
        var first = cache.Acquire("first", BackboneRegistry.TinyBackboneId, () => artifact);
        // Fill the cache past capacity: "first" is the least recently used and is evicted.
        for (var i = 0; i < LoadedAdapterCache.Capacity; i++)
            cache.Acquire($"other-{i}", BackboneRegistry.TinyBackboneId, () => artifact).Dispose();

        Assert.Single(Predict(first));
        first.Dispose();
        Assert.Empty(first.Adapter.Classifier.parameters()); // disposed once the lease ended

        // The next predict for it loads a fresh copy.
        var loads = 0;
        using var again = cache.Acquire("first", BackboneRegistry.TinyBackboneId, () => { loads++; return artifact; });
        Assert.Equal(1, loads);
        Assert.Single(Predict(again));
    }

    [Fact]
    public void ManyConcurrentPredictsAndRemoves_NeverUseADisposedAdapter()
    {
        using var cache = new LoadedAdapterCache(registry);
        var failures = 0;
        Parallel.For(0, 200, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            if (i % 5 == 0)
            {
                cache.Remove("shared");
                return;
            }

            using var lease = cache.Acquire("shared", BackboneRegistry.TinyBackboneId, () => artifact);
            try
            {
                Predict(lease);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
    }

    public void Dispose()
    {
        registry.Dispose();
        if (Directory.Exists(directory))
            Directory.Delete(directory, recursive: true);
    }
}
