using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Datasets;
using Read.Domain.Files;
using Read.Domain.FineTuning;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>
/// Runs one fine-tuning job end to end: load data → precompute (or reuse) activations → train → evaluate → publish.
/// Invoked by Hangfire on queue "training". Safe to run again after a crash: a job already finished is left alone, a job
/// found "running" under a lapsed lease resumes from its last checkpoint (the activation cache makes the precompute
/// cheap), and publishing is one transaction.
/// </summary>
public sealed class FineTuneJobRunner(
    IDbContextFactory<ReadDbContext> dbFactory,
    BackboneRegistry backbones,
    IOptions<ReadOptions> options,
    IEnumerable<IJobStageListener> listeners,
    ILogger<FineTuneJobRunner> logger)
{
    public const string Queue = "training";

    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        var leaseOwner = $"{Environment.MachineName}:{Environment.ProcessId}:{Guid.NewGuid():N}";
        var (job, previous) = await ClaimAsync(jobId, leaseOwner, cancellationToken);
        if (job is null)
            return;
        if (previous is not null)
            await RecordEventAsync(jobId, job.TenantId, "warning", $"Job taken over from worker {previous} (its lease lapsed or was released) by {leaseOwner}");

        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = jobId });
        logger.LogInformation("Job {JobId} started (attempt {Attempt}) on backbone {BackboneId}", jobId, job.Attempts, job.BackboneId);
        // Cancelled either by the worker shutting down (Hangfire's token) or by the user (the row says so).
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var lease = new JobLease(leaseOwner, options.Value.JobLeaseDuration, job.LeaseExpiresAt!.Value);
        var watcher = WatchLeaseAsync(jobId, lease, cancellation);
        try
        {
            await ExecuteAsync(job, lease, cancellation.Token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Worker shutting down: leave the job "running"; Hangfire hands it to a worker again, which resumes it from its last checkpoint.
            logger.LogWarning("Job {JobId} interrupted by shutdown; it will be retried", jobId);
            NotifyRunEnded(jobId, JobStatus.Running);
            await ReleaseLeaseAsync(jobId, leaseOwner); // the retry need not wait for the lease to lapse
            throw;
        }
        catch (Exception e) when (lease.Lost || e is JobCheckpointStore.LeaseLostException)
        {
            // Another worker holds the job now, or may at any moment (the lease could not be renewed in time): it runs and
            // publishes, not us. Its checkpoints are where this run left them, so it resumes from there.
            logger.LogWarning("Job {JobId}: lease lost (held until {LeaseExpiry:O}); this run stops without publishing", jobId, lease.ConfirmedUntil);
            NotifyRunEnded(jobId, JobStatus.Running);
            await HandBackLapsedLeaseAsync(job, lease);
        }
        catch (OperationCanceledException e) when (cancellation.IsCancellationRequested || e is JobCheckpointStore.CancelledByUserException)
        {
            logger.LogInformation("Job {JobId} cancelled by the user", jobId);
            await RecordEventAsync(jobId, job.TenantId, "info", "Job cancelled; training stopped");
            await ReleaseLeaseAsync(jobId, leaseOwner); // a cancelled job is finished: nothing holds it any more
            NotifyRunEnded(jobId, JobStatus.Cancelled);
        }
        catch (Exception e)
        {
            var (code, message) = e switch
            {
                JobFailedException failed => (failed.Code, failed.Message),
                NonFiniteValueException nonFinite => (nonFinite.Code, nonFinite.Message),
                BackboneTooLargeException tooLarge => (tooLarge.Code, tooLarge.Message),
                InvalidDataException invalid when job.FromCheckpointId is not null => (JobErrorCodes.CheckpointUnavailable, invalid.Message),
                _ => (JobErrorCodes.TrainingFailed, e.Message),
            };
            logger.LogError(e, "Job {JobId} failed with {ErrorCode}", jobId, code);
            NotifyRunEnded(jobId, JobStatus.Failed); // first: the receipt is complete once the job reads "failed"
            await FailAsync(jobId, leaseOwner, job.TenantId, code, message);
        }
        finally
        {
            await cancellation.CancelAsync();
            await watcher;
        }
    }

    /// <summary>
    /// The job object shows the numbers "auto" became (as OpenAI's does); the request is kept beside them. A retry reads
    /// the resolved numbers, which the same data would resolve to again.
    /// </summary>
    private void RecordResolvedHyperparameters(string jobId, ReadHyperparameters resolved)
    {
        using var db = dbFactory.CreateDbContext();
        var json = JsonSerializer.Serialize(resolved, JsonDefaults.SnakeCase);
        db.Jobs.Where(j => j.Id == jobId).ExecuteUpdate(s => s
            .SetProperty(j => j.RequestedHyperparametersJson, j => j.RequestedHyperparametersJson ?? j.HyperparametersJson)
            .SetProperty(j => j.HyperparametersJson, json));
    }

    /// <summary>
    /// Receipts are issued for failed and cancelled jobs too, and add up every attempt: the listeners record what the run
    /// did. <paramref name="status"/> is <see cref="JobStatus.Running"/> for a run that stopped while the job goes on (a
    /// shutdown, a lost lease).
    /// </summary>
    private void NotifyRunEnded(string jobId, string status)
    {
        foreach (var listener in listeners)
        {
            try
            {
                listener.OnRunEnded(jobId, status);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Job {JobId}: a listener failed on the run's end ({Status})", jobId, status);
            }
        }
    }

    private void NotifyPrecomputed(string jobId, PrecomputeOutcome outcome)
    {
        foreach (var listener in listeners)
        {
            try
            {
                listener.OnPrecomputed(jobId, outcome);
            }
            catch (Exception e)
            {
                logger.LogWarning(e, "Job {JobId}: a listener failed on the precompute's outcome", jobId);
            }
        }
    }

    private async Task ExecuteAsync(FineTuneJob job, JobLease lease, CancellationToken ct)
    {
        var (train, validation) = await LoadDataAsync(job, ct);
        Backbone backbone;
        try
        {
            backbone = backbones.Get(job.BackboneId);
        }
        catch (Exception e) when (e is KeyNotFoundException or FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
        {
            throw new JobFailedException(JobErrorCodes.BackboneUnavailable, $"Backbone '{job.BackboneId}' could not be loaded: {e.Message}", e);
        }

        var hyperparameters = JsonSerializer.Deserialize<ReadHyperparameters>(job.HyperparametersJson, JsonDefaults.SnakeCase)!;
        var (last, initialWeights) = await LoadCheckpointsAsync(job, ct);
        // Disposed (flushed) on the way out, so a failure's terminal write comes after the job's last progress and events.
        await using var progress = new JobProgressRecorder(dbFactory, job, listeners, logger);
        var resumeFrom = ReadResumeCheckpoint(last, progress);
        if (resumeFrom is null)
            RequireInitialWeights(job, initialWeights); // a fresh start: no checkpoint of its own, or one set aside as unreadable
        var checkpoints = new JobCheckpointStore(dbFactory, job, lease, logger) { PlannedEpochs = hyperparameters.Epochs };
        FineTuneResult result;
        try
        {
            result = await Task.Run(
                () => new ReadFineTuner
                {
                    CacheScope = $"tenant:{job.TenantId}",
                    ResumeFrom = resumeFrom,
                    InitialWeights = initialWeights,
                    CheckpointSaved = c => checkpoints.Save(c, ct),
                    AutoResolved = resolved =>
                    {
                        checkpoints.PlannedEpochs = resolved.Epochs; // "auto" was −1: the estimate needs the number it became
                        RecordResolvedHyperparameters(job.Id, resolved);
                    },
                    Resumed = epoch => progress.Event("info",
                        $"Resumed by {lease.Owner} from epoch {epoch} (checkpoint {last!.Id}); epochs 1-{epoch} are not run again"),
                    ResumeDiscarded = reason =>
                    {
                        progress.Event("warning", Discarded(last!, reason));
                        RequireInitialWeights(job, initialWeights);
                    },
                    Precomputed = outcome => NotifyPrecomputed(job.Id, outcome),
                    StreamedStepCompleted = progress.StreamedStepCompleted,
                }.Run(backbone, train, validation, FineTuneTasks.Parse(job.Task), hyperparameters, options.Value.ActivationCacheDirectory, progress, ct),
                ct);
        }
        catch (Exception e) when (lease.Lost || e is JobCheckpointStore.LeaseLostException)
        {
            progress.Abandon(); // another worker's run writes this job's log from here on
            throw;
        }

        progress.StageStarted(FineTuneStage.Publish);
        await progress.CompleteAsync();
        await PublishAsync(job, backbone, result, ct);
        logger.LogInformation("Job {JobId} succeeded: {Metrics}, cache hit {CacheHit}", job.Id, result.Metrics, result.Metrics.CacheHit);
    }

    private static readonly TimeSpan FirstWatchRetryDelay = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan MaxWatchRetryDelay = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Polls the job row: cancels <paramref name="cancellation"/> once the user has cancelled the job, renews the lease
    /// every third of its duration, and cancels too once the lease is lost. A database error does not end the watch: it
    /// retries with backoff, and gives the job up only when it could not renew before <see cref="JobLease.GiveUpAt"/>
    /// (another worker may take the job after the expiry) or finds another worker holding it.
    /// </summary>
    private async Task WatchLeaseAsync(string jobId, JobLease lease, CancellationTokenSource cancellation)
    {
        var pollInterval = options.Value.CancellationPollInterval < lease.Duration / 3 ? options.Value.CancellationPollInterval : lease.Duration / 3;
        var retryDelay = FirstWatchRetryDelay;
        var failures = 0;
        try
        {
            while (!cancellation.IsCancellationRequested)
            {
                var untilGiveUp = lease.GiveUpAt - DateTime.UtcNow;
                var wait = failures > 0 ? retryDelay : pollInterval;
                await Task.Delay(untilGiveUp < wait ? (untilGiveUp > TimeSpan.Zero ? untilGiveUp : TimeSpan.Zero) : wait, cancellation.Token);
                if (DateTime.UtcNow >= lease.GiveUpAt)
                {
                    logger.LogWarning("Job {JobId}: the lease could not be renewed before {LeaseExpiry:O} ({Failures} failed tries); this run stops so that another worker can take the job",
                        jobId, lease.ConfirmedUntil, failures);
                    lease.MarkLost();
                    await cancellation.CancelAsync();
                    return;
                }

                LeaseCheck check;
                try
                {
                    check = await CheckLeaseAsync(jobId, lease, cancellation.Token);
                }
                catch (Exception e) when (!cancellation.IsCancellationRequested)
                {
                    failures++;
                    logger.LogWarning(e, "Job {JobId}: the lease watcher could not reach the database (try {Failures}); retrying in {RetryDelay}, lease held until {LeaseExpiry:O}",
                        jobId, failures, retryDelay, lease.ConfirmedUntil);
                    retryDelay = TimeSpan.FromTicks(Math.Min(retryDelay.Ticks * 2, Math.Min(MaxWatchRetryDelay.Ticks, lease.Duration.Ticks / 12)));
                    continue;
                }

                if (failures > 0)
                    logger.LogInformation("Job {JobId}: the lease watcher reached the database again after {Failures} failed tries", jobId, failures);
                failures = 0;
                retryDelay = FirstWatchRetryDelay;
                switch (check)
                {
                    case LeaseCheck.Cancelled:
                        await cancellation.CancelAsync();
                        return;
                    case LeaseCheck.Lost:
                        lease.MarkLost();
                        await cancellation.CancelAsync();
                        return;
                    case LeaseCheck.Finished:
                        return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The job ended; nothing to watch.
        }
    }

    private enum LeaseCheck { Held, Cancelled, Lost, Finished }

    private async Task<LeaseCheck> CheckLeaseAsync(string jobId, JobLease lease, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.Status, j.LeaseOwner }).SingleOrDefaultAsync(ct);
        if (row is null)
            return LeaseCheck.Lost;
        if (row.Status == JobStatus.Cancelled)
            return LeaseCheck.Cancelled;
        if (row.Status != JobStatus.Running)
            return LeaseCheck.Finished; // this run published or failed it
        if (row.LeaseOwner != lease.Owner)
            return LeaseCheck.Lost;
        if (lease.ConfirmedUntil - DateTime.UtcNow > lease.RenewWhenLeft)
            return LeaseCheck.Held; // renewed recently (here or by a checkpoint write)

        var expires = lease.NextExpiry();
        var kept = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner == lease.Owner)
            .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, expires), ct);
        // None kept: the row changed since the read (cancelled, finished, taken over); the next poll says which.
        if (kept > 0)
            lease.Confirm(expires);
        return LeaseCheck.Held;
    }

    /// <summary>
    /// A run that gave its job up because it could not renew the lease leaves the expiry where it was; when the database
    /// answers again and the lease is still this run's, it is marked lapsed now, so the sweep hands the job on at once
    /// instead of after the expiry. Best effort.
    /// </summary>
    private async Task HandBackLapsedLeaseAsync(FineTuneJob job, JobLease lease)
    {
        try
        {
            using var timeout = new CancellationTokenSource(lease.Duration / 3);
            await using var db = await dbFactory.CreateDbContextAsync(timeout.Token);
            var now = DateTime.UtcNow;
            await db.Jobs.Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseOwner == lease.Owner && j.LeaseExpiresAt > now)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, now), timeout.Token);
            if (!await db.Jobs.AnyAsync(j => j.Id == job.Id && j.Status == JobStatus.Running, timeout.Token))
                return; // the next run already finished it
            db.JobEvents.Add(new JobEvent
            {
                JobId = job.Id, TenantId = job.TenantId, CreatedAt = now, Level = "warning",
                Message = $"Worker {lease.Owner} stopped: it lost the job's lease (held until {lease.ConfirmedUntil:O}); another worker resumes the job from its last checkpoint",
            });
            await db.SaveChangesAsync(timeout.Token);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Job {JobId}: could not record the lost lease; the lease lapses on its own", job.Id);
        }
    }

    /// <summary>
    /// The job's own last checkpoint (an earlier attempt got that far: continue at the next epoch), and the weights of the
    /// checkpoint it was created from (<see cref="FineTuneJob.FromCheckpointId"/>), needed by a fresh start and by a resume
    /// whose checkpoint turns out not to match.
    /// </summary>
    private async Task<(JobCheckpoint? Last, TrainingCheckpoint? Initial)> LoadCheckpointsAsync(FineTuneJob job, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var last = await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == job.Id).OrderByDescending(c => c.Epoch).FirstOrDefaultAsync(ct);
        if (job.FromCheckpointId is null)
            return (last, null);
        var initial = await db.JobCheckpoints.AsNoTracking().Where(c => c.Id == job.FromCheckpointId && c.TenantId == job.TenantId).Select(c => c.State).SingleOrDefaultAsync(ct);
        return (last, initial is null ? null : TrainingCheckpoint.Read(initial));
    }

    /// <summary>
    /// Resuming restores the weights the initial checkpoint led to; every fresh start of a job created from a checkpoint
    /// (none of its own, one that cannot be read, one that no longer matches) needs that checkpoint's weights.
    /// </summary>
    private static void RequireInitialWeights(FineTuneJob job, TrainingCheckpoint? initialWeights)
    {
        if (job.FromCheckpointId is not null && initialWeights is null)
            throw new JobFailedException(JobErrorCodes.CheckpointUnavailable, $"Checkpoint {job.FromCheckpointId} no longer exists.");
    }

    /// <summary>The last checkpoint to resume from; one this version cannot read is set aside (training starts over) with an event saying why.</summary>
    private static TrainingCheckpoint? ReadResumeCheckpoint(JobCheckpoint? last, JobProgressRecorder progress)
    {
        if (last is null)
            return null;
        try
        {
            return TrainingCheckpoint.Read(last.State);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or JsonException)
        {
            progress.Event("warning", Discarded(last, $"it cannot be read ({e.Message})"));
            return null;
        }
    }

    private static string Discarded(JobCheckpoint checkpoint, string reason) =>
        $"Checkpoint {checkpoint.Id} (epoch {checkpoint.Epoch}) set aside: {reason}; training starts over from epoch 1 (the activation cache is reused)";

    /// <summary>
    /// queued → running, or running with a lapsed (or no) lease → running again (its worker died), in one conditional
    /// UPDATE that takes the lease. A running job with a live lease is someone else's: a duplicate delivery gets null.
    /// </summary>
    /// <returns>The claimed job (null: nothing to do) and the worker whose lapsed lease this claim took over, if any.</returns>
    private async Task<(FineTuneJob? Job, string? Previous)> ClaimAsync(string jobId, string leaseOwner, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var now = DateTime.UtcNow;
        var expires = now + options.Value.JobLeaseDuration;
        // One transaction: a no-op write locks the row (Postgres row lock, SQLite write lock) so the owner read next is
        // exactly the one the claim replaces; no other worker can claim in between.
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(s => s.SetProperty(j => j.Attempts, j => j.Attempts), ct);
        var previous = await db.Jobs
            .Where(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner != null && (j.LeaseExpiresAt == null || j.LeaseExpiresAt < now))
            .Select(j => j.LeaseOwner).SingleOrDefaultAsync(ct);
        var claimed = await db.Jobs
            .Where(j => j.Id == jobId && (j.Status == JobStatus.Queued
                || (j.Status == JobStatus.Running && (j.LeaseExpiresAt == null || j.LeaseExpiresAt < now))))
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Running)
                .SetProperty(j => j.Stage, (string?)null)
                .SetProperty(j => j.Progress, 0.0)
                .SetProperty(j => j.Attempts, j => j.Attempts + 1)
                .SetProperty(j => j.StartedAt, now)
                .SetProperty(j => j.EstimatedFinishAt, (DateTime?)null) // an earlier attempt's; this one estimates after its first epoch
                .SetProperty(j => j.LeaseOwner, leaseOwner)
                .SetProperty(j => j.LeaseExpiresAt, expires), ct);
        if (claimed == 0)
        {
            logger.LogInformation("Job {JobId} is missing, finished, or running under another worker's live lease; nothing to do", jobId);
            return (null, null);
        }
        var job = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId, ct);
        await tx.CommitAsync(ct);
        return (job, previous);
    }

    private async Task ReleaseLeaseAsync(string jobId, string leaseOwner)
    {
        try
        {
            await using var db = await dbFactory.CreateDbContextAsync();
            await db.Jobs.Where(j => j.Id == jobId && j.LeaseOwner == leaseOwner)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, (DateTime?)null));
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Job {JobId}: could not release its lease; the retry waits for it to lapse", jobId);
        }
    }

    private async Task<(IReadOnlyList<LabeledExample> Train, IReadOnlyList<LabeledExample>? Validation)> LoadDataAsync(FineTuneJob job, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var train = await ReadFileAsync(db, job, job.TrainingFileId, ct);
        var validation = job.ValidationFileId is null ? null : await ReadFileAsync(db, job, job.ValidationFileId, ct);
        return (train, validation);
    }

    private static async Task<IReadOnlyList<LabeledExample>> ReadFileAsync(ReadDbContext db, FineTuneJob job, string fileId, CancellationToken ct)
    {
        if (!await db.Files.AnyAsync(f => f.Id == fileId && f.TenantId == job.TenantId, ct))
            throw new JobFailedException(JobErrorCodes.InvalidTrainingData, $"File {fileId} no longer exists.");
        await using var content = await FileContentStore.OpenReadAsync(db, fileId, ct);
        var parsed = await JsonlDatasetParser.ParseAsync(content, ct);
        if (!parsed.Succeeded)
            throw new JobFailedException(JobErrorCodes.InvalidTrainingData, $"File {fileId}: {parsed.ErrorMessage}");
        return parsed.Examples;
    }

    /// <summary>Adapter row and job status change in one transaction: a job is never "succeeded" without its adapter, nor the reverse.</summary>
    private async Task PublishAsync(FineTuneJob job, Backbone backbone, FineTuneResult result, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var config = AdapterArtifact.ReadConfig(result.Artifact);
        var adapterId = "adapter-" + Guid.NewGuid().ToString("N");
        var metricsJson = JsonSerializer.Serialize(result.Metrics, JsonDefaults.SnakeCase);
        var now = DateTime.UtcNow;
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        db.Adapters.Add(new AdapterRecord
        {
            Id = adapterId,
            TenantId = job.TenantId,
            JobId = job.Id,
            BackboneId = backbone.Id,
            BackboneWeightsHash = backbone.WeightsHash,
            ConfigJson = JsonSerializer.Serialize(config, JsonDefaults.SnakeCase),
            MetricsJson = metricsJson,
            Artifact = result.Artifact,
            SizeBytes = result.Artifact.LongLength,
            Sha256 = Convert.ToHexStringLower(SHA256.HashData(result.Artifact)),
            CreatedAt = now,
        });
        db.JobEvents.Add(new JobEvent
        {
            JobId = job.Id, TenantId = job.TenantId, CreatedAt = now, Level = "info",
            Message = $"Published adapter {adapterId}",
        });
        await db.SaveChangesAsync(ct);
        var updated = await db.Jobs
            // Only while this run holds the lease; finishing gives the lease up.
            .Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseOwner == job.LeaseOwner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.LeaseOwner, (string?)null)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null)
                .SetProperty(j => j.Status, JobStatus.Succeeded)
                .SetProperty(j => j.Stage, FineTuneStages.Name(FineTuneStage.Publish))
                .SetProperty(j => j.Progress, 1.0)
                .SetProperty(j => j.AdapterId, adapterId)
                .SetProperty(j => j.CacheHit, result.Metrics.CacheHit)
                .SetProperty(j => j.MetricsJson, metricsJson)
                .SetProperty(j => j.ErrorCode, (string?)null)
                .SetProperty(j => j.ErrorMessage, (string?)null)
                .SetProperty(j => j.FinishedAt, now), ct);
        if (updated == 0)
            throw new JobFailedException(JobErrorCodes.TrainingFailed, "The job left the running state before it could be published.");
        await tx.CommitAsync(ct);
    }

    private async Task RecordEventAsync(string jobId, Guid tenantId, string level, string message)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        db.JobEvents.Add(new JobEvent { JobId = jobId, TenantId = tenantId, CreatedAt = DateTime.UtcNow, Level = level, Message = message });
        await db.SaveChangesAsync();
    }

    private async Task FailAsync(string jobId, string leaseOwner, Guid tenantId, string code, string message)
    {
        // Not cancellable: a failure must be recorded even while the worker is stopping.
        await using var db = await dbFactory.CreateDbContextAsync();
        var now = DateTime.UtcNow;
        await db.Jobs
            .Where(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner == leaseOwner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.LeaseOwner, (string?)null)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null)
                .SetProperty(j => j.Status, JobStatus.Failed)
                .SetProperty(j => j.ErrorCode, code)
                .SetProperty(j => j.ErrorMessage, message)
                .SetProperty(j => j.FinishedAt, now));
        db.JobEvents.Add(new JobEvent { JobId = jobId, TenantId = tenantId, CreatedAt = now, Level = "error", Message = $"{code}: {message}" });
        await db.SaveChangesAsync();
    }

    internal sealed class JobFailedException(string code, string message, Exception? inner = null) : Exception(message, inner)
    {
        public string Code { get; } = code;
    }
}
