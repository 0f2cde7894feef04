using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Read.Api.Sweeps;
using Read.Api.Tests.Batches;
using System.Text.Json.Nodes;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;
using Read.Domain.Sweeps;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class SweepTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Sweep_Cancel_CancelsEveryUnfinishedTrial()
    {
        using var client = await service.Api.CreateTenantClientAsync("sweep-cancel");
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 103)));
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", new
        {
            backbone = "tiny-bert", training_file = train,
            hyperparameters = new { epochs = 1000, early_stopping_patience = 0 }, // runs until cancelled
            grid = new { learning_rate = new[] { 0.001, 0.005, 0.02 } }, max_parallel = 1,
        });
        var created = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, created.ToString());
        var sweepId = created.GetProperty("id").GetString()!;

        var cancel = await client.PostAsync($"/v1/fine-tuning/sweeps/{sweepId}/cancel", null);
        var sweep = await cancel.JsonAsync();
        Assert.True(cancel.StatusCode == HttpStatusCode.OK, sweep.ToString());
        Assert.Equal("cancelled", sweep.GetProperty("status").GetString());
        Assert.False(sweep.TryGetProperty("best_job_id", out _));
        var jobIds = sweep.GetProperty("trials").EnumerateArray().Select(t => t.GetProperty("job_id").GetString()!).ToList();
        Assert.Equal(3, jobIds.Count);
        await Task.Delay(1500); // long enough for a worker to have picked a trial up, had the cancel not held
        foreach (var id in jobIds)
            Assert.Equal("cancelled", (await client.WaitForJobAsync(id)).GetProperty("status").GetString());
        // Cancelling again is harmless; an unknown sweep is 404.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/fine-tuning/sweeps/{sweepId}/cancel", null)).StatusCode);
        await (await client.PostAsync("/v1/fine-tuning/sweeps/sweep-nope/cancel", null)).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Sweep_MoreTrialsThanTheConcurrentJobQuotaLeaves_Returns429AndCreatesNothing()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var tenant = await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name = "sweep-quota" })).JsonAsync();
        using var client = service.Api.CreateClient(tenant.GetProperty("api_key").GetString());
        var tenantId = tenant.GetProperty("tenant_id").GetString();
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/v1/admin/tenants/{tenantId}/quotas", new { max_concurrent_jobs = 2 })).StatusCode);
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 104)));
        object Sweep(int trials) => new
        {
            backbone = "tiny-bert", training_file = train, hyperparameters = new { epochs = 1000, early_stopping_patience = 0 },
            grid = new { learning_rate = new[] { 0.001, 0.005, 0.02 }.Take(trials).ToArray() },
        };

        await (await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", Sweep(3))).AssertProblemAsync(HttpStatusCode.TooManyRequests, "concurrent_job_limit");
        Assert.Empty((await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray());
        var fits = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", Sweep(2));
        Assert.Equal(HttpStatusCode.Created, fits.StatusCode);
        var sweepId = (await fits.JsonAsync()).GetProperty("id").GetString();
        // The quota is now full: a single job is refused too, until the sweep is cancelled.
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = train }))
            .AssertProblemAsync(HttpStatusCode.TooManyRequests, "concurrent_job_limit");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/fine-tuning/sweeps/{sweepId}/cancel", null)).StatusCode);
        await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = train, hyperparameters = new { epochs = 1 } });
    }

    [Fact]
    public async Task Sweep_GridOfThree_OneBackbonePassTrialsAreJobsAndTheBestIsPromoted()
    {
        using var client = await service.Api.CreateTenantClientAsync("sweeper");
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 101)));
        var validation = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 102)));
        // Selected by validation loss, a continuous value: learning rates 20x apart after two epochs cannot tie, so the
        // promoted trial is decided by the metric, not by the tie rule.
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", new
        {
            backbone = "tiny-bert", training_file = train, validation_file = validation,
            hyperparameters = new { epochs = 2, max_length = 32, early_stopping_patience = 0 },
            grid = new { learning_rate = new[] { 0.001, 0.005, 0.02 } },
            metric = "validation_loss", max_parallel = 2,
        });
        var created = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, created.ToString());
        var sweepId = created.GetProperty("id").GetString()!;
        var jobIds = created.GetProperty("trials").EnumerateArray().Select(t => t.GetProperty("job_id").GetString()!).ToList();
        Assert.Equal(3, jobIds.Count);

        // Trials are ordinary jobs: each one is listed and readable through the jobs API, with the grid value applied.
        var listed = (await (await client.GetAsync("/v1/fine-tuning/jobs")).JsonAsync()).GetProperty("data").EnumerateArray()
            .Select(j => j.GetProperty("id").GetString()).ToList();
        Assert.All(jobIds, id => Assert.Contains(id, listed));
        var rates = new List<double>();
        var losses = new List<double>();
        var adapters = new List<string>();
        foreach (var id in jobIds)
        {
            var job = await client.WaitForJobAsync(id);
            Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
            rates.Add(job.GetProperty("hyperparameters").GetProperty("learning_rate").GetDouble());
            losses.Add(job.GetProperty("metrics").GetProperty("validation_loss").GetDouble());
            adapters.Add(job.GetProperty("adapter_id").GetString()!);
        }
        Assert.Equal([0.001, 0.005, 0.02], rates);
        Assert.Equal(3, losses.Distinct().Count());

        var sweep = await WaitForSweepAsync(client, sweepId);
        Assert.Equal("succeeded", sweep.GetProperty("status").GetString());
        var trials = sweep.GetProperty("trials").EnumerateArray().ToList();
        // The first trial built the cache; the other two hit it.
        Assert.Equal([false, true, true], trials.Select(t => t.GetProperty("cache_hit").GetBoolean()).ToArray());
        var cache = sweep.GetProperty("cache");
        Assert.Equal(1, cache.GetProperty("backbone_passes").GetInt32());
        Assert.Equal(2, cache.GetProperty("cache_hits").GetInt32());
        var tokens = cache.GetProperty("backbone_tokens_processed").GetInt64();
        Assert.True(tokens > 0);
        Assert.Equal(2 * tokens, cache.GetProperty("backbone_tokens_saved").GetInt64());

        // Promoted: the trial with the lowest validation loss, computed here from the jobs' own metrics, and its adapter.
        var best = losses.IndexOf(losses.Min());
        Assert.Equal(jobIds[best], sweep.GetProperty("best_job_id").GetString());
        Assert.Equal(losses[best], sweep.GetProperty("best_metric_value").GetDouble(), 12);
        Assert.Equal(adapters[best], sweep.GetProperty("promoted_adapter_id").GetString());
        Assert.True(sweep.TryGetProperty("finished_at", out _));
        // Recorded, not worked out on each read: the sweep's row holds it, and the promoted job's events say so.
        await using (var db = service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext())
        {
            var row = await db.Sweeps.AsNoTracking().SingleAsync(s => s.Id == sweepId);
            Assert.Equal((SweepStatus.Succeeded, jobIds[best], adapters[best]), (row.Status, row.BestJobId, row.PromotedAdapterId));
        }
        var events = (await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobIds[best]}/events")).JsonAsync()).GetProperty("data")
            .EnumerateArray().Select(e => e.GetProperty("message").GetString()!).ToList();
        Assert.Contains(events, m => m.StartsWith($"Promoted as the best trial of {sweepId}", StringComparison.Ordinal));

        using var other = await service.Api.CreateTenantClientAsync("sweep-stranger");
        await (await other.GetAsync($"/v1/fine-tuning/sweeps/{sweepId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task Sweep_EmbeddedMode_RunsItsTrialsInProcessAndPromotes()
    {
        var directory = Directory.CreateTempSubdirectory("read-embedded-sweep-").FullName;
        try
        {
            // SQLite and the in-process Hangfire server: the sweep's steps lock the sweep row there too.
            await using var app = ReadApplication.Start(directory, postgres: null, new Dictionary<string, string?> { ["Read:DevelopmentApiKey"] = "rk_development_sweep" });
            using var client = app.CreateClient("rk_development_sweep");
            var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 106)));
            var response = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", new
            {
                backbone = "tiny-bert", training_file = train, hyperparameters = new { epochs = 2, max_length = 32, validation_split = 0.25 },
                grid = new { learning_rate = new[] { 0.001, 0.02 } }, metric = "validation_loss", max_parallel = 1,
            });
            var created = await response.JsonAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Created, created.ToString());
            var sweep = await WaitForSweepAsync(client, created.GetProperty("id").GetString()!);
            Assert.Equal("succeeded", sweep.GetProperty("status").GetString());
            var trials = sweep.GetProperty("trials").EnumerateArray().ToList();
            var losses = trials.Select(t => t.GetProperty("metric_value").GetDouble()).ToList();
            Assert.Equal(trials[losses.IndexOf(losses.Min())].GetProperty("job_id").GetString(), sweep.GetProperty("best_job_id").GetString());
            Assert.Equal([false, true], trials.Select(t => t.GetProperty("cache_hit").GetBoolean()).ToArray());
        }
        finally
        {
            try { Directory.Delete(directory, recursive: true); } catch (IOException) { }
        }
    }

    [Fact]
    public async Task JobSweep_SweepWhoseLastStepWasMissed_RecordsTheOutcomeAndPromotesTheBest()
    {
        using var client = await service.Api.CreateTenantClientAsync("sweep-missed-step");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(8, seed: 105)));
        var factory = service.Api.Service<IDbContextFactory<ReadDbContext>>();
        var sweepId = "sweep-" + Guid.NewGuid().ToString("N");
        var trials = new List<string>();
        await using (var db = await factory.CreateDbContextAsync())
        {
            var tenant = await db.Files.Where(f => f.Id == fileId).Select(f => f.TenantId).SingleAsync();
            // Every trial finished, but no step of the sweep ran after the last one (say it was re-run by a lease takeover,
            // outside its sweep job): the row still says running. Trials 1 and 2 tie; the earlier one wins.
            foreach (var (accuracy, index) in new[] { 0.5, 0.75, 0.75 }.Select((a, i) => (a, i)))
            {
                var id = "ftjob-" + Guid.NewGuid().ToString("N");
                trials.Add(id);
                db.Jobs.Add(new Read.Domain.Jobs.FineTuneJob
                {
                    Id = id, TenantId = tenant, BackboneId = "tiny-bert", TrainingFileId = fileId, HyperparametersJson = "{}",
                    MetadataJson = JsonSerializer.Serialize(new Dictionary<string, string> { ["sweep_id"] = sweepId, ["sweep_overrides"] = "{}" }),
                    Status = Read.Domain.Jobs.JobStatus.Succeeded, AdapterId = $"adapter-trial-{index}", HangfireJobId = "42",
                    MetricsJson = $"{{\"validation_accuracy\": {accuracy}}}", CreatedAt = DateTime.UtcNow, FinishedAt = DateTime.UtcNow,
                });
            }
            db.Sweeps.Add(new Sweep
            {
                Id = sweepId, TenantId = tenant, BackboneId = "tiny-bert", TrainingFileId = fileId, Metric = "validation_accuracy",
                MaxParallel = 2, TrialJobIds = trials, CreatedAt = DateTime.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        // The worker's periodic pass (every Read:JobSweepInterval) moves every unfinished sweep on.
        var jobSweep = new Read.ServiceDefaults.JobLeaseSweep(factory, service.Api.Service<Hangfire.IBackgroundJobClient>(),
            Microsoft.Extensions.Options.Options.Create(new Read.Domain.Configuration.ReadOptions()),
            Microsoft.Extensions.Logging.Abstractions.NullLogger<Read.ServiceDefaults.JobLeaseSweep>.Instance);
        await jobSweep.SweepAsync(CancellationToken.None);

        var sweep = await (await client.GetAsync($"/v1/fine-tuning/sweeps/{sweepId}")).JsonAsync();
        Assert.Equal("succeeded", sweep.GetProperty("status").GetString());
        Assert.Equal(trials[1], sweep.GetProperty("best_job_id").GetString());
        Assert.Equal("adapter-trial-1", sweep.GetProperty("promoted_adapter_id").GetString());
        Assert.Equal(0.75, sweep.GetProperty("best_metric_value").GetDouble());
    }

    [Fact]
    public async Task Sweep_TrialsThatNeedDifferentCachesOrBadInput_400WithCode()
    {
        using var client = await service.Api.CreateTenantClientAsync("sweep-bad");
        var train = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(8, seed: 103)));
        async Task Expect(object body, string code) =>
            await (await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", body)).AssertProblemAsync(HttpStatusCode.BadRequest, code);

        await Expect(new { backbone = "tiny-bert", training_file = train, grid = new { max_length = new[] { 32, 64 } } }, "sweep_needs_one_cache");
        await Expect(new { backbone = "tiny-bert", training_file = train, trials = new object[] { new { lr = 0.1 } } }, "invalid_hyperparameters");
        await Expect(new { backbone = "tiny-bert", training_file = train, trials = new object[] { new { epochs = 0 } } }, "invalid_hyperparameters");
        await Expect(new { backbone = "tiny-bert", training_file = train }, "invalid_sweep");
        await Expect(new { backbone = "tiny-bert", training_file = train, grid = new { seed = Enumerable.Range(0, 17).ToArray() } }, "invalid_sweep");
        await Expect(new { backbone = "tiny-bert", training_file = train, grid = new { seed = new[] { 1 } }, metric = "accuracy" }, "invalid_sweep_metric");
        await Expect(new { backbone = "tiny-bert", training_file = "file-missing", grid = new { seed = new[] { 1 } } }, "file_not_found");
        // Null where a list or an object of overrides belongs: a 400 that names it, not a 500.
        await Expect(new { backbone = "tiny-bert", training_file = train, grid = new Dictionary<string, object?> { ["r"] = null } }, "invalid_sweep");
        await Expect(new { backbone = "tiny-bert", training_file = train, trials = new object?[] { new { seed = 1 }, null } }, "invalid_sweep");
        await Expect(new { training_file = train, grid = new { seed = new[] { 1 } } }, "missing_backbone");
        // What a job refuses, a sweep refuses up front: a batch file is no training set, and regression needs numeric labels.
        var batchFile = await client.UploadBatchFileOkAsync(
            [BatchCalls.Line("a", "/v1/predict", new { inputs = new[] { new { adapter = "x", text = "y" } } })]);
        await Expect(new { backbone = "tiny-bert", training_file = batchFile, grid = new { seed = new[] { 1 } } }, "invalid_file_purpose");
        await Expect(new { backbone = "tiny-bert", training_file = train, task = "regression", grid = new { seed = new[] { 1 } } }, "invalid_regression_label");
    }

    /// <summary>Polls the sweep until its outcome is recorded (the last trial's job records it just after the trial ends).</summary>
    internal static async Task<JsonElement> WaitForSweepAsync(HttpClient client, string sweepId, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (true)
        {
            var sweep = await (await client.GetAsync($"/v1/fine-tuning/sweeps/{sweepId}")).JsonAsync();
            if (sweep.GetProperty("status").GetString() is "succeeded" or "failed" or "cancelled")
                return sweep;
            if (DateTime.UtcNow > deadline)
                Assert.Fail($"Sweep {sweepId} unfinished after the timeout: {sweep}");
            await Task.Delay(200);
        }
    }

    [Fact]
    public void Combinations_TwoByTwoGrid_EveryPairOnceInNameThenValueOrder()
    {
        var grid = new Dictionary<string, JsonArray> { ["r"] = [8, 16], ["learning_rate"] = [0.1, 0.2] };
        var combos = SweepsApi.Combinations(grid).Select(c => c.ToJsonString()).ToList();
        Assert.Equal(
            ["{\"learning_rate\":0.1,\"r\":8}", "{\"learning_rate\":0.1,\"r\":16}", "{\"learning_rate\":0.2,\"r\":8}", "{\"learning_rate\":0.2,\"r\":16}"],
            combos);
    }
}
