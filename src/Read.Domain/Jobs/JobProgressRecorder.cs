using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.FineTuning;
using Read.Domain.Configuration;
using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>
/// Records a running job's stage, progress and per-epoch metrics as the trainer reports them, without ever making the
/// trainer wait on, or fail with, the database. The training thread only posts: the row's stage and progress go to a
/// latest-wins slot, events to a bounded channel in order. A background writer flushes both in batches; a failed write
/// is logged and retried with backoff. <see cref="CompleteAsync"/> flushes what is left, and the runner awaits it before
/// it writes the job's terminal state.
/// </summary>
internal sealed class JobProgressRecorder : IFineTuneProgress, IAsyncDisposable
{
    // Progress is reported per batch; the database hears about it at most this often.
    private static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan FirstRetryDelay = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(5);
    // The terminal write needs the database too; past this the job's end is not held up for its log any longer.
    private static readonly TimeSpan FinalFlushTimeout = TimeSpan.FromSeconds(30);
    // Events are a few per stage and one per epoch: this many unsent means the database has been gone a long while.
    private const int EventCapacity = 4096;
    private const int BatchSize = 256;

    private readonly IDbContextFactory<ReadDbContext> dbFactory;
    private readonly FineTuneJob job;
    private readonly IEnumerable<IJobStageListener> listeners;
    private readonly ILogger logger;
    private readonly Stopwatch _sinceLastProgress = Stopwatch.StartNew();
    private readonly Channel<PendingEvent> _events = Channel.CreateBounded<PendingEvent>(
        new BoundedChannelOptions(EventCapacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });
    private readonly SemaphoreSlim _wake = new(0);
    private readonly CancellationTokenSource _abandon = new();
    private readonly Lock _rowLock = new();
    private RowState? _row;
    private volatile bool _completing;
    private readonly Task _writer;

