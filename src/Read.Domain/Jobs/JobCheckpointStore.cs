using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>
/// Stores a running job's end-of-epoch checkpoints in the database, keeping the last and the best, and updates the job's
/// estimated finish. Called on the training thread and waited for: the next epoch starts only once this one's state is
/// durable, so a worker killed at any moment loses at most the epoch it was in. A database error is retried (each try is
/// one transaction, so a retry cannot leave half a checkpoint) for as long as the run holds its lease; past that the run
/// stops as one that lost its lease.
/// </summary>
internal sealed class JobCheckpointStore(IDbContextFactory<ReadDbContext> dbFactory, FineTuneJob job, JobLease lease, ILogger logger)
{
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(2);
    private readonly List<double> _epochSeconds = [];

    /// <summary>
    /// The epochs the run trains, for the estimated finish: the job's number, or the one "auto" resolved to (set once the
    /// run has resolved it; the stored hyperparameters still say "auto" until then).
    /// </summary>
    public int PlannedEpochs { get; set; }

    /// <summary>The job's lease went to another worker, or could not be renewed in time: this run must stop without writing anything more.</summary>
    internal sealed class LeaseLostException(Exception? inner = null) : Exception("The job's lease was lost: another worker may hold the job.", inner);

    public void Save(TrainingCheckpoint checkpoint, CancellationToken ct)
    {
        _epochSeconds.Add(checkpoint.Metrics.Seconds);
        var delay = FirstRetryDelay;
        while (true)
        {
            if (lease.Lost)
                throw new LeaseLostException();
            try
            {
                SaveAsync(checkpoint, ct).GetAwaiter().GetResult();
                return;
            }
            catch (Exception e) when (e is not (LeaseLostException or OperationCanceledException))
            {
                if (DateTime.UtcNow + delay >= lease.GiveUpAt)
                {
                    lease.MarkLost();
                    throw new LeaseLostException(e);
                }

                logger.LogWarning(e, "Job {JobId}: writing the checkpoint of epoch {Epoch} failed; retrying in {RetryDelay} (lease held until {LeaseExpiry:O})",
                    job.Id, checkpoint.Epoch, delay, lease.ConfirmedUntil);
                if (ct.WaitHandle.WaitOne(delay))
                    ct.ThrowIfCancellationRequested();
                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }

    private async Task SaveAsync(TrainingCheckpoint checkpoint, CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var remaining = checkpoint.Stopped ? 0 : Math.Max(0, PlannedEpochs - checkpoint.Epoch);
        var estimatedFinish = now + TimeSpan.FromSeconds(_epochSeconds.Average() * remaining);
        var expires = now + lease.Duration;
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Holding the lease is the right to write; the same UPDATE renews it, as a heartbeat would.
        var held = await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseOwner == lease.Owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.LeaseExpiresAt, expires)
                .SetProperty(j => j.EstimatedFinishAt, estimatedFinish), ct);
        if (held == 0)
        {
            // Cancelled by the user: the watcher stops the run; anything else means another worker owns the job now.
            if (await db.Jobs.AnyAsync(j => j.Id == job.Id && j.Status == JobStatus.Cancelled, ct))
                throw new CancelledByUserException();
            lease.MarkLost();
            throw new LeaseLostException();
        }

        // A run resumed from epoch k never writes epoch ≤ k again, but an attempt that died between its insert and its
        // commit may not have left one: replace rather than collide.
        await db.JobCheckpoints.Where(c => c.JobId == job.Id && c.Epoch >= checkpoint.Epoch).ExecuteDeleteAsync(ct);
        db.JobCheckpoints.Add(new JobCheckpoint
        {
            Id = "ftckpt-" + Guid.NewGuid().ToString("N"),
            JobId = job.Id,
            TenantId = job.TenantId,
            Epoch = checkpoint.Epoch,
            MetricsJson = JsonSerializer.Serialize(
                new { checkpoint.Metrics.Epoch, checkpoint.Metrics.TrainLoss, checkpoint.Metrics.Validation, checkpoint.Metrics.Seconds }, JsonDefaults.SnakeCase),
            IsBest = checkpoint.BestEpoch == checkpoint.Epoch,
            State = checkpoint.State,
            CreatedAt = now,
        });
        await db.SaveChangesAsync(ct);
        // Keep the last (this one) and the best; the best flag moves with the best epoch.
        await db.JobCheckpoints.Where(c => c.JobId == job.Id && c.Epoch != checkpoint.Epoch)
            .ExecuteUpdateAsync(s => s.SetProperty(c => c.IsBest, c => c.Epoch == checkpoint.BestEpoch), ct);
        await db.JobCheckpoints.Where(c => c.JobId == job.Id && c.Epoch != checkpoint.Epoch && c.Epoch != checkpoint.BestEpoch).ExecuteDeleteAsync(ct);
        await tx.CommitAsync(ct);
        lease.Confirm(expires);
    }

    /// <summary>The user cancelled the job: found by a checkpoint write before the watcher's poll cancels the run's token.</summary>
    public sealed class CancelledByUserException() : OperationCanceledException("The job was cancelled.");
}
