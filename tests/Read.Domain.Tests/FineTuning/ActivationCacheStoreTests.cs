using Read.Domain.SideNetwork;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

[Collection(TinyBackboneCollection.Name)]
public sealed class ActivationCacheStoreTests(TinyBackboneFixture fixture)
{
    private static readonly TimeSpan NoGrace = TimeSpan.Zero;

    [Fact]
    public void Evict_OverBudget_RemovesLeastRecentlyUsedFirst()
    {
        var directory = fixture.NewCacheDirectory();
        var paths = new[] { "a", "b", "c" }.ToDictionary(s => s, s => Open(directory, s));
        // Used again in the order c, a, b: the least recently used is now c, then a.
        foreach (var scope in new[] { "c", "a", "b" })
            Open(directory, scope);
        var listed = ActivationCacheStore.List(directory, NoGrace);
        Assert.Equal(new[] { "c", "a", "b" }.Select(s => Key(paths[s])), listed.Select(e => e.Key));
        Assert.All(listed, e => Assert.False(e.InUse));

        var total = listed.Sum(e => e.Bytes);
        var result = ActivationCacheStore.Evict(directory, total - 1, NoGrace);
        Assert.Equal([Key(paths["c"])], result.EvictedKeys);
        Assert.False(File.Exists(paths["c"]));
        Assert.True(File.Exists(paths["a"]) && File.Exists(paths["b"]));
        Assert.Equal(total - listed[0].Bytes, result.BytesAfter);

        // Within budget nothing more goes.
        Assert.Empty(ActivationCacheStore.Evict(directory, result.BytesAfter, NoGrace).EvictedKeys);
    }

    [Fact]
    public void Evict_CacheAJobIsReading_IsKeptEvenWhenOldest()
    {
        var directory = fixture.NewCacheDirectory();
        var (held, hit) = ActivationCache.GetOrCreate(fixture.Backbone, SyntheticSentiment.Generate(6, seed: 71), Spec("held"), directory, null, CancellationToken.None);
        Assert.False(hit);
        var other = Open(directory, "other");
        // The held cache is made the oldest, so LRU alone would pick it first.
        File.SetLastAccessTimeUtc(held.Path, DateTime.UtcNow.AddHours(-3));
        using (held)
        {
            var listed = ActivationCacheStore.List(directory, NoGrace);
            Assert.Equal(Key(held.Path), listed[0].Key);
            Assert.True(listed[0].InUse);
            Assert.False(listed[1].InUse);

            var result = ActivationCacheStore.Evict(directory, 0, NoGrace);
            Assert.Equal([Key(other)], result.EvictedKeys);
            Assert.True(File.Exists(held.Path));
            // The reader still reads: its handle and file are intact.
            Assert.Equal(6, held.Count);
        }

        Assert.Equal([Key(held.Path)], ActivationCacheStore.Evict(directory, 0, NoGrace).EvictedKeys);
        Assert.Empty(Directory.GetFiles(directory));
    }

    [Fact]
    public void Evict_RecentlyUsed_KeptForTheGracePeriod()
    {
        var directory = fixture.NewCacheDirectory();
        var path = Open(directory, "fresh");
        Assert.Empty(ActivationCacheStore.Evict(directory, 0, TimeSpan.FromHours(1)).EvictedKeys);
        Assert.True(ActivationCacheStore.List(directory, TimeSpan.FromHours(1)).Single().InUse);
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void List_IgnoresWritersTemporaryFiles()
    {
        var directory = fixture.NewCacheDirectory();
        var path = Open(directory, "done");
        File.WriteAllBytes(path + ".tmp-" + Guid.NewGuid().ToString("N"), new byte[100]);
        Assert.Equal([Key(path)], ActivationCacheStore.List(directory, NoGrace).Select(e => e.Key));
        ActivationCacheStore.Evict(directory, 0, NoGrace);
        Assert.Single(Directory.GetFiles(directory)); // the temporary is StaleCacheCleanup's business, not eviction's
    }

    [Fact]
    public async Task NewCache_PrecomputeLongerThanTheGrace_IsNeverEvictedBetweenItsRenameAndItsOpen()
    {
        var directory = fixture.NewCacheDirectory();
        var tinyGrace = TimeSpan.FromMilliseconds(1); // every precompute below takes longer
        using var stop = new CancellationTokenSource();
        var evicted = 0;
        // Another job's eviction, over and over: any cache neither held nor used within the grace goes at once.
        var evictor = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
                evicted += ActivationCacheStore.Evict(directory, 0, tinyGrace).EvictedKeys.Count;
        }, TaskCreationOptions.LongRunning);
        try
        {
            for (var i = 0; i < 40; i++)
            {
                var (cache, hit) = ActivationCache.GetOrCreate(
                    fixture.Backbone, SyntheticSentiment.Generate(4, seed: 200 + i), Spec("fresh"), directory, null, CancellationToken.None);
                using (cache)
                {
                    Assert.False(hit);
                    Assert.True(File.Exists(cache.Path), $"write {i}: evicted while its writer held it");
                    using var batch = cache.Read([0, 1, 2, 3]);
                    Assert.Equal(4, batch.Count);
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await evictor;
        }

        Assert.True(evicted > 0, "the evictor never evicted anything: it did not race with the writes");
    }

    [Fact]
    public async Task Open_WhileTheInUseProbeHoldsItsExclusiveLock_IsAHitNotARebuild()
    {
        var directory = fixture.NewCacheDirectory();
        var examples = SyntheticSentiment.Generate(6, seed: 72);
        var path = Open(directory, "probed", examples);
        var forwardCalls = fixture.Backbone.ForwardCalls;

        // The in-use probe of eviction and GET /v1/caches: an exclusive open (flock LOCK_EX) of the cache, held for an
        // instant. Held here for 30 ms (longer when this host is loaded) rather than microseconds, so the job's open surely
        // falls inside it; the open waits out a held probe on a time budget, not a count of retries.
        (ActivationCache Cache, bool Hit) opened;
        using (var probe = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.None))
        {
            var open = Task.Run(() => ActivationCache.GetOrCreate(fixture.Backbone, examples, Spec("probed"), directory, null, CancellationToken.None));
            await Task.Delay(30);
            Assert.False(open.IsCompleted, $"the open finished while the probe held the cache (a rebuild): {open.Exception}");
            probe.Dispose();
            opened = await open;
        }

        using (opened.Cache)
            Assert.True(opened.Hit, "the open took the probed cache for missing and rebuilt it");
        Assert.Equal(forwardCalls, fixture.Backbone.ForwardCalls);
    }

    private ActivationCacheSpec Spec(string scope) => new(32, Pooling.Cls, [0, 4], CacheDtype.Fp16, fixture.Backbone.TokenizerSettings, scope);

    /// <summary>Opens (creating or hitting) a cache and closes it again, as a finished job leaves it; returns its path.</summary>
    private string Open(string directory, string scope, IReadOnlyList<global::Read.Domain.Datasets.LabeledExample>? examples = null)
    {
        var (cache, _) = ActivationCache.GetOrCreate(fixture.Backbone, examples ?? SyntheticSentiment.Generate(6, seed: 70), Spec(scope), directory, null, CancellationToken.None);
        using (cache)
            return cache.Path;
    }

    private static string Key(string path) => Path.GetFileNameWithoutExtension(path);
}