    public JobProgressRecorder(IDbContextFactory<ReadDbContext> dbFactory, FineTuneJob job, IEnumerable<IJobStageListener> listeners, ILogger logger)
    {
        this.dbFactory = dbFactory;
        this.job = job;
        this.listeners = listeners;
        this.logger = logger;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>Stage and progress the job row should show; a newer one replaces an unsent older one.</summary>
    private sealed record RowState(string Stage, double Progress);

    private sealed record PendingEvent(DateTime CreatedAt, string Level, string Message, string? DataJson);

    public void StageStarted(FineTuneStage stage)
    {
        var name = FineTuneStages.Name(stage);
        logger.LogInformation("Job {JobId} entered {Stage}", job.Id, name);
        PostRow(new RowState(name, 0.0));
        PostEvent("info", $"Stage {name} started", null);
        _sinceLastProgress.Restart();
        foreach (var listener in listeners)
            listener.OnStageStarted(job.Id, stage);
    }

    public void Progress(FineTuneStage stage, double fraction)
    {
        if (_sinceLastProgress.Elapsed < ProgressInterval && fraction < 1.0)
            return;
        _sinceLastProgress.Restart();
        PostRow(new RowState(FineTuneStages.Name(stage), Math.Clamp(fraction, 0, 1)));
    }

    public void EpochCompleted(EpochMetrics metrics)
    {
        logger.LogInformation("Job {JobId} epoch {Epoch}: {EpochMetrics}", job.Id, metrics.Epoch, metrics.Describe());
        PostEvent("info", $"Epoch {metrics.Epoch}: {metrics.Describe()}", JsonSerializer.Serialize(metrics, JsonDefaults.SnakeCase));
    }

    /// <summary>
    /// One step of a layer-streamed precompute: an event per layer, so a precompute that takes minutes per layer on a
    /// backbone larger than memory shows where it is and what each layer cost (weights read, seconds).
    /// </summary>
    public void StreamedStepCompleted(StreamedPrecomputeStep step)
    {
        var what = step.Step == 0 ? "embeddings" : $"layer {step.Step}";
        PostEvent("info", $"Layer-streamed precompute: {what} read {step.WeightBytesRead / 1e6:F0} MB of weights in {step.LoadSeconds:F2} s, ran over {step.Tokens} tokens in {step.RunSeconds:F2} s",
            JsonSerializer.Serialize(step, JsonDefaults.SnakeCase));
    }

    /// <summary>An event of the runner's own (resume, checkpoint set aside), in order with the trainer's.</summary>
    public void Event(string level, string message) => PostEvent(level, message, null);

    /// <summary>
    /// The run lost its lease: another worker's run now writes the job's progress and events, so what this one has not
    /// written yet is dropped at once instead of retried (its stage and progress writes were conditional on the lease
    /// anyway). Call before <see cref="CompleteAsync"/>.
    /// </summary>
    public void Abandon() => _abandon.Cancel();

    /// <summary>
    /// Writes everything posted so far and stops the writer. Retries keep going for up to 30 seconds; what is still
    /// unsent after that is logged as dropped. Idempotent.
    /// </summary>
    public async Task CompleteAsync()
    {
        if (!_completing)
        {
            _completing = true;
            _events.Writer.TryComplete();
            _wake.Release();
        }

        if (await Task.WhenAny(_writer, Task.Delay(FinalFlushTimeout)) != _writer)
            await _abandon.CancelAsync();
        await _writer;
    }

    public async ValueTask DisposeAsync()
    {
        await CompleteAsync();
        _abandon.Dispose();
        _wake.Dispose();
    }

    private void PostRow(RowState row)
    {
        lock (_rowLock)
            _row = row;
        _wake.Release();
    }

    private void PostEvent(string level, string message, string? dataJson)
    {
        if (!_events.Writer.TryWrite(new PendingEvent(DateTime.UtcNow, level, message, dataJson)))
            logger.LogWarning("Job {JobId}: {Count} events are waiting for the database; dropped event \"{Message}\"", job.Id, EventCapacity, message);
        _wake.Release();
    }

    private RowState? TakeRow()
    {
        lock (_rowLock)
        {
            var row = _row;
            _row = null;
            return row;
        }
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<PendingEvent>();
        RowState? row = null;
        var delay = FirstRetryDelay;
        while (true)
        {
            // Unsent events stay first in the batch, so the log keeps its order across retries.
            while (batch.Count < BatchSize && _events.Reader.TryRead(out var pending))
                batch.Add(pending);
            row = TakeRow() ?? row;
            if (batch.Count == 0 && row is null)
            {
                if (_completing && !_events.Reader.TryPeek(out _))
                    return;
                await _wake.WaitAsync();
                continue;
            }

            try
            {
                await WriteAsync(row, batch);
                batch.Clear();
                row = null;
                delay = FirstRetryDelay;
            }
            catch (Exception e)
            {
                if (_abandon.IsCancellationRequested)
                {
                    logger.LogWarning(e, "Job {JobId}: gave up writing progress; {Count} event(s) not recorded", job.Id, batch.Count + _events.Reader.Count);
                    return;
                }

                logger.LogWarning(e, "Job {JobId}: writing progress failed; retrying in {RetryDelay}", job.Id, delay);
                try
                {
                    await Task.Delay(delay, _abandon.Token);
                }
                catch (OperationCanceledException)
                {
                    // One last attempt, then give up above.
                }

                delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, MaxRetryDelay.Ticks));
            }
        }
    }

    private async Task WriteAsync(RowState? row, List<PendingEvent> batch)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        if (row is not null)
        {
            // Only while this run holds the job: a run that lost its lease must not overwrite the new run's progress.
            await db.Jobs.Where(j => j.Id == job.Id && j.LeaseOwner == job.LeaseOwner)
                .ExecuteUpdateAsync(s => s.SetProperty(j => j.Stage, row.Stage).SetProperty(j => j.Progress, row.Progress));
        }

        if (batch.Count == 0)
            return;
        // New entities every attempt: a failed SaveChanges leaves its entities in no state worth reusing.
        db.JobEvents.AddRange(batch.Select(e => new JobEvent
        {
            JobId = job.Id, TenantId = job.TenantId, CreatedAt = e.CreatedAt, Level = e.Level, Message = e.Message, DataJson = e.DataJson,
        }));
        await db.SaveChangesAsync();
    }
}
