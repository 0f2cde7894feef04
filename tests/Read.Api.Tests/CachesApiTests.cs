using Read.Domain.SideNetwork;
using System.Net;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class CachesApiTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task ListCaches_AdminSeesEachCacheWithSizeAndInUse_TenantIsForbidden()
    {
        var directory = service.Api.Service<IOptions<ReadOptions>>().Value.ActivationCacheDirectory;
        var backbone = service.Api.Service<BackboneRegistry>().Get("tiny-bert");
        var spec = new ActivationCacheSpec(32, Pooling.Cls, [0, 1], CacheDtype.Fp16, backbone.TokenizerSettings, "caches-api-" + Guid.NewGuid().ToString("N"));
        var (cache, _) = ActivationCache.GetOrCreate(backbone, TestData.Sentiment(4, seed: 81), spec, directory, null, CancellationToken.None);
        var key = Path.GetFileNameWithoutExtension(cache.Path);
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        using (cache)
        {
            var listed = await (await admin.GetAsync("/v1/caches")).JsonAsync();
            var entry = listed.GetProperty("data").EnumerateArray().Single(e => e.GetProperty("key").GetString() == key);
            Assert.Equal(new FileInfo(cache.Path).Length, entry.GetProperty("bytes").GetInt64());
            Assert.True(entry.GetProperty("in_use").GetBoolean());
            Assert.True(listed.GetProperty("total_bytes").GetInt64() >= entry.GetProperty("bytes").GetInt64());
        }

        using var tenant = await service.Api.CreateTenantClientAsync("caches-peeker");
        await (await tenant.GetAsync("/v1/caches")).AssertProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task ListCaches_NoMinimumIdle_InUseExactlyWhileAReaderHoldsTheCache()
    {
        var directory = Directory.CreateTempSubdirectory("read-caches-").FullName;
        try
        {
            // No grace window: "in use" can only come from the open-handle check, not from the cache being fresh.
            await using var app = ReadApplication.Start(directory, postgres: null,
                new Dictionary<string, string?> { ["Read:Training:CacheMinimumIdle"] = "00:00:00" });
            using var admin = app.CreateClient(ReadApplication.AdminKey);
            var backbone = app.Service<BackboneRegistry>().Get("tiny-bert");
            var spec = new ActivationCacheSpec(32, Pooling.Cls, [0, 1], CacheDtype.Fp16, backbone.TokenizerSettings, "caches-held");
            var (cache, _) = ActivationCache.GetOrCreate(backbone, TestData.Sentiment(4, seed: 82), spec,
                app.Service<IOptions<ReadOptions>>().Value.ActivationCacheDirectory, null, CancellationToken.None);
            var key = Path.GetFileNameWithoutExtension(cache.Path);
            async Task<bool> InUseAsync() => (await (await admin.GetAsync("/v1/caches")).JsonAsync()).GetProperty("data").EnumerateArray()
                .Single(e => e.GetProperty("key").GetString() == key).GetProperty("in_use").GetBoolean();

            Assert.True(await InUseAsync()); // the reader's handle (FileShare.Read, a shared flock) is open
            cache.Dispose();
            Assert.False(await InUseAsync());
            using (ActivationCache.GetOrCreate(backbone, TestData.Sentiment(4, seed: 82), spec,
                       app.Service<IOptions<ReadOptions>>().Value.ActivationCacheDirectory, null, CancellationToken.None).Cache)
                Assert.True(await InUseAsync()); // opened again from the cache file: held again
            Assert.False(await InUseAsync());
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }
}
