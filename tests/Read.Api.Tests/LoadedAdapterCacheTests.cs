using Microsoft.Extensions.Options;
using Read.Api.Adapters;
using Read.Api.Inference;
using Read.Domain.Adapters;
using Read.Domain.Backbones;

namespace Read.Api.Tests;

/// <summary>
/// The loaded-adapter cache under the interleavings a concurrent predict and a delete or eviction produce, driven step
/// by step so every run takes the same path, plus its count and byte bounds and its single asynchronous first load.
/// Before leases, Remove disposed the side network under the predict.
/// </summary>
public sealed class LoadedAdapterCacheTests : IDisposable
{
    private readonly string directory = Path.Combine(Path.GetTempPath(), "read-adapter-cache-" + Guid.NewGuid().ToString("N"));
    private readonly BackboneRegistry registry;
    private readonly Backbone backbone;
    private readonly byte[] artifact;

    public LoadedAdapterCacheTests()
    {
        registry = new BackboneRegistry(new BackboneOptions { DataDirectory = directory, ImportBundledBackbones = false });
        backbone = registry.Get(BackboneRegistry.TinyBackboneId);
        artifact = TestAdapters.Artifact(backbone, seed: 1);
    }

    private LoadedAdapterCache Cache(int maxAdapters = 64, long maxBytes = 1L << 30) =>
        new(registry, Options.Create(new InferenceOptions { MaxLoadedAdapters = maxAdapters, MaxLoadedAdapterBytes = maxBytes }));

    private static Task<byte[]?> Bytes(byte[] bytes) => Task.FromResult<byte[]?>(bytes);

    private static IReadOnlyList<Prediction> Predict(LoadedAdapterCache.Lease lease) =>
        AdapterPredictor.Predict(lease.Backbone, lease.Adapter, ["the movie was good"], null);

    [Fact]
    public async Task Remove_WhileAPredictHoldsALease_DisposesOnlyAfterTheLeaseEnds()
    {
        using var cache = Cache();
        var lease = await cache.AcquireAsync("a1", BackboneRegistry.TinyBackboneId, () => Bytes(artifact));
        var expected = Predict(lease);

        cache.Remove("a1"); // DELETE /v1/adapters/a1 lands mid-predict

        Assert.Equal(expected[0].Probabilities, Predict(lease)[0].Probabilities); // still usable, same weights
        lease.Dispose();
        Assert.Empty(lease.Adapter.Classifier.parameters()); // disposed: TorchSharp drops a disposed module's parameters
    }

    [Fact]
    public async Task Eviction_WhileAPredictHoldsALease_KeepsItsAdapterAlive()
    {
        const int capacity = 4;
        using var cache = Cache(maxAdapters: capacity);
        var first = await cache.AcquireAsync("first", BackboneRegistry.TinyBackboneId, () => Bytes(artifact));
        // Fill the cache past capacity: "first" is the least recently used and is evicted.
        for (var i = 0; i < capacity; i++)
            (await cache.AcquireAsync($"other-{i}", BackboneRegistry.TinyBackboneId, () => Bytes(artifact))).Dispose();
        Assert.Equal(capacity, cache.Count);

        Assert.Single(Predict(first));
        first.Dispose();
        Assert.Empty(first.Adapter.Classifier.parameters()); // disposed once the lease ended

        // The next predict for it loads a fresh copy.
        var loads = 0;
        using var again = await cache.AcquireAsync("first", BackboneRegistry.TinyBackboneId, () => { loads++; return Bytes(artifact); });
        Assert.Equal(1, loads);
        Assert.Single(Predict(again));
    }

    [Fact]
    public async Task ByteBound_EvictsTheLeastRecentlyUsed()
    {
        // Room for two artifacts of this size, not three.
        using var cache = Cache(maxBytes: artifact.Length * 5L / 2);
        var loads = new Dictionary<string, int>();
        async Task Use(string id)
        {
            using var lease = await cache.AcquireAsync(id, BackboneRegistry.TinyBackboneId, () =>
            {
                loads[id] = loads.GetValueOrDefault(id) + 1;
                return Bytes(artifact);
            });
        }

        await Use("a");
        await Use("b");
        await Use("a"); // b is now the least recently used
        await Use("c"); // over the byte bound: b goes
        Assert.Equal(2, cache.Count);
        await Use("a");
        Assert.Equal(1, loads["a"]); // kept
        await Use("b");
        Assert.Equal(2, loads["b"]); // evicted, so loaded again
    }

