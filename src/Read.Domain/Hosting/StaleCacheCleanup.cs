using Microsoft.Extensions.Logging;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;

namespace Read.Domain.Hosting;

/// <summary>What every process that runs jobs (worker, embedded API) does once at start.</summary>
public static class StaleCacheCleanup
{
    // A live writer holds its file exclusively anyway; the age only spares a file some other tool just created.
    private static readonly TimeSpan MinimumAge = TimeSpan.FromMinutes(1);

    /// <summary>Removes activation-cache temporaries left by a process killed mid-precompute.</summary>
    public static void Run(ReadOptions options, ILogger logger)
    {
        var (files, bytes) = ActivationCache.RemoveStaleTemporaryFiles(options.ActivationCacheDirectory, MinimumAge);
        if (files > 0)
            logger.LogInformation("Removed {Files} stale activation-cache temporary file(s), {Bytes} bytes, from {Directory}", files, bytes, options.ActivationCacheDirectory);
    }
}
