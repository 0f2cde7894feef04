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
/// found "running" starts over (the activation cache makes that cheap), and publishing is one transaction.
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
        var lease = new LeaseState();
        var watcher = WatchForCancellationAsync(jobId, leaseOwner, lease, cancellation);
        try
        {
            await ExecuteAsync(job, cancellation.Token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Worker shutting down: leave the job "running"; Hangfire hands it to a worker again and we start over.
            logger.LogWarning("Job {JobId} interrupted by shutdown; it will be retried", jobId);
            await ReleaseLeaseAsync(jobId, leaseOwner); // the retry need not wait for the lease to lapse
            throw;
        }
        catch (Exception e) when (lease.Lost || e is JobCheckpointStore.LeaseLostException)
        {
            // Another worker holds the job now (ours lapsed, e.g. a long pause): it runs and publishes, not us.
            logger.LogWarning("Job {JobId}: lease lost to another worker; this run stops without publishing", jobId);
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

    /// <summary>Receipts are issued for failed and cancelled jobs too: the listeners record what the run did.</summary>
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

    private async Task ExecuteAsync(FineTuneJob job, CancellationToken ct)
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
        var (resumeFrom, initialWeights) = await LoadCheckpointsAsync(job, ct);
        // Disposed (flushed) on the way out, so a failure's terminal write comes after the job's last progress and events.
        await using var progress = new JobProgressRecorder(dbFactory, job, listeners, logger);
        var checkpoints = new JobCheckpointStore(dbFactory, job, options.Value.JobLeaseDuration, hyperparameters.Epochs);
        var result = await Task.Run(
            () => new ReadFineTuner
            {
                CacheScope = $"tenant:{job.TenantId}",
                ResumeFrom = resumeFrom,
                InitialWeights = initialWeights,
                CheckpointSaved = c => checkpoints.Save(c, ct),
                AutoResolved = resolved => RecordResolvedHyperparameters(job.Id, resolved),
                StreamedStepCompleted = progress.StreamedStepCompleted,
            }.Run(backbone, train, validation, FineTuneTasks.Parse(job.Task), hyperparameters, options.Value.ActivationCacheDirectory, progress, ct),
            ct);

        progress.StageStarted(FineTuneStage.Publish);
        await progress.CompleteAsync();
        await PublishAsync(job, backbone, result, ct);
        logger.LogInformation("Job {JobId} succeeded: {Metrics}, cache hit {CacheHit}", job.Id, result.Metrics, result.Metrics.CacheHit);
    }

    /// <summary>
    /// Polls the job row: cancels <paramref name="cancellation"/> once the user has cancelled the job, renews the lease
    /// every third of its duration, and cancels too if another worker took the lease over.
    /// </summary>
    private async Task WatchForCancellationAsync(string jobId, string leaseOwner, LeaseState lease, CancellationTokenSource cancellation)
    {
        try
        {
            var renewEvery = options.Value.JobLeaseDuration / 3;
            var renewed = DateTime.UtcNow;
            while (!cancellation.IsCancellationRequested)
            {
                await Task.Delay(options.Value.CancellationPollInterval < renewEvery ? options.Value.CancellationPollInterval : renewEvery, cancellation.Token);
                await using var db = await dbFactory.CreateDbContextAsync(cancellation.Token);
                if (await db.Jobs.AnyAsync(j => j.Id == jobId && j.Status == JobStatus.Cancelled, cancellation.Token))
                {
                    await cancellation.CancelAsync();
                    return;
                }

                if (DateTime.UtcNow - renewed < renewEvery)
                    continue;
                var expires = DateTime.UtcNow + options.Value.JobLeaseDuration;
                var kept = await db.Jobs.Where(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner == leaseOwner)
                    .ExecuteUpdateAsync(s => s.SetProperty(j => j.LeaseExpiresAt, expires), cancellation.Token);
                renewed = DateTime.UtcNow;
                if (kept == 0 && await db.Jobs.AnyAsync(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner != leaseOwner, cancellation.Token))
                {
                    lease.Lost = true;
                    await cancellation.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The job ended; nothing to watch.
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Cancellation watcher for job {JobId} stopped", jobId);
        }
    }

    /// <summary>
    /// The job's own last checkpoint (an earlier attempt got that far: continue at the next epoch), and the weights of the
    /// checkpoint it was created from (<see cref="FineTuneJob.FromCheckpointId"/>).
    /// </summary>
    private async Task<(TrainingCheckpoint? Resume, TrainingCheckpoint? Initial)> LoadCheckpointsAsync(FineTuneJob job, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var last = await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == job.Id).OrderByDescending(c => c.Epoch).FirstOrDefaultAsync(ct);
        TrainingCheckpoint? resume = null;
        if (last is not null)
        {
            resume = TrainingCheckpoint.Read(last.State);
            await RecordEventAsync(job.Id, job.TenantId, "info", $"Resumed by {job.LeaseOwner} from epoch {last.Epoch} (checkpoint {last.Id}); epochs 1-{last.Epoch} are not run again");
        }

        // Resuming restores the weights the initial checkpoint led to, so it is needed only for a fresh start.
        if (job.FromCheckpointId is null || resume is not null)
            return (resume, null);
        var initial = await db.JobCheckpoints.AsNoTracking().Where(c => c.Id == job.FromCheckpointId && c.TenantId == job.TenantId).Select(c => c.State).SingleOrDefaultAsync(ct)
            ?? throw new JobFailedException(JobErrorCodes.CheckpointUnavailable, $"Checkpoint {job.FromCheckpointId} no longer exists.");
        return (null, TrainingCheckpoint.Read(initial));
    }

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

    private sealed class LeaseState
    {
        public volatile bool Lost;
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
