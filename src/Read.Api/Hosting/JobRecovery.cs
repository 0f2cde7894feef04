using Hangfire;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Hosting;

/// <summary>Hands unfinished jobs to Hangfire again at start-up, so a job accepted by the database is never lost.</summary>
internal static class JobRecovery
{
    /// <param name="includeEnqueued">
    /// Embedded mode: every queued or running job (in-memory storage lost them all). Postgres mode: only queued jobs that
    /// never reached Hangfire (the API stopped between committing the row and enqueueing); Hangfire's persistent
    /// storage redelivers the rest itself.
    /// </param>
    public static async Task RequeueAsync(IServiceProvider services, bool includeEnqueued)
    {
        var db = services.GetRequiredService<ReadDbContext>();
        var client = services.GetRequiredService<IBackgroundJobClient>();
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(JobRecovery));
        var query = db.Jobs.Where(j => j.Status == JobStatus.Queued || j.Status == JobStatus.Running);
        if (!includeEnqueued)
            query = query.Where(j => j.Status == JobStatus.Queued && j.HangfireJobId == null);
        var jobIds = await query.OrderBy(j => j.CreatedAt).Select(j => j.Id).ToListAsync();
        foreach (var jobId in jobIds)
        {
            var hangfireId = client.Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, hangfireId));
            logger.LogInformation("Re-enqueued unfinished job {JobId}", jobId);
        }
    }
}
