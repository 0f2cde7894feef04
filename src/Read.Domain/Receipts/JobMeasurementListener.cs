using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Domain.Receipts;

/// <summary>
/// Measures what a job cost the workers for its receipt: process CPU time, peak RSS and wall seconds per stage from each
/// attempt's first stage to its end, the tokens the backbone ran over, and the dataset's tokens (counted by the precompute
/// itself, <see cref="PrecomputeOutcome"/>). Every attempt adds to the job's one <see cref="JobMeasurement"/> row, and
/// writes what it has at each stage, every <see cref="FlushInterval"/> and at its end, so a resumed job's receipt covers
/// the attempt that died too. Never fails a job: a write that goes wrong is logged and its figures are carried to the next.
/// </summary>
public sealed class JobMeasurementListener : IJobStageListener, IDisposable
{
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(200);
    /// <summary>How much of an attempt a kill can take off its receipt at most.</summary>
    internal static readonly TimeSpan FlushInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan TokenCountTimeout = TimeSpan.FromMinutes(2);
    private static readonly TimeSpan[] FinalRetryDelays = [TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1)];

    private readonly IDbContextFactory<ReadDbContext> dbFactory;
    private readonly ILogger<JobMeasurementListener> logger;
    private readonly ConcurrentDictionary<string, Run> _runs = new();
    private readonly Timer _sampler;

    public JobMeasurementListener(IDbContextFactory<ReadDbContext> dbFactory, ILogger<JobMeasurementListener> logger)
    {
        this.dbFactory = dbFactory;
        this.logger = logger;
        _sampler = new Timer(_ => Tick(), null, SampleInterval, SampleInterval);
    }

    /// <summary>One attempt in this process. Figures not yet written accumulate here; a failed write puts them back.</summary>
    private sealed class Run(string jobId, TimeSpan cpu, long rss)
    {
        public readonly Lock Lock = new();
        public readonly SemaphoreSlim Writing = new(1, 1);
        public string JobId { get; } = jobId;
        public DateTime StartedAt { get; } = DateTime.UtcNow;
        public DateTime LastWrite = DateTime.UtcNow;
        public bool Ended;

        // Guarded by Lock.
        public TimeSpan CpuMark = cpu;
        public FineTuneStage Stage = FineTuneStage.Precompute;
        public DateTime StageMark = DateTime.UtcNow;
        public Figures Pending = new();

        public long PeakRss = rss;
        public int MaxConcurrent = 1;
        public volatile Task<long>? DatasetTokens;
    }

    /// <summary>Figures to add to the row (sums), or to fold into it (maxima).</summary>
    private sealed class Figures
    {
        public double Cpu;
        public double Precompute;
        public double Train;
        public double Evaluate;
        public long BackboneTokens;
        public int Attempts;

        public void Add(Figures other)
        {
            Cpu += other.Cpu;
            Precompute += other.Precompute;
            Train += other.Train;
            Evaluate += other.Evaluate;
            BackboneTokens += other.BackboneTokens;
            Attempts += other.Attempts;
        }
    }

    public void OnStageStarted(string jobId, FineTuneStage stage)
    {
        try
        {
            if (stage == FineTuneStage.Precompute)
            {
                Begin(jobId);
            }
            else if (_runs.TryGetValue(jobId, out var run))
            {
                Mark(run, stage);
                if (stage == FineTuneStage.Publish && _runs.TryRemove(jobId, out _))
                    End(run); // before the job reads "succeeded", so its receipt is complete then
                else
                    _ = WriteAsync(run, final: false);
            }
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Job {JobId}: measurement for the receipt failed at {Stage}; the receipt will lack it", jobId, stage);
        }
    }

    public void OnPrecomputed(string jobId, PrecomputeOutcome outcome)
    {
        if (!_runs.TryGetValue(jobId, out var run))
            return;
        lock (run.Lock)
            run.Pending.BackboneTokens += outcome.BackboneTokens;
        run.DatasetTokens = outcome.DatasetTokens;
        _ = WriteAsync(run, final: false); // the backbone's work is on the receipt even if this worker dies next
    }

    /// <summary>A run that stopped without publishing (failed, cancelled, or interrupted while the job goes on): its figures up to now.</summary>
    public void OnRunEnded(string jobId, string status)
    {
        if (_runs.TryRemove(jobId, out var run))
            End(run);
    }

    private void Begin(string jobId)
    {
        var run = new Run(jobId, CpuTime(), Environment.WorkingSet);
        lock (run.Lock)
            run.Pending.Attempts = 1;
        _runs[jobId] = run;
        // Runs that never ended here (a listener failure, say) are forgotten eventually.
        foreach (var (id, old) in _runs)
            if (DateTime.UtcNow - old.StartedAt > TimeSpan.FromDays(2))
                _runs.TryRemove(id, out _);
        var concurrent = _runs.Count;
        foreach (var other in _runs.Values)
            InterlockedMax(ref other.MaxConcurrent, concurrent);
    }

    /// <summary>The stage that just ended gets the wall time since its start (or the last write).</summary>
    private static void Mark(Run run, FineTuneStage next)
    {
        lock (run.Lock)
        {
            AddStageTime(run, DateTime.UtcNow);
            run.Stage = next;
        }
    }

    private static void AddStageTime(Run run, DateTime now)
    {
        var seconds = (now - run.StageMark).TotalSeconds;
        run.StageMark = now;
        switch (run.Stage)
        {
            case FineTuneStage.Precompute: run.Pending.Precompute += seconds; break;
            case FineTuneStage.Train: run.Pending.Train += seconds; break;
            case FineTuneStage.Evaluate: run.Pending.Evaluate += seconds; break;
        }
    }

    private void End(Run run)
    {
        Sample();
        // The token count may still be running beside training (single-position pooling on a cache hit).
        if (run.DatasetTokens is { IsCompleted: false } tokens)
        {
            try
            {
                tokens.Wait(TokenCountTimeout);
            }
            catch (AggregateException e)
            {
                logger.LogWarning(e, "Job {JobId}: counting its tokens for the receipt failed", run.JobId);
            }
        }

        WriteAsync(run, final: true).GetAwaiter().GetResult();
    }

    private void Tick()
    {
        Sample();
        foreach (var run in _runs.Values)
            if (DateTime.UtcNow - run.LastWrite >= FlushInterval)
                _ = WriteAsync(run, final: false);
    }

    /// <summary>Adds what accumulated since the last write to the job's row; one write per run at a time.</summary>
    private async Task WriteAsync(Run run, bool final)
    {
        if (final)
            await run.Writing.WaitAsync();
        else if (!await run.Writing.WaitAsync(0))
            return; // a write is under way; the next one takes these figures along
        try
        {
            if (run.Ended)
                return;
            run.Ended = final;
            run.LastWrite = DateTime.UtcNow;
            for (var attempt = 0; ; attempt++)
            {
                var figures = Take(run);
                try
                {
                    await WriteFiguresAsync(run, figures);
                    return;
                }
                catch (Exception e)
                {
                    lock (run.Lock)
                        run.Pending.Add(figures);
                    if (!final || attempt >= FinalRetryDelays.Length)
                    {
                        logger.LogWarning(e, "Job {JobId}: writing its receipt's measurements failed; {What}",
                            run.JobId, final ? "the receipt lacks this attempt's last figures" : "they go with the next write");
                        return;
                    }

                    await Task.Delay(FinalRetryDelays[attempt]);
                }
            }
        }
        finally
        {
            run.Writing.Release();
        }
    }

    private static Figures Take(Run run)
    {
        lock (run.Lock)
        {
            var cpu = CpuTime();
            run.Pending.Cpu += (cpu - run.CpuMark).TotalSeconds;
            run.CpuMark = cpu;
            AddStageTime(run, DateTime.UtcNow);
            var figures = run.Pending;
            run.Pending = new Figures();
            return figures;
        }
    }

    private async Task WriteFiguresAsync(Run run, Figures f)
    {
        var peak = Interlocked.Read(ref run.PeakRss);
        var concurrent = Volatile.Read(ref run.MaxConcurrent);
        long? tokens = run.DatasetTokens is { IsCompletedSuccessfully: true } counted ? counted.Result : null;
        var worker = $"{Environment.MachineName}:{Environment.ProcessId}";
        var now = DateTime.UtcNow;
        await using var db = await dbFactory.CreateDbContextAsync();
        for (var tries = 0; ; tries++)
        {
            var updated = await db.JobMeasurements.Where(m => m.JobId == run.JobId).ExecuteUpdateAsync(s => s
                .SetProperty(m => m.CpuSeconds, m => m.CpuSeconds + f.Cpu)
                .SetProperty(m => m.PeakRssBytes, m => m.PeakRssBytes > peak ? m.PeakRssBytes : peak)
                .SetProperty(m => m.ConcurrentJobs, m => m.ConcurrentJobs > concurrent ? m.ConcurrentJobs : concurrent)
                .SetProperty(m => m.DatasetTokens, m => tokens ?? m.DatasetTokens)
                .SetProperty(m => m.BackboneTokens, m => (m.BackboneTokens ?? 0) + f.BackboneTokens)
                .SetProperty(m => m.PrecomputeSeconds, m => (m.PrecomputeSeconds ?? 0) + f.Precompute)
                .SetProperty(m => m.TrainSeconds, m => (m.TrainSeconds ?? 0) + f.Train)
                .SetProperty(m => m.EvaluateSeconds, m => (m.EvaluateSeconds ?? 0) + f.Evaluate)
                .SetProperty(m => m.Attempts, m => (m.Attempts ?? 0) + f.Attempts)
                .SetProperty(m => m.Worker, worker)
                .SetProperty(m => m.MeasuredAt, now));
            if (updated > 0)
                return;
            var tenantId = await db.Jobs.Where(j => j.Id == run.JobId).Select(j => j.TenantId).SingleAsync();
            db.JobMeasurements.Add(new JobMeasurement
            {
                JobId = run.JobId, TenantId = tenantId, CpuSeconds = f.Cpu, PeakRssBytes = peak, DatasetTokens = tokens ?? 0,
                ConcurrentJobs = concurrent, Worker = worker, MeasuredAt = now, BackboneTokens = f.BackboneTokens,
                PrecomputeSeconds = f.Precompute, TrainSeconds = f.Train, EvaluateSeconds = f.Evaluate, Attempts = f.Attempts,
            });
            try
            {
                await db.SaveChangesAsync();
                return;
            }
            catch (DbUpdateException) when (tries == 0)
            {
                // Another attempt's first write got there first (a run that lost its lease, still ending): add to its row.
                db.ChangeTracker.Clear();
            }
        }
    }

    private void Sample()
    {
        if (_runs.IsEmpty)
            return;
        var rss = Environment.WorkingSet;
        foreach (var run in _runs.Values)
            InterlockedMax(ref run.PeakRss, rss);
    }

    private static TimeSpan CpuTime()
    {
        using var process = Process.GetCurrentProcess();
        return process.TotalProcessorTime;
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Interlocked.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
            current = Interlocked.Read(ref target);
    }

    private static void InterlockedMax(ref int target, int value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) != current)
            current = Volatile.Read(ref target);
    }

    public void Dispose() => _sampler.Dispose();
}
