using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>GET /v1/fine-tuning/jobs/{id}/checkpoints and from_checkpoint, through the real API and worker on Postgres.</summary>
[Collection(ServiceCollection.Name)]
public sealed class CheckpointsApiTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Checkpoints_KeepLastAndBest_TenantScoped_AndTrainFurther()
    {
        using var client = await service.Api.CreateTenantClientAsync("ckpt");
        using var stranger = await service.Api.CreateTenantClientAsync("ckpt-other");
        var trainId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 41)));
        var validationId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 42)));
        var job = await client.WaitForJobAsync((await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, validation_file = validationId,
            hyperparameters = new { epochs = 4, learning_rate = 0.01, r = 16, max_length = 32, early_stopping_patience = 0 },
        })).GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var jobId = job.GetProperty("id").GetString()!;
        Assert.False(job.TryGetProperty("estimated_finish", out var shown) && shown.ValueKind != JsonValueKind.Null, "a finished job shows no estimate");
        await using (var db = service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext())
        {
            // Set after each epoch (the last one estimates "now": no epochs left), never before the job started.
            var row = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
            Assert.NotNull(row.EstimatedFinishAt);
            Assert.InRange(row.EstimatedFinishAt!.Value, row.StartedAt!.Value, row.FinishedAt!.Value.AddSeconds(1));
        }

        var list = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/checkpoints")).GetProperty("data").EnumerateArray().ToList();
        // Without early stopping the last epoch is the best: one checkpoint kept, epochs 1-3 deleted as training went on.
        var last = Assert.Single(list);
        Assert.Equal(4, last.GetProperty("epoch").GetInt32());
        Assert.True(last.GetProperty("is_best").GetBoolean());
        Assert.Equal(4, last.GetProperty("metrics").GetProperty("epoch").GetInt32());
        Assert.True(last.GetProperty("metrics").GetProperty("train_loss").GetDouble() > 0);
        Assert.True(last.TryGetProperty("created_at", out _));

        var hidden = await stranger.GetAsync($"/v1/fine-tuning/jobs/{jobId}/checkpoints");
        await hidden.AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        var strangerFile = await stranger.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 41)));
        var checkpointId = last.GetProperty("id").GetString()!;
        await (await stranger.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = "tiny-bert", training_file = strangerFile, from_checkpoint = checkpointId }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "checkpoint_not_found");
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", new { backbone = PostgresServiceFixture.LlamaBackboneId, training_file = trainId, from_checkpoint = checkpointId }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "checkpoint_backbone_mismatch");

        var further = await client.WaitForJobAsync((await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, validation_file = validationId, from_checkpoint = checkpointId,
            hyperparameters = new { epochs = 1, learning_rate = 0.01, r = 16, max_length = 32, early_stopping_patience = 0 },
        })).GetProperty("id").GetString()!);
        Assert.True(further.GetProperty("status").GetString() == "succeeded", further.ToString());
        Assert.Equal(checkpointId, further.GetProperty("from_checkpoint").GetString());
        // One epoch from the trained weights ends below where the four-epoch run's first epoch did (it started untrained).
        var events = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/events?limit=1000")).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("message").GetString()!.StartsWith("Epoch 1:", StringComparison.Ordinal)).Single();
        Assert.True(further.GetProperty("metrics").GetProperty("final_train_loss").GetDouble() < events.GetProperty("data").GetProperty("train_loss").GetDouble());

        // A mismatched shape (other r) fails the job with a stable code rather than crashing the worker.
        var misfit = await client.WaitForJobAsync((await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, from_checkpoint = checkpointId, hyperparameters = new { epochs = 1, r = 8, max_length = 32 },
        })).GetProperty("id").GetString()!);
        Assert.Equal("failed", misfit.GetProperty("status").GetString());
        Assert.Equal("checkpoint_unavailable", misfit.GetProperty("error").GetProperty("code").GetString());
    }
}
