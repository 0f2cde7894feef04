using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>
/// The exclusive right of one run to work on a job, held on the job row (LeaseOwner, LeaseExpiresAt). Every step is one
/// conditional UPDATE, so two deliveries of the same Hangfire job, on any number of workers, never both run it: the
/// database decides which claim wins. A lease past its expiry belongs to a run that stopped renewing it (a crashed worker)
/// and may be claimed again.
/// </summary>
public sealed class JobLeases(IDbContextFactory<ReadDbContext> dbFactory)
{
    /// <summary>A fresh owner name per run: host and process for the logs, a GUID so two runs in one process differ.</summary>
    public static string NewOwner() => $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";

    /// <summary>
    /// Queued → running under <paramref name="owner"/>; running with an expired (or no) lease → claimed again, as a new
    /// attempt. Null when the job is missing, finished, or running under a live lease of another run.
    /// </summary>
    public async Task<FineTuneJob?> TryClaimAsync(string jobId, string owner, TimeSpan duration, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        var expires = now + duration;
        var claimed = await db.Jobs
            .Where(j => j.Id == jobId && (j.Status == JobStatus.Queued
                || (j.Status == JobStatus.Running && (j.LeaseExpiresAt == null || j.LeaseExpiresAt < now))))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Running)
                .SetProperty(j => j.Stage, (string?)null)
                .SetProperty(j => j.Progress, 0.0)
                .SetProperty(j => j.Attempts, j => j.Attempts + 1)
                .SetProperty(j => j.StartedAt, now)
                .SetProperty(j => j.LeaseOwner, owner)
                .SetProperty(j => j.LeaseExpiresAt, expires), ct);
        return claimed == 0 ? null : await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, ct);
    }

    /// <summary>
    /// Extends the lease; false when <paramref name="owner"/> no longer holds it (it lapsed and another run claimed the job).
    /// A job cancelled by its user keeps its lease until the run notices and stops, so cancelling never reads as a lost lease.
    /// </summary>
    public async Task<bool> RenewAsync(string jobId, string owner, TimeSpan duration, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var expires = DateTime.UtcNow + duration;
        return await db.Jobs
            .Where(j => j.Id == jobId && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, expires), ct) > 0;
    }

    /// <summary>
    /// Gives the lease up, whatever the job's state: a finished job needs none, and a job left running (worker shutting
    /// down) can then be claimed by its redelivery at once instead of after the expiry.
    /// </summary>
    public async Task ReleaseAsync(string jobId, string owner)
    {
        // Not cancellable: it runs while the worker stops.
        await using var db = await dbFactory.CreateDbContextAsync();
        await db.Jobs
            .Where(j => j.Id == jobId && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, (DateTime?)null));
    }

    /// <summary>Embedded start: this process is the only one that runs jobs, so every lease left in the database is stale.</summary>
    public async Task<int> ReleaseAllAsync(CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        return await db.Jobs
            .Where(j => j.LeaseOwner != null || j.LeaseExpiresAt != null)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseOwner, (string?)null).SetProperty(j => j.LeaseExpiresAt, (DateTime?)null), ct);
    }
}
