using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Jobs;
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
        if (string.IsNullOrWhiteSpace(key))
        {
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
        logger.LogWarning("Embedded mode: development tenant {TenantId}; API key {ApiKey} (also in {KeyFile})", tenant.Id, key, keyFile);

        // In-memory Hangfire storage forgot everything at the last stop; the database did not.
        var unfinished = await db.Jobs
            .Where(j => j.Status == JobStatus.Queued || j.Status == JobStatus.Running)
            .OrderBy(j => j.CreatedAt).Select(j => j.Id).ToListAsync();
        var client = services.GetRequiredService<IBackgroundJobClient>();
        foreach (var jobId in unfinished)
        {
            var hangfireId = client.Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, hangfireId));
            logger.LogInformation("Re-enqueued unfinished job {JobId}", jobId);
        }
    }
}
