using System.Data;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
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

    [Fact]
    public async Task Checkpoints_BestEpochBeforeTheLast_BothKept_AndTheAdapterHasTheBestEpochsWeights()
    {
        using var client = await service.Api.CreateTenantClientAsync("ckpt-best");
        var trainId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 45)));
        // Validation labels flipped: the better training learns the task, the worse it scores, so an early epoch is best.
        var flipped = TestData.Sentiment(16, seed: 46).Select(e => e with { Label = e.Label == "positive" ? "negative" : "positive" });
        var validationId = await client.UploadOkAsync(TestData.Jsonl(flipped));
        var job = await client.WaitForJobAsync((await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId, validation_file = validationId,
            hyperparameters = new { epochs = 12, learning_rate = 0.01, r = 16, max_length = 32, early_stopping_patience = 2 },
        })).GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var jobId = job.GetProperty("id").GetString()!;
        var bestEpoch = job.GetProperty("metrics").GetProperty("best_epoch").GetInt32();
        var lastEpoch = job.GetProperty("metrics").GetProperty("epochs_run").GetInt32();
        Assert.True(bestEpoch < lastEpoch, $"the setup needs a best epoch before the last: {job}");

        // Both kept, the flag on the best one.
        var list = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/checkpoints")).GetProperty("data").EnumerateArray()
            .Select(c => (Epoch: c.GetProperty("epoch").GetInt32(), IsBest: c.GetProperty("is_best").GetBoolean(), Id: c.GetProperty("id").GetString()!))
            .OrderBy(c => c.Epoch).ToList();
        Assert.Equal([(bestEpoch, true), (lastEpoch, false)], list.Select(c => (c.Epoch, c.IsBest)));

        // The published adapter is the best epoch's weights, bit for bit, not the last epoch's.
        var adapter = await client.GetByteArrayAsync($"/v1/adapters/{job.GetProperty("adapter_id").GetString()}/download");
        Dictionary<string, float[]> published;
        using (var zip = new ZipArchive(new MemoryStream(adapter)))
        {
            using var entry = zip.GetEntry(AdapterArtifact.WeightsEntry)!.Open();
            using var bytes = new MemoryStream();
            await entry.CopyToAsync(bytes);
            published = SafeTensorsFile.Read(bytes.ToArray()).ToDictionary(t => t.Key, t => t.Value.Data);
        }

        Dictionary<string, float[]> best, last;
        await using (var db = service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext())
        {
            best = WeightsOf(await db.JobCheckpoints.Where(c => c.Id == list[0].Id).Select(c => c.State).SingleAsync());
            last = WeightsOf(await db.JobCheckpoints.Where(c => c.Id == list[1].Id).Select(c => c.State).SingleAsync());
        }

        Assert.Equal(best.Keys.Order(), published.Keys.Order());
        foreach (var (name, values) in best)
            Assert.True(values.AsSpan().SequenceEqual(published[name]), $"{name} differs from the best checkpoint's");
        Assert.Contains(last, t => !t.Value.AsSpan().SequenceEqual(published[t.Key]));
    }

    [Fact]
    public async Task EstimatedFinish_MidRunWithAutoEpochs_IsMeanEpochSecondsTimesTheEpochsLeft()
    {
        using var client = await service.Api.CreateTenantClientAsync("ckpt-estimate");
        var trainId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(64, seed: 47)));
        var jobId = (await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = trainId,
            hyperparameters = new { epochs = "auto", learning_rate = 0.01, r = 16, max_length = 32, early_stopping_patience = 0 },
        })).GetProperty("id").GetString()!;

        // Snapshots taken while the job trains: the estimate and the checkpoint written in the same transaction.
        var factory = service.Api.Service<IDbContextFactory<ReadDbContext>>();
        var snapshots = new List<(int Epoch, DateTime WrittenAt, DateTime Estimate)>();
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            await using var db = await factory.CreateDbContextAsync();
            await using var tx = await db.Database.BeginTransactionAsync(IsolationLevel.RepeatableRead);
            var row = await db.Jobs.AsNoTracking().Where(j => j.Id == jobId).Select(j => new { j.Status, j.EstimatedFinishAt }).SingleAsync();
            var checkpoint = await db.JobCheckpoints.AsNoTracking().Where(c => c.JobId == jobId).OrderByDescending(c => c.Epoch)
                .Select(c => new { c.Epoch, c.CreatedAt }).FirstOrDefaultAsync();
            if (row.Status != "running" && row.Status != "queued")
                break;
            if (checkpoint is not null && row.EstimatedFinishAt is { } estimate && snapshots.All(s => s.Epoch != checkpoint.Epoch))
                snapshots.Add((checkpoint.Epoch, checkpoint.CreatedAt, estimate));
            await Task.Delay(5);
        }

        var job = await client.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        var epochs = job.GetProperty("hyperparameters").GetProperty("epochs").GetInt32(); // what "auto" became
        Assert.Equal(20, epochs); // 64 examples: ReadHyperparameters.ResolveAuto
        var seconds = (await client.GetFromJsonAsync<JsonElement>($"/v1/fine-tuning/jobs/{jobId}/events?limit=1000")).GetProperty("data").EnumerateArray()
            .Where(e => e.GetProperty("message").GetString()!.StartsWith("Epoch ", StringComparison.Ordinal))
            .ToDictionary(e => e.GetProperty("data").GetProperty("epoch").GetInt32(), e => e.GetProperty("data").GetProperty("seconds").GetDouble());
        var midRun = snapshots.Where(s => s.Epoch < epochs).ToList();
        Assert.True(midRun.Count > 0, $"no estimate seen before the last epoch: {string.Join(", ", snapshots)}");
        foreach (var (epoch, writtenAt, estimate) in midRun)
        {
            // The job's own record: mean epoch time so far × epochs left, from the moment the checkpoint was written.
            var expected = writtenAt + TimeSpan.FromSeconds(Enumerable.Range(1, epoch).Average(e => seconds[e]) * (epochs - epoch));
            Assert.True(Math.Abs((estimate - expected).TotalMilliseconds) <= 5, $"epoch {epoch}: estimate {estimate:O}, expected {expected:O}");
        }
    }

    private static Dictionary<string, float[]> WeightsOf(byte[] state)
    {
        using var reader = new BinaryReader(new MemoryStream(state));
        TrainingCheckpoint.ReadHeader(reader);
        var weights = TrainingCheckpoint.ReadWeights(reader);
        var values = weights.ToDictionary(w => w.Key, w => w.Value.data<float>().ToArray());
        foreach (var tensor in weights.Values)
            tensor.Dispose();
        return values;
    }
}
