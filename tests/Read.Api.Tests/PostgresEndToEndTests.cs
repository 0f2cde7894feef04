using Read.Domain.SideNetwork;
using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class PostgresEndToEndTests(PostgresServiceFixture service)
{
    private const int Epochs = 60;
    private static readonly object Hyperparameters = new { epochs = Epochs, batch_size = 16, learning_rate = 0.03, r = 32, seed = 0 };

    [Fact]
    public async Task FineTune_OverHttpWithPostgresWorker_PublishesAdapterWhosePredictionsMatchEvaluation()
    {
        using var client = await service.Api.CreateTenantClientAsync("acme");
        var train = TestData.Sentiment(64, seed: 1);
        var validation = TestData.Sentiment(24, seed: 2);
        var trainId = await client.UploadOkAsync(TestData.Jsonl(train));
        var validationId = await client.UploadOkAsync(TestData.Jsonl(validation));

        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, validation_file = validationId, hyperparameters = Hyperparameters,
        });
        var jobId = created.GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);

        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal("publish", job.GetProperty("stage").GetString());
        Assert.False(job.GetProperty("cache_hit").GetBoolean());
        Assert.True(job.GetProperty("metrics").GetProperty("validation_accuracy").GetDouble() >= 0.75, job.ToString());

        // Training and evaluation ran on the activation cache alone: the worker's backbone was not called after precompute.
        var atTrain = StageProbe.ForwardCallsAtStart[(jobId, FineTuneStage.Train)];
        Assert.True(atTrain > 0);
        Assert.Equal(atTrain, StageProbe.ForwardCallsAtStart[(jobId, FineTuneStage.Evaluate)]);
        Assert.Equal(atTrain, StageProbe.ForwardCallsAtStart[(jobId, FineTuneStage.Publish)]);

        var events = await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}/events")).JsonAsync();
        var messages = events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!).ToList();
        // Early stopping is on by default (patience 3): an event per epoch actually run, all of them or up to the stop.
        var epochsRun = job.GetProperty("metrics").GetProperty("epochs_run").GetInt32();
        Assert.True(epochsRun == Epochs || job.GetProperty("metrics").GetProperty("best_epoch").GetInt32() == epochsRun - 3, job.ToString());
        Assert.Equal(epochsRun, messages.Count(m => m.StartsWith("Epoch ", StringComparison.Ordinal)));
        Assert.Contains(messages, m => m.StartsWith("Published adapter", StringComparison.Ordinal));

        var adapterId = job.GetProperty("adapter_id").GetString()!;
        var adapter = await (await client.GetAsync($"/v1/adapters/{adapterId}")).JsonAsync();
        var download = await client.GetAsync($"/v1/adapters/{adapterId}/download");
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("application/zip", download.Content.Headers.ContentType?.MediaType);
        var artifact = await download.Content.ReadAsByteArrayAsync();
        Assert.Equal(adapter.GetProperty("sha256").GetString(), Convert.ToHexStringLower(SHA256.HashData(artifact)));
        Assert.Equal(artifact.LongLength, adapter.GetProperty("size_bytes").GetInt64());

        // The downloaded artifact loads onto the backbone, and the evaluation path (cached activations) agrees with /predict.
        await AssertPredictAgreesWithCachedEvaluationAsync(client, service.Api.Service<BackboneRegistry>().Get("tiny-bert"), adapterId, artifact,
            validation, job, tolerance: 1e-3, "eval-cache");
    }

    /// <summary>
    /// /predict on the validation texts gives the labels and probabilities that evaluation over the activation cache gives
    /// for the downloaded artifact (within <paramref name="tolerance"/>: fp16 cache vs fp32 forward), and the job's
    /// published validation accuracy is what those predictions score.
    /// </summary>
    private async Task AssertPredictAgreesWithCachedEvaluationAsync(HttpClient client, Backbone backbone, string adapterId, byte[] artifact,
        IReadOnlyList<LabeledExample> validation, JsonElement job, double tolerance, string cacheName)
    {
        using var loaded = AdapterArtifact.Load(artifact, backbone);
        var viaCache = ReadFineTuner.PredictViaCache(backbone, loaded, validation, Path.Combine(service.ApiDataDirectory, cacheName));
        var predict = await client.PostAsJsonAsync($"/v1/adapters/{adapterId}/predict",
            new { inputs = validation.Select(e => new { text = e.Text }).ToArray() });
        var predictions = (await predict.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
        Assert.Equal(validation.Count, predictions.Count);
        for (var i = 0; i < validation.Count; i++)
        {
            Assert.Equal(viaCache[i].Label, predictions[i].GetProperty("label").GetString());
            foreach (var (label, p) in viaCache[i].Probabilities)
                Assert.InRange(predictions[i].GetProperty("probabilities").GetProperty(label).GetDouble(), p - tolerance, p + tolerance);
        }

        var accuracy = viaCache.Zip(validation).Count(p => p.First.Label == p.Second.Label) / (double)validation.Count;
        Assert.Equal(accuracy, job.GetProperty("metrics").GetProperty("validation_accuracy").GetDouble(), 6);
    }

    [Fact]
    public async Task FineTune_LlamaCheckpointFromDisk_OverHttpWithPostgresWorker_PredictsWhatEvaluationScored()
    {
        using var client = await service.Api.CreateTenantClientAsync("llama-user");
        var listed = (await (await client.GetAsync("/v1/backbones")).JsonAsync()).GetProperty("data").EnumerateArray()
            .Single(b => b.GetProperty("id").GetString() == PostgresServiceFixture.LlamaBackboneId);
        Assert.Equal("llama", listed.GetProperty("architecture").GetString());
        Assert.Equal("float32", listed.GetProperty("dtype").GetString());
        Assert.Equal(2, listed.GetProperty("layers").GetInt32());

        var train = TestData.Sentiment(64, seed: 1);
        var validation = TestData.Sentiment(24, seed: 2);
        var trainId = await client.UploadOkAsync(TestData.Jsonl(train));
        var validationId = await client.UploadOkAsync(TestData.Jsonl(validation));
        // cls is an encoder's pooling: refused with the choices this backbone has.
        var refused = await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new
        {
            backbone = PostgresServiceFixture.LlamaBackboneId, training_file = trainId, hyperparameters = new { pooling = "cls" },
        });
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        Assert.Contains("mean, last", await refused.Content.ReadAsStringAsync());

        var created = await client.CreateJobOkAsync(new
        {
            backbone = PostgresServiceFixture.LlamaBackboneId, training_file = trainId, validation_file = validationId,
            hyperparameters = new { epochs = 40, batch_size = 16, learning_rate = 0.03, r = 32, seed = 3, pooling = "last", max_length = 32 },
        });
        var jobId = created.GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.True(job.GetProperty("metrics").GetProperty("validation_accuracy").GetDouble() >= 0.75, job.ToString());
        var atTrain = StageProbe.ForwardCallsAtStart[(jobId, FineTuneStage.Train)];
        Assert.True(atTrain > 0);
        Assert.Equal(atTrain, StageProbe.ForwardCallsAtStart[(jobId, FineTuneStage.Publish)]);

        var adapterId = job.GetProperty("adapter_id").GetString()!;
        var artifact = await (await client.GetAsync($"/v1/adapters/{adapterId}/download")).Content.ReadAsByteArrayAsync();
        var config = AdapterArtifact.ReadConfig(artifact);
        Assert.Equal((BackboneArchitecture.Llama, "llama", Pooling.Last, "tokenizer.json"), (config.Architecture, config.ModelType, config.Pooling, config.Tokenizer.Type));
        var backbone = service.Api.Service<BackboneRegistry>().Get(PostgresServiceFixture.LlamaBackboneId);
        Assert.Equal(backbone.WeightsHash, config.BackboneWeightsHash);
        await AssertPredictAgreesWithCachedEvaluationAsync(client, backbone, adapterId, artifact, validation, job, tolerance: 2e-3, "llama-eval-cache");
    }

    [Fact]
    public async Task FineTune_SameDataWithOtherHyperparameters_ReusesTheActivationCacheWithoutTheBackbone()
    {
        using var client = await service.Api.CreateTenantClientAsync("sweep");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(48, seed: 15)));
        var first = await client.WaitForJobAsync((await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1, learning_rate = 0.01 },
        })).GetProperty("id").GetString()!);
        var secondId = (await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 2, learning_rate = 0.003, r = 16 },
        })).GetProperty("id").GetString()!;
        var second = await client.WaitForJobAsync(secondId);

        Assert.Equal("succeeded", first.GetProperty("status").GetString());
        Assert.False(first.GetProperty("cache_hit").GetBoolean());
        Assert.Equal("succeeded", second.GetProperty("status").GetString());
        Assert.True(second.GetProperty("cache_hit").GetBoolean());
        // The whole second job ran without one backbone forward.
        Assert.Equal(StageProbe.ForwardCallsAtStart[(secondId, FineTuneStage.Precompute)], StageProbe.ForwardCallsAtStart[(secondId, FineTuneStage.Publish)]);
    }

    [Fact]
    public async Task FineTune_SameDataFromAnotherTenant_IsACacheMiss()
    {
        // cache_hit must not tell one tenant that another trained on byte-identical texts (decision 009).
        var data = TestData.Jsonl(TestData.Sentiment(48, seed: 16));
        var body = new { backbone = "tiny-bert", hyperparameters = new { epochs = 1, learning_rate = 0.01 } };
        async Task<JsonElement> TrainAsync(HttpClient client)
        {
            var fileId = await client.UploadOkAsync(data);
            var job = await client.CreateJobOkAsync(new { body.backbone, training_file = fileId, body.hyperparameters });
            return await client.WaitForJobAsync(job.GetProperty("id").GetString()!);
        }

        using var first = await service.Api.CreateTenantClientAsync("cache-scope-first");
        using var second = await service.Api.CreateTenantClientAsync("cache-scope-second");
        var firstRun = await TrainAsync(first);
        var secondRun = await TrainAsync(second);
        var firstAgain = await TrainAsync(first);

        Assert.All(new[] { firstRun, secondRun, firstAgain }, job => Assert.Equal("succeeded", job.GetProperty("status").GetString()));
        Assert.False(firstRun.GetProperty("cache_hit").GetBoolean());
        Assert.False(secondRun.GetProperty("cache_hit").GetBoolean());
        Assert.True(firstAgain.GetProperty("cache_hit").GetBoolean());
    }

    [Fact]
    public async Task FineTune_RegressionTask_ReportsCorrelationAndPredictsValues()
    {
        using var client = await service.Api.CreateTenantClientAsync("regression");
        var train = TestData.SentimentScores(96, seed: 13);
        var validation = TestData.SentimentScores(32, seed: 14);
        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", task = "regression",
            training_file = await client.UploadOkAsync(TestData.Jsonl(train)),
            validation_file = await client.UploadOkAsync(TestData.Jsonl(validation)),
            hyperparameters = new { epochs = 60, learning_rate = 0.03, r = 32, batch_size = 16 },
        });
        Assert.Equal("regression", created.GetProperty("task").GetString());
        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var metrics = job.GetProperty("metrics");
        Assert.True(metrics.GetProperty("pearson").GetDouble() > 0.7, metrics.ToString());
        Assert.True(metrics.TryGetProperty("spearman", out _));
        Assert.False(metrics.TryGetProperty("validation_accuracy", out _));

        var predict = await client.PostAsJsonAsync($"/v1/adapters/{job.GetProperty("adapter_id").GetString()}/predict",
            new { inputs = new[] { new { text = "the movie was great and wonderful" }, new { text = "the movie was awful and terrible" } } });
        var predictions = (await predict.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
        var high = predictions[0].GetProperty("value").GetDouble();
        var low = predictions[1].GetProperty("value").GetDouble();
        Assert.True(high > low, $"positive text scored {high}, negative {low}");
        Assert.False(predictions[0].TryGetProperty("probabilities", out _));
    }

    [Fact]
    public async Task FineTune_WhenTrainingThrows_EndsFailedWithErrorAndNoAdapter()
    {
        using var client = await service.Api.CreateTenantClientAsync("fails");
        var trainId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 3)));
        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, hyperparameters = new { epochs = 1 },
            metadata = new Dictionary<string, string> { ["fail_at_stage"] = "train" },
        });
        var jobId = created.GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);

        Assert.Equal("failed", job.GetProperty("status").GetString());
        Assert.Equal("train", job.GetProperty("stage").GetString());
        Assert.Equal("training_failed", job.GetProperty("error").GetProperty("code").GetString());
        Assert.Contains("Injected failure at stage train", job.GetProperty("error").GetProperty("message").GetString());
        Assert.False(job.TryGetProperty("adapter_id", out _));
        var adapters = await (await client.GetAsync("/v1/adapters")).JsonAsync();
        Assert.Empty(adapters.GetProperty("data").EnumerateArray());
        await using var db = service.Worker.Services.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContext();
        Assert.False(await db.Adapters.AnyAsync(a => a.JobId == jobId));
    }

    [Fact]
    public async Task FineTune_WhenTheLossBecomesNaN_EndsFailedWithTrainingDivergedAndPublishesNothing()
    {
        using var client = await service.Api.CreateTenantClientAsync("diverges");
        // Finite labels whose mean overflows: standardised targets, and so the loss, are NaN from the first batch.
        var train = TestData.SentimentScores(32, seed: 16).Select((e, i) => e with { Label = i % 2 == 0 ? "1.7e308" : "1.6e308" });
        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", task = "regression", training_file = await client.UploadOkAsync(TestData.Jsonl(train)),
            hyperparameters = new { epochs = 2 },
        });
        var jobId = created.GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);

        Assert.True(job.GetProperty("status").GetString() == "failed", job.ToString());
        Assert.Equal("training_diverged", job.GetProperty("error").GetProperty("code").GetString());
        Assert.False(job.TryGetProperty("adapter_id", out _));
        await using var db = service.Worker.Services.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContext();
        Assert.False(await db.Adapters.AnyAsync(a => a.JobId == jobId));
        Assert.Null((await db.Jobs.SingleAsync(j => j.Id == jobId)).LeaseOwner); // finishing released the lease
    }

    [Fact]
    public async Task OtherTenant_CannotSeeDownloadOrPredictWithAnotherTenantsResources_404()
    {
        using var owner = await service.Api.CreateTenantClientAsync("owner");
        using var intruder = await service.Api.CreateTenantClientAsync("intruder");
        var fileId = await owner.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 4)));
        var job = await owner.WaitForJobAsync((await owner.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 },
        })).GetProperty("id").GetString()!);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        var jobId = job.GetProperty("id").GetString()!;
        var adapterId = job.GetProperty("adapter_id").GetString()!;

        foreach (var path in new[]
                 {
                     $"/v1/files/{fileId}", $"/v1/fine-tuning/jobs/{jobId}", $"/v1/fine-tuning/jobs/{jobId}/events",
                     $"/v1/adapters/{adapterId}", $"/v1/adapters/{adapterId}/download",
                 })
        {
            await (await intruder.GetAsync(path)).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
            Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync(path)).StatusCode);
        }
        await (await intruder.PostAsJsonAsync($"/v1/adapters/{adapterId}/predict", new { inputs = new[] { new { text = "great" } } }))
            .AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await intruder.DeleteAsync($"/v1/adapters/{adapterId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await intruder.DeleteAsync($"/v1/files/{fileId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        // Nor can it train on them.
        await (await intruder.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = fileId }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "file_not_found");

        foreach (var list in new[] { "/v1/files", "/v1/fine-tuning/jobs", "/v1/adapters" })
            Assert.Empty((await (await intruder.GetAsync(list)).JsonAsync()).GetProperty("data").EnumerateArray());
        // The owner's resources survived the intruder's attempts.
        Assert.Equal(HttpStatusCode.OK, (await owner.GetAsync($"/v1/adapters/{adapterId}")).StatusCode);
    }
}
