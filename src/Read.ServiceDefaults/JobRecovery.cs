using System.Globalization;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.ServiceDefaults;

/// <summary>
/// Hands unfinished jobs to Hangfire again, so a job accepted by the database is never lost: at an API's start-up and
/// on every pass of <see cref="JobLeaseSweep"/> (worker and embedded API). Several processes may do it at once: each
/// job is claimed with one conditional UPDATE before it is enqueued, so exactly one of them enqueues it, and a claim
/// whose enqueue throws is given back.
/// </summary>
public static class JobRecovery
{
    /// <summary>
    /// Postgres mode: a job younger than this may be an API instance's fresh job between its commit and its enqueue; that
    /// instance enqueues it, so recovery leaves it alone. A recovery claim older than this was left by an instance that
    /// stopped before it could enqueue, and may be taken over.
    /// </summary>
    public static readonly TimeSpan GraceAge = TimeSpan.FromMinutes(1);

    private const string ClaimPrefix = "recovering:";

    /// <param name="includeEnqueued">
    /// Embedded mode: every queued or running job (in-memory storage lost them all). Postgres mode: only queued jobs that
    /// never reached Hangfire (the API stopped between committing the row and enqueueing); Hangfire's persistent
    /// storage redelivers the rest itself.
    /// </param>
    public static Task<int> RequeueAsync(IServiceProvider services, bool includeEnqueued) => RequeueAsync(
        services.GetRequiredService<IDbContextFactory<ReadDbContext>>(), services.GetRequiredService<IBackgroundJobClient>(),
        services.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(JobRecovery)), includeEnqueued,
        // Embedded mode is one process that has not served a request yet: no other enqueue can be under way.
        includeEnqueued ? TimeSpan.Zero : GraceAge);

    /// <returns>How many jobs this call enqueued.</returns>
    public static async Task<int> RequeueAsync(
        IDbContextFactory<ReadDbContext> dbFactory, IBackgroundJobClient client, ILogger logger, bool includeEnqueued, TimeSpan graceAge,
        CancellationToken ct = default)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        var createdBefore = now - graceAge;
        // A sweep's trial that the sweep has not started is the sweep's to start (SweepScheduler), when its plan has room.
        var query = db.Jobs.Where(j => (j.Status == JobStatus.Queued || j.Status == JobStatus.Running) && j.CreatedAt <= createdBefore
                                       && (j.HangfireJobId == null || j.HangfireJobId != SweepScheduler.NotStarted));
        if (!includeEnqueued)
            query = query.Where(j => j.Status == JobStatus.Queued && (j.HangfireJobId == null || j.HangfireJobId.StartsWith(ClaimPrefix)));
        var candidates = await query.OrderBy(j => j.CreatedAt).Select(j => new { j.Id, j.HangfireJobId }).ToListAsync(ct);
        var enqueued = 0;
        foreach (var candidate in candidates)
        {
            // Another instance's claim is its to finish, unless it is old enough to have been abandoned.
            if (!includeEnqueued && IsClaim(candidate.HangfireJobId) && ClaimedAt(candidate.HangfireJobId!) > now - graceAge)
                continue;
            var jobId = candidate.Id;
            var seen = candidate.HangfireJobId;
            var claim = ClaimPrefix + now.Ticks.ToString(CultureInfo.InvariantCulture) + ":" + Guid.NewGuid().ToString("N");
            // Only the instance whose UPDATE still finds the value it read wins; the others see a changed row and skip.
            var claimed = await db.Jobs
                .Where(j => j.Id == jobId && j.HangfireJobId == seen && (j.Status == JobStatus.Queued || j.Status == JobStatus.Running))
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, claim), ct);
            if (claimed == 0)
                continue;
            string hangfireId;
            try
            {
                hangfireId = client.Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
            }
            catch
            {
                // Give the job back for the next pass rather than leave it claimed by nobody until the claim goes stale.
                await db.Jobs.Where(j => j.Id == jobId && j.HangfireJobId == claim).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, seen), CancellationToken.None);
                throw;
            }

            await db.Jobs.Where(j => j.Id == jobId && j.HangfireJobId == claim).ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, hangfireId), CancellationToken.None);
            enqueued++;
            logger.LogInformation("Re-enqueued unfinished job {JobId}", jobId);
        }

        return enqueued;
    }

    private static bool IsClaim(string? hangfireJobId) => hangfireJobId?.StartsWith(ClaimPrefix, StringComparison.Ordinal) == true;

    private static DateTime ClaimedAt(string claim)
    {
        var ticks = claim.AsSpan(ClaimPrefix.Length);
        var end = ticks.IndexOf(':');
        return long.TryParse(end < 0 ? ticks : ticks[..end], NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? new DateTime(value, DateTimeKind.Utc)
            : DateTime.MinValue;
    }
}
