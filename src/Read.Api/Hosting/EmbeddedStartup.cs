using Read.ServiceDefaults;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Hosting;
using Read.Domain.Persistence;
using Read.Domain.Tenants;

namespace Read.Api.Hosting;

/// <summary>Start-up work of the single-process default: a development tenant, and jobs resumed after a restart.</summary>
internal static class EmbeddedStartup
{
    public const string DevelopmentTenantName = "development";

    public static async Task RunAsync(IServiceProvider services)
    {
        var db = services.GetRequiredService<ReadDbContext>();
        var options = services.GetRequiredService<IOptions<ReadOptions>>().Value;
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("Read.Api.Embedded");

        var key = options.DevelopmentApiKey;
        var keyFile = Path.Combine(options.DataDirectory, "development-api-key");
        var keySource = "the configuration (Read:DevelopmentApiKey)";
        if (string.IsNullOrWhiteSpace(key))
        {
            keySource = Path.GetFullPath(keyFile);
            // Keep the generated key across restarts so scripts and the README walkthrough keep working.
            if (File.Exists(keyFile))
                key = (await File.ReadAllTextAsync(keyFile)).Trim();
            else
            {
                key = ApiKeys.Generate();
                Directory.CreateDirectory(options.DataDirectory);
                await File.WriteAllTextAsync(keyFile, key);
            }
        }
        var tenant = await TenantProvisioning.EnsureTenantWithKeyAsync(db, DevelopmentTenantName, key);
        // Logs are shipped and kept; the full key stays in the file (or the configuration), the prefix identifies it.
        logger.LogWarning("Embedded mode: development tenant {TenantId}; API key {ApiKeyPrefix} (full key in {KeySource})",
            tenant.Id, KeyPrefix(key), keySource);

        // This process runs the jobs: a precompute killed with it left its temporary file behind.
        StaleCacheCleanup.Run(options, logger);

        // One process runs every job here, and it just started: no lease from before can belong to a live worker.
        await db.Jobs.Where(j => j.LeaseExpiresAt != null)
            .ExecuteUpdateAsync(u => u.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, (DateTime?)null));

        // In-memory Hangfire storage forgot everything at the last stop; the database did not.
        await JobRecovery.RequeueAsync(services, includeEnqueued: true);
    }

    /// <summary>Enough of a key to tell keys apart in a log, never enough to use it.</summary>
    internal static string KeyPrefix(string key) => key.Length <= 8 ? "…" : key[..8] + "…";
}
