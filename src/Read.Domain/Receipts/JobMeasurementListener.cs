using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.Files;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Domain.Receipts;

/// <summary>
/// Measures what a job cost the worker for its receipt: process CPU time and peak RSS from its first stage to publish,
/// and the tokens its activation cache holds; for a failed or cancelled run, up to its end. Never fails a job: a measurement that goes wrong is logged and skipped.
/// </summary>
public sealed class JobMeasurementListener : IJobStageListener, IDisposable
{
    private static readonly TimeSpan SampleInterval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan TokenCountTimeout = TimeSpan.FromMinutes(2);

    private readonly IDbContextFactory<ReadDbContext> dbFactory;
    private readonly BackboneRegistry backbones;
    private readonly ILogger<JobMeasurementListener> logger;
    private readonly ConcurrentDictionary<string, Run> _runs = new();
    private readonly Timer _sampler;

    public JobMeasurementListener(IDbContextFactory<ReadDbContext> dbFactory, BackboneRegistry backbones, ILogger<JobMeasurementListener> logger)
    {
        this.dbFactory = dbFactory;
        this.backbones = backbones;
        this.logger = logger;
        _sampler = new Timer(_ => Sample(), null, SampleInterval, SampleInterval);
    }

    private sealed class Run(TimeSpan cpuAtStart, long rss, int concurrent)
    {
        public DateTime StartedAt { get; } = DateTime.UtcNow;
        public TimeSpan CpuAtStart { get; } = cpuAtStart;
        public long PeakRss = rss;
        public int MaxConcurrent = concurrent;
        public volatile Task<long>? Tokens;
    }

    public void OnStageStarted(string jobId, FineTuneStage stage)
    {
        try
        {
            if (stage == FineTuneStage.Precompute)
                Begin(jobId);
            else if (stage == FineTuneStage.Train && _runs.TryGetValue(jobId, out var training))
                // Counted beside training, which reads only the cache: the backbone's tokenizer is no longer in use by the
                // precompute, and publish need not wait for the count.
                training.Tokens = Task.Run(() => CountTokensAsync(jobId));
            else if (stage == FineTuneStage.Publish && _runs.TryRemove(jobId, out var run))
                Finish(jobId, run);
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Job {JobId}: measurement for the receipt failed at {Stage}; the receipt will lack it", jobId, stage);
        }
    }

    /// <summary>A failed or cancelled run: its receipt shows the CPU, memory and tokens it used up to then.</summary>
    public void OnRunEnded(string jobId, string status)
    {
        if (_runs.TryRemove(jobId, out var run))
            Finish(jobId, run);
    }

    private void Begin(string jobId)
    {
        var run = new Run(CpuTime(), Environment.WorkingSet, 1);
        _runs[jobId] = run; // a retried run starts over
        // Runs interrupted by a shutdown or a lost lease never end here; forget them eventually.
        foreach (var (id, old) in _runs)
            if (DateTime.UtcNow - old.StartedAt > TimeSpan.FromDays(2))
                _runs.TryRemove(id, out _);
        var concurrent = _runs.Count;
        foreach (var other in _runs.Values)
            InterlockedMax(ref other.MaxConcurrent, concurrent);
    }

    private void Finish(string jobId, Run run)
    {
        Sample();
        var cpu = (CpuTime() - run.CpuAtStart).TotalSeconds;
        long tokens;
        try
        {
            tokens = run.Tokens is { } t ? (t.Wait(TokenCountTimeout) ? t.Result : 0) : CountTokensAsync(jobId).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            logger.LogWarning(e, "Job {JobId}: counting its tokens for the receipt failed; the receipt shows 0", jobId);
            tokens = 0;
        }
        using var db = dbFactory.CreateDbContext();
        var job = db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.TenantId }).Single();
        // A retried job replaces its receipt: the delete and the insert commit together, so it never has none.
        using var tx = db.Database.BeginTransaction();
        db.JobMeasurements.Where(m => m.JobId == jobId).ExecuteDelete();
        db.JobMeasurements.Add(new JobMeasurement
        {
            JobId = jobId,
            TenantId = job.TenantId,
            CpuSeconds = cpu,
            PeakRssBytes = Interlocked.Read(ref run.PeakRss),
            DatasetTokens = tokens,
            ConcurrentJobs = run.MaxConcurrent,
            Worker = $"{Environment.MachineName}:{Environment.ProcessId}",
            MeasuredAt = DateTime.UtcNow,
        });
        db.SaveChanges();
        tx.Commit();
    }

    /// <summary>Tokens after truncation of train followed by validation: what the cache holds and a miss runs through the backbone.</summary>
    private async Task<long> CountTokensAsync(string jobId)
    {
        await using var db = await dbFactory.CreateDbContextAsync();
        var job = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
        var hp = JsonSerializer.Deserialize<ReadHyperparameters>(job.HyperparametersJson, JsonDefaults.SnakeCase)!;
        var fileIds = job.ValidationFileId is null ? [job.TrainingFileId] : new[] { job.TrainingFileId, job.ValidationFileId };
        var examples = new List<Datasets.LabeledExample>();
        foreach (var fileId in fileIds)
        {
            await using var content = await FileContentStore.OpenReadAsync(db, fileId, CancellationToken.None);
            examples.AddRange((await JsonlDatasetParser.ParseAsync(content, CancellationToken.None)).Examples);
        }
        var backbone = backbones.Get(job.BackboneId);
        var lengths = TokenLengths.Of(backbone, examples.Select(e => e.Text).ToList(), examples.Select(e => e.TextPair).ToList(), hp.MaxLength, backbone.TokenizerSettings);
        return lengths.Sum(l => (long)l);
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
