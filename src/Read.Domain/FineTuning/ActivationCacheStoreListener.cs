using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Jobs;

namespace Read.Domain.FineTuning;

/// <summary>
/// Enforces the cache disk budget each time a job starts training: its own cache has just been written or opened (and
/// is held, so it stays), which is when the directory grows.
/// </summary>
public sealed class ActivationCacheStoreListener(
    IOptions<ReadOptions> readOptions, IOptions<ActivationCacheStoreOptions> options, ILogger<ActivationCacheStoreListener> logger) : IJobStageListener
{
    public void OnStageStarted(string jobId, FineTuneStage stage)
    {
        if (stage != FineTuneStage.Train || options.Value.CacheDiskBudgetBytes is not { } budget)
            return;
        try
        {
            var result = ActivationCacheStore.Evict(readOptions.Value.ActivationCacheDirectory, budget, options.Value.CacheMinimumIdle);
            if (result.EvictedKeys.Count > 0)
                logger.LogInformation("Evicted {Count} activation cache(s) ({Before} → {After} bytes, budget {Budget}) after job {JobId} opened its cache",
                    result.EvictedKeys.Count, result.BytesBefore, result.BytesAfter, budget, jobId);
            if (result.BytesAfter > budget)
                logger.LogWarning("Activation caches hold {Bytes} bytes, over the {Budget}-byte budget: the rest are in use or recently used", result.BytesAfter, budget);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Activation cache eviction failed; caches are kept");
        }
    }
}
