using Read.Domain.SideNetwork;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.FineTuning;

[Collection(TinyBackboneCollection.Name)]
public sealed class ActivationCacheTests(TinyBackboneFixture fixture)
{
    private static readonly ReadHyperparameters Quick = ReadFineTunerTests.Learnable with { Epochs = 2 };

    [Fact]
    public void GetOrCreate_OtherScopeOrTokenizerSettings_MissesAndTheSameScopeHits()
    {
        // The service scopes caches per tenant: a hit must never tell one tenant what another trained on, and ids
        // from other tokenizer settings must never be reused.
        var backbone = fixture.Backbone;
        var examples = SyntheticSentiment.Generate(6, seed: 13);
        var directory = fixture.NewCacheDirectory();
        var tenantA = new ActivationCacheSpec(32, Pooling.Cls, [0, 4], CacheDtype.Fp16, backbone.TokenizerSettings, "tenant:a");
        bool Hit(ActivationCacheSpec spec)
        {
            var (cache, hit) = ActivationCache.GetOrCreate(backbone, examples, spec, directory, null, CancellationToken.None);
            cache.Dispose();
            return hit;
        }

        Assert.False(Hit(tenantA));
        Assert.False(Hit(tenantA with { Scope = "tenant:b" }));
        Assert.False(Hit(tenantA with { Tokenizer = TokenizerSettings.Legacy(lowerCase: true) }));
        Assert.True(Hit(tenantA));
        Assert.True(Hit(tenantA with { Scope = "tenant:b" }));
        Assert.Equal(3, Directory.GetFiles(directory).Length);
    }

    [Theory]
    [InlineData("truncate")]
    [InlineData("flip-payload")]
    [InlineData("flip-header")]
    [InlineData("flip-index")]
    [InlineData("append")]
    public void Run_CorruptCacheFile_IsRebuiltNotTrainedOn(string damage)
    {
        var backbone = fixture.Backbone;
        var train = SyntheticSentiment.Generate(24, seed: 11);
        var cache = fixture.NewCacheDirectory();
        var first = new ReadFineTuner().Run(backbone, train, null, Quick, cache, new RecordingProgress(backbone), CancellationToken.None);
        var path = Assert.Single(Directory.GetFiles(cache));
        var bytes = File.ReadAllBytes(path);
        switch (damage)
        {
            case "truncate":
                bytes = bytes[..^100];
                break;
            case "append":
                bytes = [.. bytes, 0];
                break;
            case "flip-header":
                bytes[40] ^= 0x01;
                break;
            case "flip-payload":
                bytes[4096 + 1000] ^= 0x10; // inside the first payload block
                break;
            case "flip-index":
                bytes[^20] ^= 0x01;
                break;
        }

        File.WriteAllBytes(path, bytes);
        var calls = backbone.ForwardCalls;
        var second = new ReadFineTuner().Run(backbone, train, null, Quick, cache, new RecordingProgress(backbone), CancellationToken.None);

        Assert.False(second.Metrics.CacheHit);
        Assert.True(backbone.ForwardCalls > calls, "the backbone ran again to rebuild the cache");
        Assert.Equal(first.Metrics.FinalTrainLoss, second.Metrics.FinalTrainLoss); // rebuilt content is identical
        Assert.Equal(File.ReadAllBytes(path).Length, first.Metrics.CacheBytes);
        var third = new ReadFineTuner().Run(backbone, train, null, Quick with { LearningRate = 1e-2, SideHiddenSize = 8 }, cache,
            new RecordingProgress(backbone), CancellationToken.None);
        Assert.True(third.Metrics.CacheHit); // other training hyperparameters, same cache
        Assert.Single(Directory.GetFiles(cache));
    }

    [Theory]
    [InlineData(Pooling.Mean, CacheDtype.Fp16, 1e-2)]
    [InlineData(Pooling.Cls, CacheDtype.Fp16, 1e-2)]
    [InlineData(Pooling.Mean, CacheDtype.Bf16, 6e-2)]
    public void GetOrCreate_StoresWhatThePoolingNeeds_PackedAndCloseToTheBackbone(Pooling pooling, CacheDtype dtype, double tolerance)
    {
        var backbone = fixture.Backbone;
        var examples = SyntheticSentiment.Generate(9, seed: 12).Append(new("the movie", "was good and so was the book", "positive")).ToList();
        var spec = new ActivationCacheSpec(32, pooling, [0, 2, 4], dtype, backbone.TokenizerSettings);
        var (cache, hit) = ActivationCache.GetOrCreate(backbone, examples, spec, fixture.NewCacheDirectory(), null, CancellationToken.None);
        using (cache)
        {
            Assert.False(hit);
            var tokens = TokenLengths.Of(backbone, examples.Select(e => e.Text).ToList(), examples.Select(e => e.TextPair).ToList(), 32);
            Assert.Equal(pooling == Pooling.Cls ? tokens.Select(_ => 1) : tokens, Enumerable.Range(0, examples.Count).Select(cache.PositionsOf));
            Assert.Equal(tokens.Sum() > 0 ? (pooling == Pooling.Cls ? examples.Count : tokens.Sum()) : 0, cache.Header.Positions);

            long[] pick = [9, 3];
            using var batch = cache.Read(pick);
            Assert.Equal(2, batch.Count);
            using var encoded = backbone.Encode(pick.Select(i => examples[(int)i].Text).ToList(), pick.Select(i => examples[(int)i].TextPair).ToList(), 32);
            var hidden = backbone.HiddenStates(encoded);
            var (expected, segments) = HiddenStateGather.Gather(hidden, encoded.AttentionMask, [0, 2, 4], pooling);
            Assert.Equal(expected.shape, batch.States.shape);
            Assert.Equal(segments.data<long>().ToArray(), batch.Segments.data<long>().ToArray());
            var error = (expected - batch.States).abs().max().item<float>();
            Assert.True(error < tolerance * Math.Max(1, expected.abs().max().item<float>()), $"max error {error}");
            foreach (var h in hidden)
                h.Dispose();
        }
    }
}

public sealed class StaleTemporaryCacheFileTests : IDisposable
{
    private readonly TempDirectory directory = new();

    private string File(string name, TimeSpan age)
    {
        var path = directory.Sub(name);
        System.IO.File.WriteAllBytes(path, new byte[1000]);
        System.IO.File.SetLastWriteTimeUtc(path, DateTime.UtcNow - age);
        return path;
    }

    [Fact]
    public void RemoveStaleTemporaryFiles_RemovesOnlyOldUnheldTemporaries()
    {
        var stale = File("abc.readact.tmp-1", TimeSpan.FromHours(1));
        var held = File("def.readact.tmp-2", TimeSpan.FromHours(1));
        var fresh = File("ghi.readact.tmp-3", TimeSpan.Zero);
        var complete = File("abc.readact", TimeSpan.FromHours(1));
        // A live writer in another process holds its file this way (ActivationCache.Write).
        using var writer = new FileStream(held, FileMode.Open, FileAccess.ReadWrite, FileShare.None);

        var (files, bytes) = ActivationCache.RemoveStaleTemporaryFiles(directory.Path, TimeSpan.FromMinutes(1));

        Assert.Equal((1, 1000L), (files, bytes));
        Assert.False(System.IO.File.Exists(stale));
        Assert.True(System.IO.File.Exists(held));
        Assert.True(System.IO.File.Exists(fresh));
        Assert.True(System.IO.File.Exists(complete));
    }

    public void Dispose() => directory.Dispose();
}
