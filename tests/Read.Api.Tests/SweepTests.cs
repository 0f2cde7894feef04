using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Read.Api.Sweeps;
using Read.Api.Tests.Batches;
using System.Text.Json.Nodes;

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
        var response = await client.PostAsJsonAsync("/v1/fine-tuning/sweeps", new
        {
            backbone = "tiny-bert", training_file = train, validation_file = validation,
            hyperparameters = new { epochs = 2, max_length = 32 },
            grid = new { learning_rate = new[] { 0.001, 0.005, 0.02 } },
            metric = "validation_accuracy", max_parallel = 2,
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
        foreach (var id in jobIds)
        {
            var job = await client.WaitForJobAsync(id);
            Assert.Equal("succeeded", job.GetProperty("status").GetString());
            rates.Add(job.GetProperty("hyperparameters").GetProperty("learning_rate").GetDouble());
        }
        Assert.Equal([0.001, 0.005, 0.02], rates);

        var sweep = await (await client.GetAsync($"/v1/fine-tuning/sweeps/{sweepId}")).JsonAsync();
        Assert.Equal("completed", sweep.GetProperty("status").GetString());
        var trials = sweep.GetProperty("trials").EnumerateArray().ToList();
        // The first trial built the cache; the other two hit it.
        Assert.Equal([false, true, true], trials.Select(t => t.GetProperty("cache_hit").GetBoolean()).ToArray());
        var cache = sweep.GetProperty("cache");
        Assert.Equal(1, cache.GetProperty("backbone_passes").GetInt32());
        Assert.Equal(2, cache.GetProperty("cache_hits").GetInt32());
        var tokens = cache.GetProperty("backbone_tokens_processed").GetInt64();
        Assert.True(tokens > 0);
        Assert.Equal(2 * tokens, cache.GetProperty("backbone_tokens_saved").GetInt64());

        // The best trial is the one with the highest validation accuracy, ties to the earlier trial.
        var accuracies = new List<double>();
        foreach (var id in jobIds)
            accuracies.Add((await (await client.GetAsync($"/v1/fine-tuning/jobs/{id}")).JsonAsync()).GetProperty("metrics").GetProperty("validation_accuracy").GetDouble());
        var expectedBest = accuracies.IndexOf(accuracies.Max());
        var best = sweep.GetProperty("best");
        Assert.Equal(jobIds[expectedBest], best.GetProperty("job_id").GetString());
        Assert.Equal(accuracies.Max(), best.GetProperty("metric_value").GetDouble(), 12);
        Assert.True(best.TryGetProperty("adapter_id", out _));

        using var other = await service.Api.CreateTenantClientAsync("sweep-stranger");
        await (await other.GetAsync($"/v1/fine-tuning/sweeps/{sweepId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
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
