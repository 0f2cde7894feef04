using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Read.Domain.Backbones;
using Read.Domain.Configuration;
using Read.Domain.FineTuning;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>
/// The lease protocol when a worker loses its database for real (its Postgres role is barred and its connections are
/// terminated, <see cref="DatabaseRole"/>): an outage shorter than the lease is ridden out, one longer makes the run stop
/// before its lease expires, so two workers never train one job.
/// </summary>
public sealed class LeaseOutageTests : IAsyncLifetime
{
    // Short, so the tests take seconds: renewed when 4 s are left, given up 1 s before the expiry.
    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(6);
    private readonly string _directory = Directory.CreateTempSubdirectory("read-lease-").FullName;
    private JobsDatabase _db = null!;
    private DatabaseRole _worker = null!;
    private BackboneRegistry _backbones = null!;

    public async Task InitializeAsync()
    {
        _db = await JobsDatabase.CreateAsync();
        _worker = await DatabaseRole.CreateAsync(_db.ConnectionString);
        _backbones = new BackboneRegistry(new BackboneOptions { DataDirectory = _directory, ImportBundledBackbones = false });
    }

    public async Task DisposeAsync()
    {
        _backbones.Dispose();
        await _db.DisposeAsync();
        await _worker.DisposeAsync();
        try { Directory.Delete(_directory, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task OutageShorterThanTheLease_DuringALongStage_TheWatcherRenewsAfterwards_AndNoSecondRunStarts()
    {
        var jobId = await InsertJobAsync(epochs: 2);
        using var held = new BlockingStageListener(FineTuneStage.Train);
        var log = new ListLogger<FineTuneJobRunner>();
        var run = Task.Run(() => Runner(_worker.Factory, log, held).RunAsync(jobId, CancellationToken.None));
        await held.Entered.WaitAsync(TimeSpan.FromMinutes(2));
        var owner = (await _db.JobAsync(jobId)).LeaseOwner;

        // 2.5 s without the database: longer than the renewal interval, shorter than what is left of the lease.
        var outage = DateTime.UtcNow;
        await _worker.CutOffAsync();
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await _worker.RestoreAsync();

        // Past the point where a lease not renewed since the outage began would have lapsed.
        await Task.Delay(outage + Lease + TimeSpan.FromSeconds(1) - DateTime.UtcNow);
        var job = await _db.JobAsync(jobId);
        Assert.Equal(owner, job.LeaseOwner);
        Assert.True(job.LeaseExpiresAt > DateTime.UtcNow, $"lease expired at {job.LeaseExpiresAt:O}, now {DateTime.UtcNow:O}");
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("lease watcher could not reach the database"));
        // A second delivery meets a live lease and leaves the job alone.
        await Runner(_db.Factory, new ListLogger<FineTuneJobRunner>()).RunAsync(jobId, CancellationToken.None);
        Assert.Equal(1, (await _db.JobAsync(jobId)).Attempts);

        held.Release();
        await run.WaitAsync(TimeSpan.FromMinutes(2));
        job = await _db.JobAsync(jobId);
        Assert.True(job.Status == JobStatus.Succeeded, job.ErrorMessage);
        Assert.Equal(1, job.Attempts);
    }

    [Fact]
    public async Task OutageShorterThanTheLease_DuringEpochs_CheckpointWritesWait_AndTheJobSucceedsInOneAttempt()
    {
        const int epochs = 300;
        var jobId = await InsertJobAsync(epochs);
        var log = new ListLogger<FineTuneJobRunner>();
        var run = Task.Run(() => Runner(_worker.Factory, log).RunAsync(jobId, CancellationToken.None));
        await WaitForCheckpointAsync(jobId, minEpoch: 2, run);

        await _worker.CutOffAsync();
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await _worker.RestoreAsync();

        await run.WaitAsync(TimeSpan.FromMinutes(3)); // no exception: the outage neither failed the job nor ended the run
        var job = await _db.JobAsync(jobId);
        Assert.True(job.Status == JobStatus.Succeeded, $"{job.Status}: {job.ErrorCode} {job.ErrorMessage}");
        Assert.Equal(1, job.Attempts);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("writing the checkpoint of epoch"));
        await using var db = await _db.Factory.CreateDbContextAsync();
        Assert.Equal(1, await db.Adapters.CountAsync(a => a.JobId == jobId));
        // Every epoch trained once, in order.
        var epochEvents = (await db.JobEvents.Where(e => e.JobId == jobId).OrderBy(e => e.Id).Select(e => e.Message).ToListAsync())
            .Where(m => m.StartsWith("Epoch ", StringComparison.Ordinal)).Select(m => int.Parse(m[6..m.IndexOf(':')])).ToList();
        Assert.Equal(Enumerable.Range(1, epochs), epochEvents);
    }

    [Fact]
    public async Task OutageLongerThanTheLease_TheRunStopsBeforeItsLeaseExpires_AndAnotherWorkerResumesTheJob()
    {
        const int epochs = 300;
        var jobId = await InsertJobAsync(epochs);
        var log = new ListLogger<FineTuneJobRunner>();
        var run = Task.Run(() => Runner(_worker.Factory, log).RunAsync(jobId, CancellationToken.None));
        await WaitForCheckpointAsync(jobId, minEpoch: 2, run);

        await _worker.CutOffAsync(); // for good: this worker never reaches the database again
        var cutOff = await _db.JobAsync(jobId); // the last lease it wrote
        var ended = await run.ContinueWith(t => (Faulted: t.Exception, At: DateTime.UtcNow)).WaitAsync(Lease * 2);
        Assert.Null(ended.Faulted);
        Assert.True(ended.At < cutOff.LeaseExpiresAt, $"the run ended at {ended.At:O}, after its lease expired at {cutOff.LeaseExpiresAt:O}");
        Assert.Contains(log.Entries, e => e.Message.Contains("lease could not be renewed before") || e.Message.Contains("writing the checkpoint of epoch"));

        // Another worker, once the lease has lapsed, takes the job over and resumes it from the last checkpoint.
        await Task.Delay(cutOff.LeaseExpiresAt!.Value - DateTime.UtcNow + TimeSpan.FromMilliseconds(100));
        await using var db = await _db.Factory.CreateDbContextAsync();
        var lastEpoch = await db.JobCheckpoints.Where(c => c.JobId == jobId).MaxAsync(c => c.Epoch);
        await Runner(_db.Factory, new ListLogger<FineTuneJobRunner>()).RunAsync(jobId, CancellationToken.None);
        var job = await _db.JobAsync(jobId);
        Assert.True(job.Status == JobStatus.Succeeded, $"{job.Status}: {job.ErrorCode} {job.ErrorMessage}");
        Assert.Equal(2, job.Attempts);
        Assert.Equal(1, await db.Adapters.CountAsync(a => a.JobId == jobId));
        var messages = await db.JobEvents.Where(e => e.JobId == jobId).OrderBy(e => e.Id).Select(e => e.Message).ToListAsync();
        Assert.Contains(messages, m => m.StartsWith($"Job taken over from worker {cutOff.LeaseOwner}", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("Resumed by ", StringComparison.Ordinal) && m.Contains($"from epoch {lastEpoch} "));
        await _worker.RestoreAsync();
    }

    private async Task<string> InsertJobAsync(int epochs)
    {
        var train = TestData.Sentiment(16, seed: 51);
        var fileId = await _db.InsertFileAsync(TestData.Jsonl(train), ["negative", "positive"], train.Count);
        return await _db.InsertJobAsync(JobStatus.Queued, backboneId: BackboneRegistry.TinyBackboneId, trainingFileId: fileId,
            hyperparametersJson: $"{{\"epochs\":{epochs},\"max_length\":32,\"batch_size\":8,\"early_stopping_patience\":0}}");
    }

    private async Task WaitForCheckpointAsync(string jobId, int minEpoch, Task run)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(2);
        while (true)
        {
            await using (var db = await _db.Factory.CreateDbContextAsync())
            {
                if (await db.JobCheckpoints.AnyAsync(c => c.JobId == jobId && c.Epoch >= minEpoch))
                    return;
            }

            if (run.IsCompleted)
                await run; // surfaces its exception
            Assert.True(!run.IsCompleted && DateTime.UtcNow < deadline, $"no checkpoint {minEpoch}; run completed: {run.IsCompleted}");
            await Task.Delay(10);
        }
    }

    private FineTuneJobRunner Runner(IDbContextFactory<ReadDbContext> factory, ILogger<FineTuneJobRunner> logger, params IJobStageListener[] listeners) =>
        new(factory, _backbones,
            Options.Create(new ReadOptions { DataDirectory = _directory, JobLeaseDuration = Lease, CancellationPollInterval = TimeSpan.FromMilliseconds(100) }),
            listeners, logger);
}
