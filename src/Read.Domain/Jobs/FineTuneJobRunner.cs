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
/// found "running" under an expired lease starts over (the activation cache makes that cheap), a job running under a live
/// lease is left to its run (a duplicate delivery exits), and publishing is one transaction.
/// </summary>
public sealed class FineTuneJobRunner(
    IDbContextFactory<ReadDbContext> dbFactory,
    JobLeases leases,
    BackboneRegistry backbones,
    IOptions<ReadOptions> options,
    IEnumerable<IJobStageListener> listeners,
    ILogger<FineTuneJobRunner> logger)
{
    public const string Queue = "training";

    public async Task RunAsync(string jobId, CancellationToken cancellationToken)
    {
        var owner = JobLeases.NewOwner();
        var job = await leases.TryClaimAsync(jobId, owner, options.Value.JobLeaseDuration, cancellationToken);
        if (job is null)
        {
            await LogNotClaimedAsync(jobId, cancellationToken);
            return;
        }

        using var scope = logger.BeginScope(new Dictionary<string, object> { ["JobId"] = jobId });
        logger.LogInformation("Job {JobId} started (attempt {Attempt}) on backbone {BackboneId}", jobId, job.Attempts, job.BackboneId);
        // Cancelled by the worker shutting down (Hangfire's token), by the user (the row says so), or by losing the lease.
        using var leaseLost = new CancellationTokenSource();
        using var cancellation = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, leaseLost.Token);
        var watcher = WatchForCancellationAsync(jobId, cancellation);
        var heartbeat = HoldLeaseAsync(jobId, owner, leaseLost, cancellation.Token);
        try
        {
            await ExecuteAsync(job, owner, cancellation.Token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Worker shutting down: leave the job "running"; Hangfire hands it to a worker again and we start over.
            logger.LogWarning("Job {JobId} interrupted by shutdown; it will be retried", jobId);
            throw;
        }
        catch (OperationCanceledException) when (leaseLost.IsCancellationRequested)
        {
            // Another run owns the job now: whatever it records is the truth, so this one records nothing.
            logger.LogWarning("Job {JobId} lost its lease to another run; this run stopped", jobId);
        }
        catch (OperationCanceledException) when (cancellation.IsCancellationRequested)
        {
            logger.LogInformation("Job {JobId} cancelled by the user", jobId);
            await RecordEventAsync(jobId, job.TenantId, "info", "Job cancelled; training stopped");
        }
        catch (Exception e)
        {
            var (code, message) = e switch
            {
                JobFailedException failed => (failed.Code, failed.Message),
                NonFiniteValuesException { Origin: NonFiniteSource.Activations } => (JobErrorCodes.NonFiniteActivations, e.Message),
                NonFiniteValuesException => (JobErrorCodes.TrainingDiverged, e.Message),
                _ => (JobErrorCodes.TrainingFailed, e.Message),
            };
            logger.LogError(e, "Job {JobId} failed with {ErrorCode}", jobId, code);
            await FailAsync(jobId, owner, job.TenantId, code, message);
        }
        finally
        {
            await cancellation.CancelAsync();
            await watcher;
            await heartbeat;
            // Also on shutdown: the job stays "running", and its redelivery may claim it at once.
            await leases.ReleaseAsync(jobId, owner);
        }
    }

    private async Task ExecuteAsync(FineTuneJob job, string owner, CancellationToken ct)
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
        // Disposed (flushed) on the way out, so a failure's terminal write comes after the job's last progress and events.
        await using var progress = new JobProgressRecorder(dbFactory, job, listeners, logger);
        var result = await Task.Run(
            () => new ReadFineTuner().Run(backbone, train, validation, FineTuneTasks.Parse(job.Task), hyperparameters,
                options.Value.ActivationCacheDirectory, progress, ct),
            ct);

        progress.StageStarted(FineTuneStage.Publish);
        await progress.CompleteAsync();
        await PublishAsync(job, owner, backbone, result, ct);
        logger.LogInformation("Job {JobId} succeeded: {Metrics}, cache hit {CacheHit}", job.Id, result.Metrics, result.Metrics.CacheHit);
    }

    /// <summary>Polls the job row and cancels <paramref name="cancellation"/> once the user has cancelled the job.</summary>
    private async Task WatchForCancellationAsync(string jobId, CancellationTokenSource cancellation)
    {
        try
        {
            while (!cancellation.IsCancellationRequested)
            {
                await Task.Delay(options.Value.CancellationPollInterval, cancellation.Token);
                await using var db = await dbFactory.CreateDbContextAsync(cancellation.Token);
                if (await db.Jobs.AnyAsync(j => j.Id == jobId && j.Status == JobStatus.Cancelled, cancellation.Token))
                {
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
    /// Renews the lease every quarter of its duration until <paramref name="stop"/>. Cancels <paramref name="leaseLost"/>
    /// when another run has claimed the job; a failed renewal (database hiccup) is retried at the next beat.
    /// </summary>
    private async Task HoldLeaseAsync(string jobId, string owner, CancellationTokenSource leaseLost, CancellationToken stop)
    {
        var duration = options.Value.JobLeaseDuration;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(duration / 4, stop);
                bool held;
                try
                {
                    held = await leases.RenewAsync(jobId, owner, duration, stop);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    logger.LogWarning(e, "Job {JobId}: renewing the lease failed; retrying at the next heartbeat", jobId);
                    continue;
                }

                if (!held)
                {
                    await leaseLost.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The job ended; nothing to hold.
        }
    }

    private async Task LogNotClaimedAsync(string jobId, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var row = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId)
            .Select(j => new { j.Status, j.LeaseOwner, j.LeaseExpiresAt }).SingleOrDefaultAsync(ct);
        if (row is { Status: JobStatus.Running })
            logger.LogWarning("Job {JobId} is already running under lease {LeaseOwner} until {LeaseExpiresAt}; this duplicate delivery exits",
                jobId, row.LeaseOwner, row.LeaseExpiresAt);
        else
            logger.LogInformation("Job {JobId} is missing or already finished; nothing to do", jobId);
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
        var content = await db.Files.Where(f => f.Id == fileId && f.TenantId == job.TenantId).Select(f => f.Content).SingleOrDefaultAsync(ct)
            ?? throw new JobFailedException(JobErrorCodes.InvalidTrainingData, $"File {fileId} no longer exists.");
        var parsed = JsonlDatasetParser.Parse(content);
        if (!parsed.Succeeded)
            throw new JobFailedException(JobErrorCodes.InvalidTrainingData, $"File {fileId}: {parsed.ErrorMessage}");
        return parsed.Examples;
    }

    /// <summary>Adapter row and job status change in one transaction: a job is never "succeeded" without its adapter, nor the reverse.</summary>
    private async Task PublishAsync(FineTuneJob job, string owner, Backbone backbone, FineTuneResult result, CancellationToken ct)
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
            .Where(j => j.Id == job.Id && j.Status == JobStatus.Running && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Succeeded)
                .SetProperty(j => j.LeaseOwner, (string?)null)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null)
                .SetProperty(j => j.Stage, FineTuneStages.Name(FineTuneStage.Publish))
                .SetProperty(j => j.Progress, 1.0)
                .SetProperty(j => j.AdapterId, adapterId)
                .SetProperty(j => j.CacheHit, result.Metrics.CacheHit)
                .SetProperty(j => j.MetricsJson, metricsJson)
                .SetProperty(j => j.ErrorCode, (string?)null)
                .SetProperty(j => j.ErrorMessage, (string?)null)
                .SetProperty(j => j.FinishedAt, now), ct);
        if (updated == 0)
            throw new JobFailedException(JobErrorCodes.TrainingFailed, "The job left the running state (or this run's lease) before it could be published.");
        await tx.CommitAsync(ct);
    }

    private async Task RecordEventAsync(string jobId, Guid tenantId, string level, string message)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        db.JobEvents.Add(new JobEvent { JobId = jobId, TenantId = tenantId, CreatedAt = DateTime.UtcNow, Level = level, Message = message });
        await db.SaveChangesAsync();
    }

    private async Task FailAsync(string jobId, string owner, Guid tenantId, string code, string message)
    {
        // Not cancellable: a failure must be recorded even while the worker is stopping.
        await using var db = await dbFactory.CreateDbContextAsync();
        var now = DateTime.UtcNow;
        var failed = await db.Jobs
            .Where(j => j.Id == jobId && j.Status == JobStatus.Running && j.LeaseOwner == owner)
            .ExecuteUpdateAsync(s => s
                .SetProperty(j => j.Status, JobStatus.Failed)
                .SetProperty(j => j.LeaseOwner, (string?)null)
                .SetProperty(j => j.LeaseExpiresAt, (DateTime?)null)
                .SetProperty(j => j.ErrorCode, code)
                .SetProperty(j => j.ErrorMessage, message)
                .SetProperty(j => j.FinishedAt, now));
        // A run that no longer holds the job (its lease went to another run) must not write into that run's log.
        if (failed == 0)
            return;
        db.JobEvents.Add(new JobEvent { JobId = jobId, TenantId = tenantId, CreatedAt = now, Level = "error", Message = $"{code}: {message}" });
        await db.SaveChangesAsync();
    }

    private sealed class JobFailedException(string code, string message, Exception? inner = null) : Exception(message, inner)
    {
        public string Code { get; } = code;
    }
}
