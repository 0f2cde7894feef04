using Hangfire;
using Hangfire.PostgreSql;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Worker;

namespace Read.Api.Tests;

/// <summary>What a worker does before it takes jobs.</summary>
[Collection(ServiceCollection.Name)]
public sealed class WorkerStartTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Start_RemovesTemporaryCacheFilesAKilledWorkerLeftBehind()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("read-worker-start-").FullName;
        try
        {
            var cacheDirectory = Path.Combine(dataDirectory, "activation-cache");
            Directory.CreateDirectory(cacheDirectory);
            var stale = Path.Combine(cacheDirectory, "0123.readact.tmp-" + Guid.NewGuid().ToString("N"));
            await File.WriteAllBytesAsync(stale, [1, 2, 3]);
            File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1)); // long past any writer

            // Built, not started: the clean-up is part of start-up, before the Hangfire server takes a job.
            using var worker = await WorkerHost.BuildAsync(
                [$"--ConnectionStrings:Postgres={service.ConnectionString}", $"--Read:DataDirectory={dataDirectory}"]);

            Assert.False(File.Exists(stale));
        }
        finally
        {
            try { Directory.Delete(dataDirectory, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task DeadWorkersJob_WorstCaseBeforeAnotherWorkerFetchesIt_IsUnderAMinute_AsDecision014States()
    {
        var dataDirectory = Directory.CreateTempSubdirectory("read-worker-settings-").FullName;
        try
        {
            // The worker as deployed: no overrides.
            using var worker = await WorkerHost.BuildAsync([$"--ConnectionStrings:Postgres={service.ConnectionString}", $"--Read:DataDirectory={dataDirectory}"]);
            var read = worker.Services.GetRequiredService<IOptions<ReadOptions>>().Value;
            // The storage the worker's Hangfire server fetches with (its options are internal to Hangfire.PostgreSql).
            var storage = (PostgreSqlStorage)worker.Services.GetRequiredService<JobStorage>();
            var options = (PostgreSqlStorageOptions)typeof(PostgreSqlStorage)
                .GetProperty("Options", System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.NonPublic)!
                .GetValue(storage)!;
            var poll = options.QueuePollInterval;

            // A worker dies just after renewing: its lease lapses a full lease later, the next sweep finds it at most one
            // sweep interval after that and enqueues it, and an idle worker fetches it at most one queue poll later.
            var worstCase = read.JobLeaseDuration + read.JobSweepInterval + poll;
            Assert.True(worstCase < TimeSpan.FromSeconds(50), $"worst case {worstCase}");
            var root = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(root, "Read.sln")))
                root = Path.GetDirectoryName(root)!;
            var decision = await File.ReadAllTextAsync(Path.Combine(root, "docs", "decisions", "014-checkpoints-leases.md"));
            var stated = $"{read.JobLeaseDuration.TotalSeconds:0} s lease + {read.JobSweepInterval.TotalSeconds:0} s sweep interval + "
                + $"{poll.TotalSeconds:0} s queue poll = {worstCase.TotalSeconds:0} s";
            Assert.Contains(stated, decision);
        }
        finally
        {
            try { Directory.Delete(dataDirectory, recursive: true); } catch (IOException) { }
        }
    }
}
