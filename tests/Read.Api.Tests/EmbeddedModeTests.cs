using System.Net;
using System.Net.Http.Json;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>The default with no Postgres configured: one process with SQLite, in-memory Hangfire and its own Hangfire server.</summary>
[Collection(ServiceCollection.Name)]
public sealed class EmbeddedModeTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_test_key";
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-embedded-").FullName;
    private static readonly Dictionary<string, string?> Settings = new() { ["Read:DevelopmentApiKey"] = DevelopmentKey };

    [Fact]
    public async Task FineTune_EmbeddedDefault_RunsInProcessAndPredicts()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, Settings);
        using var client = app.CreateClient(DevelopmentKey);
        var backbones = await (await client.GetAsync("/v1/backbones")).JsonAsync();
        Assert.Contains(backbones.GetProperty("data").EnumerateArray(), b => b.GetProperty("id").GetString() == "tiny-bert");

        var train = TestData.Sentiment(64, seed: 7);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(train));
        var created = await client.CreateJobOkAsync(new
        {
            backbone = "tiny-bert", training_file = fileId,
            hyperparameters = new { epochs = 8, batch_size = 16, learning_rate = 0.005, validation_split = 0.25 },
        });
        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal(16, job.GetProperty("metrics").GetProperty("validation_examples").GetInt32());
        Assert.True(File.Exists(Path.Combine(_dataDirectory, "read.db")));

        var adapterId = job.GetProperty("adapter_id").GetString()!;
        var predict = await client.PostAsJsonAsync($"/v1/adapters/{adapterId}/predict",
            new { inputs = new[] { new { text = "the movie was great and wonderful" }, new { text = "the movie was awful and terrible" } } });
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        var predictions = (await predict.JsonAsync()).GetProperty("predictions").EnumerateArray().ToList();
        Assert.Equal(2, predictions.Count);
        foreach (var p in predictions)
        {
            var probabilities = p.GetProperty("probabilities").EnumerateObject().ToDictionary(x => x.Name, x => x.Value.GetDouble());
            Assert.Equal(["negative", "positive"], probabilities.Keys.Order());
            Assert.Equal(1.0, probabilities.Values.Sum(), 5);
            Assert.Equal(probabilities.MaxBy(x => x.Value).Key, p.GetProperty("label").GetString());
        }
    }

    [Fact]
    public async Task Start_WithJobLeftQueuedAtLastStop_ReenqueuesAndFinishesIt()
    {
        string fileId;
        Guid tenantId;
        await using (var first = ReadApplication.Start(_dataDirectory, postgres: null, Settings))
        {
            using var client = first.CreateClient(DevelopmentKey);
            fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 8)));
            await using var db = first.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext();
            tenantId = (await db.Files.SingleAsync(f => f.Id == fileId)).TenantId;
        }

        // A job the previous process accepted but never ran: only the database remembers it.
        var jobId = "ftjob-" + Guid.NewGuid().ToString("N");
        var options = new DbContextOptionsBuilder<SqliteReadDbContext>().UseSqlite($"Data Source={Path.Combine(_dataDirectory, "read.db")}").Options;
        await using (var db = new SqliteReadDbContext(options))
        {
            db.Jobs.Add(new FineTuneJob
            {
                Id = jobId, TenantId = tenantId, BackboneId = "tiny-bert", TrainingFileId = fileId,
                HyperparametersJson = "{\"epochs\":1}", Status = JobStatus.Queued, CreatedAt = DateTime.UtcNow,
            });
            await db.SaveChangesAsync();
        }

        await using var second = ReadApplication.Start(_dataDirectory, postgres: null, Settings);
        using var secondClient = second.CreateClient(DevelopmentKey);
        var job = await secondClient.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
    }

    [Fact]
    public async Task Start_RemovesTemporaryCacheFilesAKilledPrecomputeLeftBehind()
    {
        var cacheDirectory = Path.Combine(_dataDirectory, "activation-cache");
        Directory.CreateDirectory(cacheDirectory);
        var stale = Path.Combine(cacheDirectory, "0123.readact.tmp-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllBytesAsync(stale, [1, 2, 3]);
        File.SetLastWriteTimeUtc(stale, DateTime.UtcNow.AddHours(-1)); // long past any writer

        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, Settings);

        Assert.False(File.Exists(stale));
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { }
    }
}