    [Fact]
    public async Task ConcurrentFirstRequests_LoadTheArtifactOnce_OffTheCallingThread()
    {
        using var cache = Cache();
        var loads = 0;
        using var gate = new ManualResetEventSlim();
        // A loader that blocks its thread, as embedded mode's SQLite read does (Microsoft.Data.Sqlite's async methods run
        // synchronously): run inline, it would block the request thread, and AcquireAsync would not return until it ends.
        Task<byte[]?> Load()
        {
            Interlocked.Increment(ref loads);
            gate.Wait();
            return Task.FromResult<byte[]?>(artifact);
        }

        try
        {
            var first = await Task.Run(() => Task.FromResult(cache.AcquireAsync("slow", BackboneRegistry.TinyBackboneId, Load))).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.False(first.IsCompleted);
            var others = Enumerable.Range(0, 15).Select(_ => Task.Run(() => cache.AcquireAsync("slow", BackboneRegistry.TinyBackboneId, Load))).ToList();
            await Task.Delay(50); // give the others every chance to start loads of their own (none may)
            gate.Set();

            var leases = await Task.WhenAll(others.Prepend(first));
            Assert.Equal(1, loads);
            Assert.All(leases, l => Assert.Same(leases[0].Adapter, l.Adapter));
            foreach (var lease in leases)
                lease.Dispose();
        }
        finally
        {
            gate.Set(); // never leave a loader blocked, also when an assertion failed
        }
    }

    [Fact]
    public async Task FailedLoad_IsNotCached()
    {
        using var cache = Cache();
        var loads = 0;
        await Assert.ThrowsAsync<AdapterGoneException>(() =>
            cache.AcquireAsync("gone", BackboneRegistry.TinyBackboneId, () => { loads++; return Task.FromResult<byte[]?>(null); }));
        using var lease = await cache.AcquireAsync("gone", BackboneRegistry.TinyBackboneId, () => { loads++; return Bytes(artifact); });
        Assert.Equal(2, loads);
        Assert.Single(Predict(lease));
    }

    [Fact]
    public async Task ConcurrentPredictsEvictionsAndRemoves_NeverUseADisposedOrWrongAdapter()
    {
        // Four adapters that predict differently, a cache that holds two: predicts, evictions and deletes interleave.
        var artifacts = Enumerable.Range(0, 4).Select(i => TestAdapters.Artifact(backbone, seed: 100 + i)).ToArray();
        var expected = artifacts.Select(a =>
        {
            using var loaded = AdapterArtifact.Load(a, backbone);
            return AdapterPredictor.Predict(backbone, loaded, ["the movie was good"], null)[0].Probabilities;
        }).ToArray();
        using var cache = Cache(maxAdapters: 2);
        var failures = 0;
        var predicts = 0;
        await Parallel.ForAsync(0, 240, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (i, _) =>
        {
            var n = i % 4;
            if (i % 7 == 0)
            {
                cache.Remove($"adapter-{n}");
                return;
            }

            using var lease = await cache.AcquireAsync($"adapter-{n}", BackboneRegistry.TinyBackboneId, () => Bytes(artifacts[n]));
            try
            {
                var probabilities = Predict(lease)[0].Probabilities;
                foreach (var (label, p) in expected[n])
                    Assert.InRange(probabilities[label], p - 1e-6, p + 1e-6);
                Interlocked.Increment(ref predicts);
            }
            catch (ObjectDisposedException)
            {
                Interlocked.Increment(ref failures);
            }
        });

        Assert.Equal(0, failures);
        Assert.True(predicts > 150);
        Assert.True(cache.Count <= 2);
    }

    public void Dispose()
    {
        registry.Dispose();
        if (Directory.Exists(directory))
            Directory.Delete(directory, recursive: true);
    }
}
