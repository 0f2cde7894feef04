using System.Globalization;
using Hangfire;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Domain.Sweeps;

namespace Read.ServiceDefaults;

/// <summary>
/// Moves a sweep on: hands its trials to Hangfire as <see cref="SweepPlan.NextToStart"/> allows (one while no trial has
/// built the shared cache, then up to max_parallel), and once every trial has finished records the outcome, promoting the
/// best trial and its adapter. Runs after each trial (<see cref="RunTrialAsync"/>), on sweep create and cancel, and on
/// every pass of <see cref="JobLeaseSweep"/>, which also covers a trial re-run outside its sweep job (lease takeover,
/// restart) and an API that stopped before starting its sweep.
/// </summary>
public sealed class SweepScheduler(IDbContextFactory<ReadDbContext> dbFactory, IBackgroundJobClient hangfire, FineTuneJobRunner runner, ILogger<SweepScheduler> logger)
{
    /// <summary>
    /// <see cref="FineTuneJob.HangfireJobId"/> of a trial the sweep has not started yet. Job recovery leaves such jobs
    /// alone: only the sweep starts them, when the plan has room.
    /// </summary>
    public const string NotStarted = "sweep:not-started";

    /// <summary>One trial's Hangfire job: the trial itself, then the sweep's next step.</summary>
    public async Task RunTrialAsync(string sweepId, string jobId, CancellationToken cancellationToken)
    {
        // A worker shutting down throws here: Hangfire runs this again, and the trial with it.
        await runner.RunAsync(jobId, cancellationToken);
        await using var db = await dbFactory.CreateDbContextAsync(CancellationToken.None);
        await AdvanceAsync(db, hangfire, sweepId, logger, CancellationToken.None);
    }

    /// <summary>Advances every unfinished sweep (the periodic pass); returns how many trials it started.</summary>
    public static async Task<int> AdvanceUnfinishedAsync(IDbContextFactory<ReadDbContext> dbFactory, IBackgroundJobClient hangfire, ILogger logger, CancellationToken ct)
    {
        await using var db = await dbFactory.CreateDbContextAsync(ct);
        var unfinished = await db.Sweeps.Where(s => s.Status == SweepStatus.Running).Select(s => s.Id).ToListAsync(ct);
        var started = 0;
        foreach (var sweepId in unfinished)
            started += await AdvanceAsync(db, hangfire, sweepId, logger, ct);
        return started;
    }

    /// <summary>
    /// Starts the trials the plan has room for, or finishes the sweep once every trial has. Under a lock on the sweep's row,
    /// so two trials ending together neither start the same trial twice nor finish the sweep twice.
    /// </summary>
    /// <returns>How many trials this call started.</returns>
    public static async Task<int> AdvanceAsync(ReadDbContext db, IBackgroundJobClient hangfire, string sweepId, ILogger logger, CancellationToken ct)
    {
        await using var tx = await db.Database.BeginTransactionAsync(ct);
        // A no-op write locks the row (Postgres row lock, SQLite write lock) for the rest of the transaction.
        var locked = await db.Sweeps.Where(s => s.Id == sweepId && s.Status == SweepStatus.Running)
            .ExecuteUpdateAsync(s => s.SetProperty(w => w.MaxParallel, w => w.MaxParallel), ct);
        if (locked == 0)
            return 0; // finished already, or no such sweep
        var sweep = await db.Sweeps.AsNoTracking().SingleAsync(s => s.Id == sweepId, ct);
        var ids = sweep.TrialJobIds;
        var jobs = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id))
            .Select(j => new { j.Id, j.Status, j.Stage, j.HangfireJobId, j.MetricsJson, j.AdapterId }).ToDictionaryAsync(j => j.Id, ct);
        var trials = ids.Select(id => jobs[id]).Select((j, index) => new SweepPlan.Trial(
            j.Id, index, j.Status, j.Stage, j.HangfireJobId != NotStarted, SweepPlan.MetricValue(j.MetricsJson, sweep.Metric), j.AdapterId)).ToList();

        if (SweepPlan.Finish(trials, sweep.Metric, sweep.CancelRequestedAt is not null) is { } outcome)
        {
            await RecordOutcomeAsync(db, sweep, outcome, ct);
            await tx.CommitAsync(ct);
            logger.LogInformation("Sweep {SweepId} {Status}; promoted trial {BestJobId} ({Metric} {MetricValue}), adapter {AdapterId}",
                sweepId, outcome.Status, outcome.Best?.JobId, sweep.Metric, outcome.Best?.MetricValue, outcome.Best?.AdapterId);
            return 0;
        }

        var next = SweepPlan.NextToStart(trials, sweep.MaxParallel);
        foreach (var trial in next)
        {
            var jobId = trial.JobId;
            // Enqueued before the commit: if the commit is lost, the trial still runs, and a later step sees it running.
            var hangfireId = hangfire.Enqueue<SweepScheduler>(FineTuneJobRunner.Queue, s => s.RunTrialAsync(sweepId, jobId, CancellationToken.None));
            await db.Jobs.Where(j => j.Id == jobId && j.HangfireJobId == NotStarted)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.HangfireJobId, hangfireId), ct);
        }
        await tx.CommitAsync(ct);
        foreach (var trial in next)
            logger.LogInformation("Sweep {SweepId} started trial {Trial} ({JobId})", sweepId, trial.Index, trial.JobId);
        return next.Count;
    }

    private static async Task RecordOutcomeAsync(ReadDbContext db, Sweep sweep, SweepPlan.Outcome outcome, CancellationToken ct)
    {
        var now = DateTime.UtcNow;
        var best = outcome.Best;
        var (status, bestJobId, bestValue, adapterId) = (outcome.Status, best?.JobId, best?.MetricValue, best?.AdapterId);
        await db.Sweeps.Where(s => s.Id == sweep.Id).ExecuteUpdateAsync(s => s
            .SetProperty(w => w.Status, status)
            .SetProperty(w => w.BestJobId, bestJobId)
            .SetProperty(w => w.BestMetricValue, bestValue)
            .SetProperty(w => w.PromotedAdapterId, adapterId)
            .SetProperty(w => w.FinishedAt, now), ct);
        if (best is null)
            return;
        // The promoted trial's own event log says so too, next to the job's other events.
        db.JobEvents.Add(new JobEvent
        {
            JobId = best.JobId, TenantId = sweep.TenantId, CreatedAt = now, Level = "info",
            Message = string.Create(CultureInfo.InvariantCulture,
                $"Promoted as the best trial of {sweep.Id} ({sweep.Metric} {best.MetricValue:R}); its adapter {best.AdapterId} is the sweep's"),
        });
        await db.SaveChangesAsync(ct);
    }
}
