using Read.ServiceDefaults;
using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Read.Api.Hosting;
using Read.Domain.Jobs;

namespace Read.Api.Tests;

/// <summary>
/// Several API instances start at once over one Postgres: their recoveries race, and each orphaned job must still reach
/// Hangfire exactly once, while a job younger than the grace age is left to the instance that is enqueueing it.
/// </summary>
public sealed class ParallelJobRecoveryTests : IAsyncLifetime
{
    private JobsDatabase _db = null!;

    public async Task InitializeAsync() => _db = await JobsDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task TwoRecoveriesInParallel_EnqueueEachOrphanedJobOnce()
    {
        var old = DateTime.UtcNow - JobRecovery.GraceAge * 2;
        var orphans = new List<string>();
        for (var i = 0; i < 20; i++)
            orphans.Add(await _db.InsertJobAsync(JobStatus.Queued, createdAt: old));
        var fresh = await _db.InsertJobAsync(JobStatus.Queued); // its API is between commit and enqueue right now
        // Real Hangfire storage on the same database (no server: nothing dequeues), as the API instances use it.
        var storage = NewStorage();
        var client = new BackgroundJobClient(storage);

        using var start = new Barrier(2);
        var recoveries = Enumerable.Range(0, 2).Select(_ => Task.Factory.StartNew(() =>
        {
            start.SignalAndWait();
            return JobRecovery.RequeueAsync(_db.Factory, client, NullLogger.Instance, includeEnqueued: false, JobRecovery.GraceAge)
                .GetAwaiter().GetResult();
        }, TaskCreationOptions.LongRunning)).ToList();
        var counts = await Task.WhenAll(recoveries);

        Assert.Equal(orphans.Count, counts.Sum());
        var enqueued = storage.GetMonitoringApi().EnqueuedJobs(FineTuneJobRunner.Queue, 0, 1000)
            .Select(j => (string)j.Value.Job.Args[0]).ToList();
        Assert.Equal(orphans.Order(), enqueued.Order());
        foreach (var jobId in orphans)
        {
            var row = await _db.JobAsync(jobId);
            Assert.NotNull(storage.GetConnection().GetJobData(row.HangfireJobId!)); // the row names the one Hangfire job
        }
        Assert.Null((await _db.JobAsync(fresh)).HangfireJobId);
    }

    [Fact]
    public async Task Recovery_TakesOverAClaimAbandonedLongerThanTheGraceAge()
    {
        var old = DateTime.UtcNow - JobRecovery.GraceAge * 3;
        var jobId = await _db.InsertJobAsync(JobStatus.Queued, createdAt: old);
        // An instance claimed it and died before enqueueing.
        await using (var db = await _db.Factory.CreateDbContextAsync())
        {
            var row = db.Jobs.Single(j => j.Id == jobId);
            row.HangfireJobId = $"recovering:{(DateTime.UtcNow - JobRecovery.GraceAge * 2).Ticks}:dead";
            await db.SaveChangesAsync();
        }
        var storage = NewStorage();

        var count = await JobRecovery.RequeueAsync(_db.Factory, new BackgroundJobClient(storage), NullLogger.Instance, includeEnqueued: false, JobRecovery.GraceAge);

        Assert.Equal(1, count);
        Assert.NotNull(storage.GetConnection().GetJobData((await _db.JobAsync(jobId)).HangfireJobId!));
    }

    private PostgreSqlStorage NewStorage() => new(new Connections(_db.ConnectionString), new PostgreSqlStorageOptions());

    private sealed class Connections(string connectionString) : IConnectionFactory
    {
        public NpgsqlConnection GetOrCreateConnection() => new(connectionString);
    }
}
