using Read.Api.Adapters;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;

namespace Read.Api.Tests;

/// <summary>
/// A predict in flight keeps its adapter alive: evicting or deleting the cache entry only drops the cache's reference, and
/// the side network is disposed once the last lease is released.
/// </summary>
public sealed class LoadedAdapterCacheTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("read-adapter-cache-").FullName;
    private readonly BackboneRegistry _backbones;
    private readonly byte[] _artifact;

    public LoadedAdapterCacheTests()
    {
        _backbones = new BackboneRegistry(new BackboneOptions { DataDirectory = _directory, ImportBundledBackbones = false });
        var backbone = _backbones.Get(BackboneRegistry.TinyBackboneId);
        _artifact = new ReadFineTuner().Run(backbone, TestData.Sentiment(16, seed: 21), null,
            new ReadHyperparameters { Epochs = 1, MaxLength = 32, BatchSize = 8 }, Path.Combine(_directory, "cache"),
            new NoProgress(), CancellationToken.None).Artifact;
    }

    [Fact]
    public void Remove_WhileALeaseIsHeld_AdapterStillPredictsAndIsDisposedOnRelease()
    {
        using var cache = new LoadedAdapterCache(_backbones);
        var lease = cache.Acquire("adapter-a", BackboneRegistry.TinyBackboneId, () => _artifact);

        cache.Remove("adapter-a"); // DELETE /v1/adapters/{id} while the predict runs

        Assert.False(lease.Adapter.IsDisposed);
        Assert.Single(AdapterPredictor.Predict(lease.Backbone, lease.Adapter, ["the movie was great"], null));
        lease.Dispose();
        Assert.True(lease.Adapter.IsDisposed);
        lease.Dispose(); // a second release is harmless and releases nothing more
    }

    [Fact]
    public void Eviction_WhileALeaseIsHeld_AdapterStillPredictsAndIsDisposedOnRelease()
    {
        using var cache = new LoadedAdapterCache(_backbones);
        var lease = cache.Acquire("oldest", BackboneRegistry.TinyBackboneId, () => _artifact);
        // Capacity newer adapters push the oldest out.
        for (var i = 0; i < LoadedAdapterCache.Capacity; i++)
            cache.Acquire($"newer-{i}", BackboneRegistry.TinyBackboneId, () => _artifact).Dispose();

        Assert.False(lease.Adapter.IsDisposed);
        Assert.Single(AdapterPredictor.Predict(lease.Backbone, lease.Adapter, ["the movie was awful"], null));
        lease.Dispose();
        Assert.True(lease.Adapter.IsDisposed);
        // The next request for it loads a fresh copy rather than the disposed one.
        using var again = cache.Acquire("oldest", BackboneRegistry.TinyBackboneId, () => _artifact);
        Assert.False(again.Adapter.IsDisposed);
        Assert.NotSame(lease.Adapter, again.Adapter);
    }

    [Fact]
    public async Task ConcurrentPredictsAndDeletes_NeverRunOnADisposedAdapter()
    {
        using var cache = new LoadedAdapterCache(_backbones);
        using var done = new CancellationTokenSource();
        // Dedicated threads: on a small machine thread-pool tasks would start one after another, not side by side.
        var predicts = Enumerable.Range(0, 3).Select(_ => Task.Factory.StartNew(() =>
        {
            for (var i = 0; i < 20; i++)
            {
                using var lease = cache.Acquire("shared", BackboneRegistry.TinyBackboneId, () => _artifact);
                Assert.False(lease.Adapter.IsDisposed);
                AdapterPredictor.Predict(lease.Backbone, lease.Adapter, ["the service was nice"], null);
            }
        }, TaskCreationOptions.LongRunning)).ToList();
        var removes = Task.Factory.StartNew(() =>
        {
            while (!done.IsCancellationRequested)
                cache.Remove("shared");
        }, TaskCreationOptions.LongRunning);

        try
        {
            await Task.WhenAll(predicts);
        }
        finally
        {
            await done.CancelAsync();
            await removes;
        }
    }

    public void Dispose()
    {
        _backbones.Dispose();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    private sealed class NoProgress : IFineTuneProgress
    {
        public void StageStarted(FineTuneStage stage) { }
        public void Progress(FineTuneStage stage, double fraction) { }
        public void EpochCompleted(EpochMetrics metrics) { }
    }
}
