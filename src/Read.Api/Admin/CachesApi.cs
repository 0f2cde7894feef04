using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;

namespace Read.Api.Admin;

internal static class CachesApi
{
    /// <summary>One activation cache file; in_use also covers caches used within Read:Training:CacheMinimumIdle.</summary>
    public sealed record CacheResponse(string Key, string Object, long Bytes, DateTime LastUsedAt, bool InUse);

    public sealed record CacheList(string Object, IReadOnlyList<CacheResponse> Data, long TotalBytes, long? BudgetBytes);

    public static IEndpointRouteBuilder MapCachesApi(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1/caches").WithTags("Admin").RequireAuthorization(AuthPolicies.Admin)
            .MapGet("/", List)
            .WithSummary("Activation caches in this process's cache directory, least recently used first, with the disk budget.");
        return app;
    }

    internal static Ok<CacheList> List(IOptions<ReadOptions> read, IOptions<ActivationCacheStoreOptions> store)
    {
        var entries = ActivationCacheStore.List(read.Value.ActivationCacheDirectory, store.Value.CacheMinimumIdle);
        return TypedResults.Ok(new CacheList("list",
            entries.Select(e => new CacheResponse(e.Key, "activation_cache", e.Bytes, e.LastUsedAt, e.InUse)).ToList(),
            entries.Sum(e => e.Bytes), store.Value.CacheDiskBudgetBytes));
    }
}
