using Read.Domain.SideNetwork;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>One cache directory shared by several workers: concurrent builders of one cache never expose a partial file.</summary>
[Collection(TinyBackboneCollection.Name)]
public sealed class SharedCacheDirectoryTests(TinyBackboneFixture fixture)
{
    [Fact]
    public async Task GetOrCreate_TwoBuildersAtOnce_OneCompleteFileBothReadTheSameStates()
    {
        var backbone = fixture.Backbone;
        var examples = SyntheticSentiment.Generate(48, seed: 51);
        var spec = new ActivationCacheSpec(32, Pooling.Mean, [1, 2], CacheDtype.Fp16, backbone.TokenizerSettings);
        var directory = fixture.NewCacheDirectory();

        using var start = new Barrier(2);
        var builders = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            return ActivationCache.GetOrCreate(backbone, examples, spec, directory, null, CancellationToken.None);
        }, TaskCreationOptions.LongRunning)).ToArray();
        var results = await Task.WhenAll(builders);
        try
        {
            // Nothing temporary left, one cache file, and it verifies when opened afresh (a third worker's hit).
            var files = Directory.GetFiles(directory);
            Assert.Single(files);
            Assert.EndsWith(".readact", files[0]);
            var (third, hit) = ActivationCache.GetOrCreate(backbone, examples, spec, directory, null, CancellationToken.None);
            using (third)
            {
                Assert.True(hit);
                long[] all = [.. Enumerable.Range(0, examples.Count).Select(i => (long)i)];
                using var expected = third.Read(all);
                foreach (var (cache, _) in results)
                {
                    using var batch = cache.Read(all);
                    Assert.True(expected.States.data<float>().ToArray().AsSpan().SequenceEqual(batch.States.data<float>().ToArray()), "a builder reads other states than the file holds");
                }
            }
        }
        finally
        {
            foreach (var (cache, _) in results)
                cache.Dispose();
        }
    }
}
