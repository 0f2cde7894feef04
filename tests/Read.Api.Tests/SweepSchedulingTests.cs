using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.Worker;

namespace Read.Api.Tests;

/// <summary>
/// How a sweep hands its trials to workers, on a deployment of its own whose worker runs three jobs at once (the shared
/// fixture's runs one, so it could never show parallel trials): at most max_parallel trials at a time, more than one
/// when allowed, and the activation cache built by one trial only, even when the first trial dies before building it.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class SweepSchedulingTests
{
    [Fact]
    public async Task Sweep_MaxParallelTwoOnThreeWorkerSlots_RunsTwoTrialsAtOnceAndNeverThree()
    {
        await using var deployment = await Deployment.StartAsync(workerCount: 3);
        using var client = await deployment.Api.CreateTenantClientAsync("sweep-parallel");
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(48, seed: 111)));
        var sweepId = await CreateSweepAsync(client, new
        {
            backbone = "tiny-bert", training_file = train,
            hyperparameters = new { epochs = 4, max_length = 32, early_stopping_patience = 0 },
            grid = new { seed = new[] { 1, 2, 3, 4, 5 } }, max_parallel = 2,
        });
        var sweep = await SweepTests.WaitForSweepAsync(client, sweepId);
        Assert.Equal("succeeded", sweep.GetProperty("status").GetString());

        // When each trial ran, as its worker recorded it (claimed → published): the most that overlapped at any instant.
        var runs = await deployment.TrialRunsAsync(sweep);
        Assert.All(runs, r => Assert.Equal(JobStatus.Succeeded, r.Status));
        Assert.Equal(2, MostAtOnce(runs));
        // Trial 0 ran alone: it built the cache the others read.
        Assert.True(runs.Skip(1).All(r => r.StartedAt >= runs[0].FinishedAt), "a trial started before the cache builder finished");
        Assert.Equal([false, true, true, true, true], CacheHits(sweep));
    }

    [Fact]
    public async Task Sweep_CacheBuilderFailsBeforeTheCacheExists_NextTrialBuildsItAloneStillOneBackbonePass()
    {
        await using var deployment = await Deployment.StartAsync(workerCount: 3);
        using var client = await deployment.Api.CreateTenantClientAsync("sweep-takeover");
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(48, seed: 112)));
        var sweepId = await CreateSweepAsync(client, new
        {
            backbone = "tiny-bert", training_file = train,
            hyperparameters = new { epochs = 2, max_length = 32, early_stopping_patience = 0 },
            // Trial 0 fails as its precompute starts (StageProbe): no cache exists when it ends.
            trials = new object[] { new { seed = StageProbe.FailAtPrecomputeSeed }, new { seed = 1 }, new { seed = 2 }, new { seed = 3 } },
            max_parallel = 3,
        });
        var sweep = await SweepTests.WaitForSweepAsync(client, sweepId);

        var runs = await deployment.TrialRunsAsync(sweep);
        Assert.Equal([JobStatus.Failed, JobStatus.Succeeded, JobStatus.Succeeded, JobStatus.Succeeded], runs.Select(r => r.Status).ToArray());
        // Trial 1 took the building over and ran alone; the rest waited for it and hit its cache.
        Assert.Equal([null, false, true, true], CacheHits(sweep));
        Assert.True(runs.Skip(2).All(r => r.StartedAt >= runs[1].FinishedAt), "a trial started before the new cache builder finished");
        Assert.Equal(1, sweep.GetProperty("cache").GetProperty("backbone_passes").GetInt32());
        Assert.Equal("succeeded", sweep.GetProperty("status").GetString());
        Assert.Contains(sweep.GetProperty("best_job_id").GetString(), runs.Skip(1).Select(r => r.JobId));
    }

    private static async Task<string> CreateSweepAsync(HttpClient client, object body)
    {
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", body);
        var created = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, created.ToString());
        return created.GetProperty("id").GetString()!;
    }

    /// <summary>Each trial's cache_hit; null for a trial that never finished training (it reports none).</summary>
    private static bool?[] CacheHits(System.Text.Json.JsonElement sweep) =>
        sweep.GetProperty("trials").EnumerateArray().Select(t => t.TryGetProperty("cache_hit", out var hit) ? hit.GetBoolean() : (bool?)null).ToArray();

    internal sealed record TrialRun(string JobId, string Status, DateTime StartedAt, DateTime FinishedAt);

    /// <summary>The largest number of runs whose [started, finished) intervals overlap at one instant.</summary>
    private static int MostAtOnce(IReadOnlyList<TrialRun> runs)
    {
        var edges = runs.SelectMany(r => new[] { (At: r.StartedAt, Delta: 1), (At: r.FinishedAt, Delta: -1) })
            .OrderBy(e => e.At).ThenBy(e => e.Delta); // an end and a start at the same tick do not overlap
        int running = 0, most = 0;
        foreach (var edge in edges)
            most = Math.Max(most, running += edge.Delta);
        return most;
    }

    /// <summary>Postgres, the API and one worker with <c>Read:WorkerCount</c> slots (and the failure-injecting StageProbe).</summary>
    private sealed class Deployment : IAsyncDisposable
    {
        private PostgresDatabase _database = null!;
        private IHost _worker = null!;
        private string _root = "";
        public ReadApplication Api { get; private set; } = null!;

        public static async Task<Deployment> StartAsync(int workerCount)
        {
            var deployment = new Deployment { _database = await PostgresDatabase.CreateAsync(), _root = Directory.CreateTempSubdirectory("read-sweeps-").FullName };
            deployment.Api = ReadApplication.Start(Path.Combine(deployment._root, "api"), deployment._database.ConnectionString);
            deployment._worker = await WorkerHost.BuildAsync(
                [$"--ConnectionStrings:Postgres={deployment._database.ConnectionString}", $"--Read:DataDirectory={Path.Combine(deployment._root, "worker")}",
                 $"--Read:WorkerCount={workerCount}"],
                builder => builder.Services.AddSingleton<IJobStageListener, StageProbe>());
            await deployment._worker.StartAsync();
            return deployment;
        }

        /// <summary>Each trial's status and the interval its (last) run held a worker, in trial order.</summary>
        public async Task<List<TrialRun>> TrialRunsAsync(System.Text.Json.JsonElement sweep)
        {
            var ids = sweep.GetProperty("trials").EnumerateArray().Select(t => t.GetProperty("job_id").GetString()!).ToList();
            await using var db = await Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
            var jobs = await db.Jobs.AsNoTracking().Where(j => ids.Contains(j.Id)).ToDictionaryAsync(j => j.Id);
            return ids.Select(id => new TrialRun(id, jobs[id].Status, jobs[id].StartedAt!.Value, jobs[id].FinishedAt!.Value)).ToList();
        }

        public async ValueTask DisposeAsync()
        {
            await _worker.StopAsync();
            _worker.Dispose();
            await Api.DisposeAsync();
            await _database.DisposeAsync();
            try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
        }
    }
}
