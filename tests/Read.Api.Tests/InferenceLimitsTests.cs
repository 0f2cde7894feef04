using System.Net;
using System.Net.Http.Json;
using Read.Api.Inference;
using Read.Domain.Backbones;

namespace Read.Api.Tests;

/// <summary>
/// Backpressure and rate limits on an embedded API started with small limits: each refusal is a 429 with a stable
/// code and a Retry-After, and one tenant's limit is not another's.
/// </summary>
[Collection(ServiceCollection.Name)]
public sealed class InferenceLimitsTests : IDisposable
{
    private readonly string dataDirectory = Directory.CreateTempSubdirectory("read-limits-").FullName;

    private ReadApplication Start(Dictionary<string, string?> settings) => ReadApplication.Start(dataDirectory, postgres: null, settings);

    private static object Body(params string[] texts) => new { inputs = texts.Select(t => new { text = t }).ToArray() };

    private static async Task AssertTooManyAsync(HttpResponseMessage response, string code)
    {
        await response.AssertProblemAsync(HttpStatusCode.TooManyRequests, code);
        Assert.True(response.Headers.RetryAfter?.Delta is { TotalSeconds: >= 1 }, $"Retry-After: {response.Headers.RetryAfter}");
    }

    [Fact]
    public async Task Predict_WhenTheInferenceQueueIsFull_Returns429WithRetryAfterAndServesTheAdmitted()
    {
        // One request fits; it waits out a long gather window, so the queue stays full while the second arrives.
        await using var app = Start(new() { ["Read:Inference:MaxQueuedRequests"] = "1", ["Read:Inference:MaxBatchDelayMs"] = "3000" });
        var (client, tenant) = await TestTenants.CreateAsync(app, "queue");
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var id = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 41));
        var batcher = app.Service<InferenceBatcher>();

        var admitted = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("first"));
        for (var i = 0; i < 300 && batcher.QueueDepth == 0; i++)
            await Task.Delay(20);
        Assert.Equal(1, batcher.QueueDepth);

        await AssertTooManyAsync(await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("second")), "inference_queue_full");
        await AssertTooManyAsync(await client.PostAsJsonAsync("/v1/predict", new { inputs = new[] { new { adapter = id, text = "third" } } }), "inference_queue_full");
        Assert.Equal(HttpStatusCode.OK, (await admitted).StatusCode);
    }

    [Fact]
    public async Task RateLimits_PerTenantOnPredictUploadsAndJobs_Return429AndSpareOtherTenants()
    {
        await using var app = Start(new()
        {
            ["Read:RateLimits:Predict:PermitLimit"] = "3", ["Read:RateLimits:Predict:WindowSeconds"] = "600",
            ["Read:RateLimits:Uploads:PermitLimit"] = "1", ["Read:RateLimits:Uploads:WindowSeconds"] = "600",
            ["Read:RateLimits:Jobs:PermitLimit"] = "1", ["Read:RateLimits:Jobs:WindowSeconds"] = "600",
        });
        var (first, tenant) = await TestTenants.CreateAsync(app, "limited");
        var (second, other) = await TestTenants.CreateAsync(app, "unaffected");
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var mine = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, 42));
        var theirs = await TestAdapters.PublishAsync(app, other, TestAdapters.Artifact(backbone, 43));

        // Both predict endpoints draw on one allowance.
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsJsonAsync($"/v1/adapters/{mine}/predict", Body("a"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsJsonAsync("/v1/predict", new { inputs = new[] { new { adapter = mine, text = "b" } } })).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsJsonAsync($"/v1/adapters/{mine}/predict", Body("c"))).StatusCode);
        await AssertTooManyAsync(await first.PostAsJsonAsync($"/v1/adapters/{mine}/predict", Body("d")), "rate_limited");
        Assert.Equal(HttpStatusCode.OK, (await second.PostAsJsonAsync($"/v1/adapters/{theirs}/predict", Body("e"))).StatusCode);

        var data = TestData.Jsonl(TestData.Sentiment(8, seed: 3));
        await first.UploadOkAsync(data);
        await AssertTooManyAsync(await first.UploadAsync(data), "rate_limited");
        await second.UploadOkAsync(data);

        // The limit counts before validation: an invalid job body uses the allowance too.
        var job = new { backbone = "gpt-17", training_file = "file-x" };
        await (await first.PostAsJsonAsync("/v1/fine-tuning/jobs", job)).AssertProblemAsync(HttpStatusCode.BadRequest, "unknown_backbone");
        await AssertTooManyAsync(await first.PostAsJsonAsync("/v1/fine-tuning/jobs", job), "rate_limited");
        await (await second.PostAsJsonAsync("/v1/fine-tuning/jobs", job)).AssertProblemAsync(HttpStatusCode.BadRequest, "unknown_backbone");

        // Reads are not limited.
        Assert.Equal(HttpStatusCode.OK, (await first.GetAsync("/v1/adapters")).StatusCode);
    }

    [Fact]
    public async Task RateLimits_TenantOverride_AppliesToThatTenantOnly()
    {
        Guid tenant, other;
        string mine, theirs;
        string firstKey, secondKey;
        // First run: create the tenants (ids are needed for the configuration of the second run).
        await using (var setup = Start(new()))
        {
            var backbone = setup.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
            (var a, tenant) = await TestTenants.CreateAsync(setup, "override");
            (var b, other) = await TestTenants.CreateAsync(setup, "default");
            firstKey = a.DefaultRequestHeaders.Authorization!.Parameter!;
            secondKey = b.DefaultRequestHeaders.Authorization!.Parameter!;
            mine = await TestAdapters.PublishAsync(setup, tenant, TestAdapters.Artifact(backbone, 44));
            theirs = await TestAdapters.PublishAsync(setup, other, TestAdapters.Artifact(backbone, 45));
        }

        await using var app = Start(new()
        {
            ["Read:RateLimits:Predict:PermitLimit"] = "3", ["Read:RateLimits:Predict:WindowSeconds"] = "600",
            [$"Read:RateLimits:Tenants:{tenant}:Predict:PermitLimit"] = "1", [$"Read:RateLimits:Tenants:{tenant}:Predict:WindowSeconds"] = "600",
        });
        using var first = app.CreateClient(firstKey);
        using var second = app.CreateClient(secondKey);
        Assert.Equal(HttpStatusCode.OK, (await first.PostAsJsonAsync($"/v1/adapters/{mine}/predict", Body("a"))).StatusCode);
        await AssertTooManyAsync(await first.PostAsJsonAsync($"/v1/adapters/{mine}/predict", Body("b")), "rate_limited");
        for (var i = 0; i < 3; i++)
            Assert.Equal(HttpStatusCode.OK, (await second.PostAsJsonAsync($"/v1/adapters/{theirs}/predict", Body("c"))).StatusCode);
        await AssertTooManyAsync(await second.PostAsJsonAsync($"/v1/adapters/{theirs}/predict", Body("d")), "rate_limited");
    }

    [Fact]
    public async Task FailedAuthentication_RepeatedFromOneAddress_Returns429ButAValidKeyStillWorks()
    {
        await using var app = Start(new() { ["Read:RateLimits:FailedAuthentication:PermitLimit"] = "3", ["Read:RateLimits:FailedAuthentication:WindowSeconds"] = "600" });
        var (client, _) = await TestTenants.CreateAsync(app, "auth");
        using var guesser = app.CreateClient("rk_wrong_key_0000000000000000");
        for (var i = 0; i < 3; i++)
            await (await guesser.GetAsync("/v1/adapters")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        await AssertTooManyAsync(await guesser.GetAsync("/v1/adapters"), "too_many_failed_authentications");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/adapters")).StatusCode);
    }

    public void Dispose()
    {
        try { Directory.Delete(dataDirectory, recursive: true); } catch (IOException) { }
    }
}
