using System.Net;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class CancellationTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task Cancel_RunningJob_StopsTrainingPromptlyAndPublishesNothing()
    {
        using var client = await service.Api.CreateTenantClientAsync("cancels");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(64, seed: 11)));
        // Far more epochs than the test will wait for, and no early stopping (on by default): only cancellation can end this job in time.
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1000, early_stopping_patience = 0 } }))
            .GetProperty("id").GetString()!;
        await WaitForStageAsync(client, jobId, "train");

        var cancel = await client.PostAsync($"/v1/fine-tuning/jobs/{jobId}/cancel", null);
        Assert.Equal(HttpStatusCode.OK, cancel.StatusCode);
        Assert.Equal("cancelled", (await cancel.JsonAsync()).GetProperty("status").GetString());

        // The worker notices within its poll interval (1 s) and stops between batches.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!(await EventsAsync(client, jobId)).Contains("Job cancelled; training stopped"))
        {
            if (DateTime.UtcNow >= deadline)
            {
                var seen = await EventsAsync(client, jobId);
                Assert.Fail($"the worker did not stop the cancelled job; {seen.Count} events, last: {string.Join(" | ", seen.TakeLast(4))}");
            }
            await Task.Delay(200);
        }
        var job = await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}")).JsonAsync();
        Assert.Equal("cancelled", job.GetProperty("status").GetString());
        Assert.False(job.TryGetProperty("adapter_id", out _));
        await using var db = service.Worker.Services.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContext();
        Assert.False(await db.Adapters.AnyAsync(a => a.JobId == jobId));
    }

    [Fact]
    public async Task Cancel_FinishedOrForeignJob_ConflictOr404()
    {
        using var client = await service.Api.CreateTenantClientAsync("cancel-late");
        using var other = await service.Api.CreateTenantClientAsync("cancel-other");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 12)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;
        await (await other.PostAsync($"/v1/fine-tuning/jobs/{jobId}/cancel", null)).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        Assert.Equal("succeeded", (await client.WaitForJobAsync(jobId)).GetProperty("status").GetString());
        await (await client.PostAsync($"/v1/fine-tuning/jobs/{jobId}/cancel", null)).AssertProblemAsync(HttpStatusCode.Conflict, "job_not_cancellable");
    }

    private static async Task WaitForStageAsync(HttpClient client, string jobId, string stage)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!(await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}")).JsonAsync()).TryGetProperty("stage", out var s) || s.GetString() != stage)
        {
            Assert.True(DateTime.UtcNow < deadline, $"job never reached stage {stage}");
            await Task.Delay(100);
        }
    }

    private static async Task<List<string>> EventsAsync(HttpClient client, string jobId) =>
        (await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobId}/events?limit=1000")).JsonAsync())
        .GetProperty("data").EnumerateArray().Select(e => e.GetProperty("message").GetString()!).ToList();
}
