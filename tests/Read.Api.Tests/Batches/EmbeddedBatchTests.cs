using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Read.Domain.Adapters;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.Persistence;
using Read.Domain.SideNetwork;

namespace Read.Api.Tests.Batches;

/// <summary>
/// Batches in the embedded default (SQLite, in-memory Hangfire, run in-process): on a backbone registered
/// layer-streamed, where online predict is refused, and cancelled part-way.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class EmbeddedBatchTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_batch_key";
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-batch-").FullName;

    [Fact]
    public async Task Batch_OnLayerStreamedBackbone_SucceedsWhereOnlinePredictIs422AndMatchesTheResidentBackbone()
    {
        // One byte: tiny-bert is over the budget, so the registry streams it.
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null,
            new Dictionary<string, string?> { ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:Training:MemoryBudgetBytes"] = "1", ["Read:Batches:ChunkTexts"] = "3" });
        using var client = app.CreateClient(DevelopmentKey);
        var streamed = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        Assert.False(streamed.IsResident);
        var artifact = TestAdapters.Artifact(streamed, 71, labels: 3);
        var adapterId = await TestAdapters.PublishAsync(app, await DevelopmentTenantAsync(app), artifact);
        var texts = TestAdapters.Texts;

        var online = await client.PostAsJsonAsync($"/v1/adapters/{adapterId}/predict", new { inputs = new[] { new { text = texts[0] } } });
        await online.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "backbone_too_large_for_online_predict");
        Assert.Contains("POST /v1/batches", (await online.JsonAsync()).GetProperty("detail").GetString()); // where to go instead

        // Chunks of 3 distinct texts: the streamed precompute runs three times, every layer read from disk each time.
        var fileId = await client.UploadBatchFileOkAsync(texts.Select((t, i) => BatchCalls.Line($"r{i}", $"/v1/adapters/{adapterId}/predict", new { inputs = new[] { new { text = t } } })));
        var batch = await client.WaitForBatchAsync((await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict")).GetProperty("id").GetString()!);
        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);

        // Reference: the same checkpoint loaded resident through the real loader, and the ordinary predictor.
        using var resident = HuggingFaceCheckpoint.Load(BackboneRegistry.TinyBackboneId, Path.Combine(_dataDirectory, "backbones", BackboneRegistry.TinyBackboneId));
        Assert.Equal(streamed.WeightsHash, resident.WeightsHash);
        using var adapter = AdapterArtifact.Load(artifact, resident);
        var expected = AdapterPredictor.Predict(resident, adapter, texts, null);
        for (var i = 0; i < texts.Length; i++)
        {
            var prediction = output[$"r{i}"].GetProperty("response").GetProperty("body").GetProperty("predictions")[0];
            Assert.Equal(expected[i].Label, prediction.GetProperty("label").GetString());
            foreach (var p in prediction.GetProperty("probabilities").EnumerateObject())
                Assert.InRange(p.Value.GetDouble(), expected[i].Probabilities[p.Name] - 1e-5, expected[i].Probabilities[p.Name] + 1e-5);
        }
    }

    [Fact]
    public async Task Batch_OnLayerStreamedLlama_MatchesOnlinePredictOnTheResidentBackbone()
    {
        // A decoder over the budget: causal mask, rotary positions and right padding must come out of the streamed steps
        // (two shards, chunks of 3 distinct texts of different lengths) as they do from the resident forward.
        var checkpoint = Path.Combine(_dataDirectory, "checkpoints", "tiny-llama");
        TinyLlamaCheckpoint.Write(checkpoint, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 11);
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?>
        {
            ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:Training:MemoryBudgetBytes"] = "1", ["Read:Batches:ChunkTexts"] = "3",
            ["Read:Backbones:Checkpoints:tiny-llama"] = checkpoint,
        });
        using var client = app.CreateClient(DevelopmentKey);
        var streamed = app.Service<BackboneRegistry>().Get("tiny-llama");
        Assert.False(streamed.IsResident);
        var tenant = await DevelopmentTenantAsync(app);
        // Two poolings: two precompute groups, the last real token and the mean over every real one.
        var artifacts = new[] { TestAdapters.Artifact(streamed, 72, labels: 3, pooling: Pooling.Last), TestAdapters.Artifact(streamed, 73, pooling: Pooling.Mean) };
        var ids = new List<string>();
        foreach (var artifact in artifacts)
            ids.Add(await TestAdapters.PublishAsync(app, tenant, artifact, "tiny-llama"));
        var texts = TestAdapters.Texts;
        var fileId = await client.UploadBatchFileOkAsync(ids.Select((id, n) =>
            BatchCalls.Line($"a{n}", $"/v1/adapters/{id}/predict", new { inputs = texts.Select(t => new { text = t }).ToArray() })));

        var batch = await client.WaitForBatchAsync((await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict")).GetProperty("id").GetString()!);

        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);
        // Reference: online predict's own path (AdapterPredictor) on the same checkpoint loaded resident by the real loader.
        using var resident = HuggingFaceCheckpoint.Load("tiny-llama", checkpoint);
        Assert.Equal(streamed.WeightsHash, resident.WeightsHash);
        for (var n = 0; n < artifacts.Length; n++)
        {
            using var adapter = AdapterArtifact.Load(artifacts[n], resident);
            var expected = AdapterPredictor.Predict(resident, adapter, texts, null);
            var predictions = output[$"a{n}"].GetProperty("response").GetProperty("body").GetProperty("predictions");
            for (var i = 0; i < texts.Length; i++)
            {
                Assert.Equal(expected[i].Label, predictions[i].GetProperty("label").GetString());
                foreach (var p in predictions[i].GetProperty("probabilities").EnumerateObject())
                    Assert.InRange(p.Value.GetDouble(), expected[i].Probabilities[p.Name] - 1e-4, expected[i].Probabilities[p.Name] + 1e-4);
            }
        }
    }

    [Fact]
    public async Task Batch_CancelledWhileRunning_StopsAtAChunkAndPublishesWhatItAnswered()
    {
        // One text per chunk and many distinct texts: the run is still going when the cancel lands.
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?>
        {
            ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:Batches:ChunkTexts"] = "1", ["Read:CancellationPollInterval"] = "00:00:00.050",
        });
        using var client = app.CreateClient(DevelopmentKey);
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var adapterId = await TestAdapters.PublishAsync(app, await DevelopmentTenantAsync(app), TestAdapters.Artifact(backbone, 81));
        var lines = Enumerable.Range(0, 40).Select(l => BatchCalls.Line($"r{l}", $"/v1/adapters/{adapterId}/predict",
            new { inputs = Enumerable.Range(0, 25).Select(i => new { text = $"review {l} number {i} was fine" }).ToArray() }));
        var fileId = await client.UploadBatchFileOkAsync(lines);
        var id = (await client.CreateBatchOkAsync(fileId, "/v1/adapters/{id}/predict")).GetProperty("id").GetString()!;
        // Running, with some requests answered (the counts move while it runs).
        await client.WaitForBatchAsync(id, b => b.GetProperty("request_counts").GetProperty("completed").GetInt32() > 0);

        var cancel = await client.PostAsync($"/v1/batches/{id}/cancel", null);
        var cancelling = await cancel.JsonAsync();
        Assert.True(cancel.StatusCode == HttpStatusCode.OK, cancelling.ToString());
        Assert.Equal("cancelling", cancelling.GetProperty("status").GetString());

        var batch = await client.WaitForBatchAsync(id, timeout: TimeSpan.FromSeconds(30));
        Assert.Equal("cancelled", batch.GetProperty("status").GetString());
        var counts = batch.GetProperty("request_counts");
        Assert.Equal(40, counts.GetProperty("total").GetInt32());
        // Stopped part-way: the requests answered before the cancel are published, the rest are in neither file.
        var completed = counts.GetProperty("completed").GetInt32();
        Assert.InRange(completed, 1, 39);
        Assert.Equal(0, counts.GetProperty("failed").GetInt32());
        var output = await client.ResultLinesAsync(batch.GetProperty("output_file_id").GetString()!);
        Assert.Equal(completed, output.Count);
        Assert.All(output.Values, l => Assert.Equal(25, l.GetProperty("response").GetProperty("body").GetProperty("predictions").GetArrayLength()));
        Assert.Equal(JsonValueKind.Null, batch.GetProperty("error_file_id").ValueKind);
        Assert.NotEqual(JsonValueKind.Null, batch.GetProperty("cancelled_at").ValueKind);
    }

    [Fact]
    public async Task Batch_LeftInProgressByAProcessThatDied_IsRunAgainAfterARestart()
    {
        var settings = new Dictionary<string, string?> { ["Read:DevelopmentApiKey"] = DevelopmentKey };
        string batchId;
        await using (var first = ReadApplication.Start(_dataDirectory, postgres: null, settings))
        {
            using var client = first.CreateClient(DevelopmentKey);
            var tenant = await DevelopmentTenantAsync(first);
            var adapterId = await TestAdapters.PublishAsync(first, tenant,
                TestAdapters.Artifact(first.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId), 91));
            var fileId = await client.UploadBatchFileOkAsync([BatchCalls.Line("only", $"/v1/adapters/{adapterId}/predict", new { inputs = new[] { new { text = "fine" } } })]);
            // What a process killed mid-run leaves: the row in_progress under a run that no longer exists, Hangfire's memory gone.
            batchId = "batch_" + Guid.NewGuid().ToString("N");
            await using var scope = first.Services.CreateAsyncScope();
            var db = scope.ServiceProvider.GetRequiredService<ReadDbContext>();
            db.Batches.Add(new Read.Domain.Batches.PredictionBatch
            {
                Id = batchId, TenantId = tenant, Endpoint = "/v1/adapters/{id}/predict", InputFileId = fileId, CompletionWindow = "24h",
                Status = "in_progress", CreatedAt = DateTime.UtcNow, InProgressAt = DateTime.UtcNow, DefaultTopK = 5, MaxTopK = 1000, RunOwner = "dead-process",
            });
            await db.SaveChangesAsync();
        }

        await using var second = ReadApplication.Start(_dataDirectory, postgres: null, settings);
        using var restarted = second.CreateClient(DevelopmentKey);
        var batch = await restarted.WaitForBatchAsync(batchId);
        Assert.True(batch.GetProperty("status").GetString() == "completed", batch.ToString());
        Assert.Equal(1, batch.GetProperty("request_counts").GetProperty("completed").GetInt32());
    }

    private static async Task<Guid> DevelopmentTenantAsync(ReadApplication app)
    {
        await using var scope = app.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<ReadDbContext>();
        return (await db.Tenants.SingleAsync(t => t.Name == Read.Api.Hosting.EmbeddedStartup.DevelopmentTenantName)).Id;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment.
        }
    }
}
