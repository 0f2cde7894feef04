using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>
/// Stores a running job's end-of-epoch checkpoints in the database, keeping the last and the best, and updates the job's
/// estimated finish. Called on the training thread and waited for: the next epoch starts only once this one's state is
/// durable, so a worker killed at any moment loses at most the epoch it was in.
/// </summary>
internal sealed class JobCheckpointStore(IDbContextFactory<ReadDbContext> dbFactory, FineTuneJob job, TimeSpan leaseDuration, int plannedEpochs)
{
    private readonly List<double> _epochSeconds = [];

    /// <summary>The job's lease went to another worker: this run must stop without writing anything more.</summary>
    internal sealed class LeaseLostException() : Exception("The job's lease was taken over by another worker.");

    public void Save(TrainingCheckpoint checkpoint, CancellationToken ct) => SaveAsync(checkpoint, ct).GetAwaiter().GetResult();

    private async Task SaveAsync(TrainingCheckpoint checkpoint, CancellationToken ct)
    {
        _epochSeconds.Add(checkpoint.Metrics.Seconds);
        var now = DateTime.UtcNow;
        var remaining = checkpoint.Stopped ? 0 : Math.Max(0, plannedEpochs - checkpoint.Epoch);
        var estimatedFinish = now + TimeSpan.FromSeconds(_epochSeconds.Average() * remaining);
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // Holding the lease is the right to write; the same UPDATE renews it, as a heartbeat would.
        var held = await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseOwner == job.LeaseOwner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.LeaseExpiresAt, now + leaseDuration)
                .SetProperty(j => j.EstimatedFinishAt, estimatedFinish), ct);
        if (held == 0)
        {
            // Cancelled by the user: the watcher stops the run; anything else means another worker owns the job now.
            if (await db.Jobs.AnyAsync(j => j.Id == job.Id && j.Status == JobStatus.Cancelled, ct))
                throw new CancelledByUserException();
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
    }

    /// <summary>The user cancelled the job: found by a checkpoint write before the watcher's poll cancels the run's token.</summary>
    public sealed class CancelledByUserException() : OperationCanceledException("The job was cancelled.");
}
