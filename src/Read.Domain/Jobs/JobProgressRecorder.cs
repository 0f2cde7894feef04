using System.Diagnostics;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.FineTuning;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>Writes a running job's stage, progress and per-epoch metrics to the database as the trainer reports them.</summary>
internal sealed class JobProgressRecorder(
    IDbContextFactory<ReadDbContext> dbFactory,
    FineTuneJob job,
    IEnumerable<IJobStageListener> listeners,
    ILogger logger) : IFineTuneProgress
{
    // Progress is reported per batch; the database hears about it at most this often.
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);
    private readonly Stopwatch _sinceLastWrite = Stopwatch.StartNew();

    public void StageStarted(FineTuneStage stage)
    {
        var name = FineTuneStages.Name(stage);
        logger.LogInformation("Job {JobId} entered {Stage}", job.Id, name);
        using (var db = dbFactory.CreateDbContext())
        {
            db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdate(s => s.SetProperty(j => j.Stage, name).SetProperty(j => j.Progress, 0.0));
            AddEvent(db, "info", $"Stage {name} started", null);
        }
        _sinceLastWrite.Restart();
        foreach (var listener in listeners)
            listener.OnStageStarted(job.Id, stage);
    }

    public void Progress(FineTuneStage stage, double fraction)
    {
        if (_sinceLastWrite.Elapsed < ProgressInterval && fraction < 1.0)
            return;
        _sinceLastWrite.Restart();
        using var db = dbFactory.CreateDbContext();
        db.Jobs.Where(j => j.Id == job.Id).ExecuteUpdate(s => s.SetProperty(j => j.Progress, Math.Clamp(fraction, 0, 1)));
    }

    public void EpochCompleted(EpochMetrics metrics)
    {
        logger.LogInformation("Job {JobId} epoch {Epoch}: {EpochMetrics}", job.Id, metrics.Epoch, metrics.Describe());
        using var db = dbFactory.CreateDbContext();
        AddEvent(db, "info", $"Epoch {metrics.Epoch}: {metrics.Describe()}", JsonSerializer.Serialize(metrics, JsonDefaults.SnakeCase));
    }

    private void AddEvent(ReadDbContext db, string level, string message, string? dataJson)
    {
        db.JobEvents.Add(new JobEvent
        {
            JobId = job.Id, TenantId = job.TenantId, CreatedAt = DateTime.UtcNow, Level = level, Message = message, DataJson = dataJson,
        });
        db.SaveChanges();
    }
}
