using System.Net;
using System.Net.Http.Json;

namespace Read.Api.Tests;

/// <summary>
/// A backbone over the memory budget (Read:Training:MemoryBudgetBytes) is registered layer-streamed: jobs still train
/// (the precompute holds one layer at a time) and online predict is refused with a stable code.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class StreamedBackboneTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_streamed_key";
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-streamed-").FullName;

    [Fact]
    public async Task BackboneOverTheMemoryBudget_TrainsStreamedAndRefusesOnlinePredictWith422()
    {
        // One byte: every backbone, tiny-bert included, is over it.
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null,
            new Dictionary<string, string?> { ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:Training:MemoryBudgetBytes"] = "1" });
        using var client = app.CreateClient(DevelopmentKey);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 3)));
        var created = await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 2 } });
        var job = await client.WaitForJobAsync(created.GetProperty("id").GetString()!);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        // One event per streamed step: the embeddings and each of tiny-bert's layers the cache reads (all 4 by default).
        var events = await (await client.GetAsync($"/v1/fine-tuning/jobs/{job.GetProperty("id").GetString()}/events?limit=100")).JsonAsync();
        var steps = events.GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!)
            .Where(m => m.StartsWith("Layer-streamed precompute: ", StringComparison.Ordinal)).ToList();
        Assert.Equal(5, steps.Count);
        Assert.Contains(steps, m => m.StartsWith("Layer-streamed precompute: embeddings read ", StringComparison.Ordinal));
        Assert.Contains(steps, m => m.StartsWith("Layer-streamed precompute: layer 4 read ", StringComparison.Ordinal));

        var predict = await client.PostAsJsonAsync($"/v1/adapters/{job.GetProperty("adapter_id").GetString()}/predict",
            new { inputs = new[] { new { text = "the movie was great" } } });
        await predict.AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "backbone_too_large_for_online_predict");

        // Asking for a resident precompute on it (another max_length: a cache miss) fails the job with its own code
        // instead of loading it. A cache hit needs no precompute, so it would succeed.
        var resident = await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId,
            hyperparameters = new { epochs = 1, max_length = 64, precompute = "resident" } });
        var failed = await client.WaitForJobAsync(resident.GetProperty("id").GetString()!);
        Assert.Equal("failed", failed.GetProperty("status").GetString());
        Assert.Equal("backbone_too_large_for_resident_precompute", failed.GetProperty("error").GetProperty("code").GetString());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // SQLite may still hold the file for a moment; the temp directory is cleaned up by the OS.
        }
    }
}
