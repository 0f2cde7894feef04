using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.ServiceDefaults;

/// <summary>
/// Every <see cref="ReadOptions.JobSweepInterval"/>: hands Hangfire again (1) running jobs whose lease lapsed — their worker
/// died without a word, and Hangfire itself would redeliver only after its invisibility timeout — and (2) queued jobs
/// committed but never enqueued (the API stopped in between) once older than a minute, and (3) moves unfinished sweeps on
/// (<see cref="SweepScheduler"/>). Several workers sweep at once:
/// each job is taken with one conditional UPDATE, so one sweeper enqueues it. Runs in every worker and in the embedded
/// API; the orphan pass is <see cref="JobRecovery"/>'s, the protocol the API's start-up uses.
/// </summary>
public sealed class JobLeaseSweep(
    IDbContextFactory<ReadDbContext> dbFactory, IBackgroundJobClient hangfire, IOptions<ReadOptions> options, ILogger<JobLeaseSweep> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.JobSweepInterval);
        do
        {
            try
            {
                await SweepAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                logger.LogWarning(e, "Job sweep failed; it runs again in {Interval}", options.Value.JobSweepInterval);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    /// <returns>How many jobs this sweep enqueued.</returns>
    public async Task<int> SweepAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        var enqueued = 0;
        var lapsed = await db.Jobs.Where(j => j.Status == JobStatus.Running && j.LeaseExpiresAt != null && j.LeaseExpiresAt < now)
            .Select(j => new { j.Id, j.TenantId, j.LeaseOwner, j.LeaseExpiresAt }).ToListAsync(ct);
        foreach (var job in lapsed)
        {
            // Clearing the expiry both wins the race among sweepers and keeps the job claimable (a null lease is lapsed).
            var taken = await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseExpiresAt == job.LeaseExpiresAt)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, (DateTime?)null), ct);
            if (taken == 0)
                continue;
            var jobId = job.Id;
            try
            {
                hangfire.Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
            }
            catch
            {
                await db.Jobs.Where(j => j.Id == jobId && j.LeaseExpiresAt == null).ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, job.LeaseExpiresAt), ct);
                throw;
            }

            db.JobEvents.Add(new JobEvent
            {
                JobId = jobId, TenantId = job.TenantId, CreatedAt = DateTime.UtcNow, Level = "warning",
                Message = $"Worker {job.LeaseOwner} lost (lease expired at {job.LeaseExpiresAt:O}); job re-enqueued",
            });
            await db.SaveChangesAsync(ct);
            logger.LogWarning("Job {JobId}: worker {LeaseOwner} lost its lease; re-enqueued", jobId, job.LeaseOwner);
            enqueued++;
        }

        // Committed but never enqueued (the API stopped in between), once older than the grace age.
        enqueued += await JobRecovery.RequeueAsync(dbFactory, hangfire, logger, includeEnqueued: false, JobRecovery.GraceAge, ct);
        // Sweeps whose next step was missed (a trial re-run above, outside its sweep job; an API that stopped before
        // starting its sweep; a restart): started trials and recorded outcomes, as after a trial.
        enqueued += await SweepScheduler.AdvanceUnfinishedAsync(dbFactory, hangfire, logger, ct);
        return enqueued;
    }
}
