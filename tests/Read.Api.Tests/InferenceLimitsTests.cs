using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
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

    private static async Task WaitUntilAsync(Func<bool> condition, string what, int seconds = 30)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < TimeSpan.FromSeconds(seconds))
            await Task.Delay(20);
        Assert.True(condition(), $"timed out after {seconds} s waiting for {what}");
    }

    private async Task<(HttpClient Client, string AdapterId, Backbone Backbone, InferenceBatcher Batcher)> PublishedAsync(ReadApplication app, string name, int seed)
    {
        var (client, tenant) = await TestTenants.CreateAsync(app, name);
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var id = await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, seed));
        return (client, id, backbone, app.Service<InferenceBatcher>());
    }

    [Fact]
    public async Task BatchingOff_WhenTheQueueIsFull_Returns429AtOnce_WhileTheWaitingHoldNoThreads()
    {
        // With batching off each request used to block a thread-pool thread on the backbone's lock: with a long forward
        // running, the admitted requests starved the pool, and the next request's handler (and its 429) waited for threads.
        const int capacity = 48;
        await using var app = Start(new() { ["Read:Inference:Batching"] = "false", ["Read:Inference:MaxQueuedRequests"] = $"{capacity}" });
        var (client, id, backbone, batcher) = await PublishedAsync(app, "off", 46);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("warm up"))).StatusCode);
        var threadsBefore = ThreadPool.ThreadCount;
        var clock = Stopwatch.StartNew();
        List<Task<HttpResponseMessage>> admitted;
        int addedThreads;
        await using (var forward = await LongForward.StartAsync(backbone))
        {
            admitted = Enumerable.Range(0, capacity).Select(i => client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body($"text {i}"))).ToList();
            await WaitUntilAsync(() => batcher.QueueDepth == capacity, "the queue to fill");

            await AssertTooManyAsync(await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("one more")), "inference_queue_full");
            await AssertTooManyAsync(await client.PostAsJsonAsync("/v1/predict", new { inputs = new[] { new { adapter = id, text = "and one more" } } }), "inference_queue_full");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"the 429 took {clock.Elapsed}");
            addedThreads = ThreadPool.ThreadCount - threadsBefore;
        }

        Assert.All(await Task.WhenAll(admitted), r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.True(addedThreads < capacity / 2, $"{addedThreads} thread-pool threads were added while {capacity} requests waited");
        Assert.Equal(0, batcher.QueueDepth);
    }

    [Fact]
    public async Task Predict_AbandonedWhileQueued_GivesItsPlaceBackAtOnce()
    {
        await using var app = Start(new() { ["Read:Inference:MaxQueuedRequests"] = "2", ["Read:Inference:MaxBatchDelayMs"] = "0" });
        var (client, id, backbone, batcher) = await PublishedAsync(app, "abandon", 47);
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("warm up"))).StatusCode);
        var forwards = batcher.BatchesRun;
        await using var forward = await LongForward.StartAsync(backbone);

        var running = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("a"));
        await WaitUntilAsync(() => batcher.BatchesRun == forwards + 1, "the first forward to start"); // and wait on the lock
        using var abandon = new CancellationTokenSource();
        var abandoned = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("b"), abandon.Token);
        await WaitUntilAsync(() => batcher.QueueDepth == 2, "the second request to queue");
        await abandon.CancelAsync(); // the client goes away

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        await WaitUntilAsync(() => batcher.QueueDepth == 1, "the abandoned request's place", seconds: 10); // the forward still runs
        var next = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("c")); // takes the freed place: no 429
        await WaitUntilAsync(() => batcher.QueueDepth == 2, "the next request to queue");
        forward.Release();
        Assert.Equal(HttpStatusCode.OK, (await running).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await next).StatusCode);
    }

    [Fact]
    public async Task MixedPredict_OverMoreAdaptersThanTheQueueHolds_IsAdmittedOnce()
    {
        // Each adapter's part used to take a place of its own: with room for one request, a request over three adapters
        // was partly queued and then refused, and could never succeed.
        await using var app = Start(new() { ["Read:Inference:MaxQueuedRequests"] = "1" });
        var (client, tenant) = await TestTenants.CreateAsync(app, "mixed-once");
        var backbone = app.Service<BackboneRegistry>().Get(BackboneRegistry.TinyBackboneId);
        var ids = new List<string>();
        for (var seed = 48; seed < 51; seed++)
            ids.Add(await TestAdapters.PublishAsync(app, tenant, TestAdapters.Artifact(backbone, seed)));

        var response = await client.PostAsJsonAsync("/v1/predict", new { inputs = ids.Select((id, i) => new { adapter = id, text = $"text {i}" }).ToArray() });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(3, (await response.JsonAsync()).GetProperty("predictions").GetArrayLength());
        Assert.Equal(0, app.Service<InferenceBatcher>().QueueDepth);
    }

    [Fact]
    public async Task Predict_WhenTheQueueIsFull_Answers429WithoutWaitingForTheBody()
    {
        // Admission comes before the body is read: a refused request costs no parsing, lookup or load, and what is held
        // before admission is its headers only.
        await using var app = Start(new() { ["Read:Inference:MaxQueuedRequests"] = "1", ["Read:Inference:MaxBatchDelayMs"] = "5000" });
        var (client, id, _, batcher) = await PublishedAsync(app, "headers", 51);
        var admitted = client.PostAsJsonAsync($"/v1/adapters/{id}/predict", Body("first"));
        await WaitUntilAsync(() => batcher.QueueDepth == 1, "the first request's admission");

        // Headers and the start of a body that never comes.
        using var socket = new TcpClient();
        await socket.ConnectAsync(client.BaseAddress!.Host, client.BaseAddress.Port);
        var stream = socket.GetStream();
        var head = $"POST /v1/adapters/{id}/predict HTTP/1.1\r\nHost: {client.BaseAddress.Authority}\r\n" +
                   $"Authorization: Bearer {client.DefaultRequestHeaders.Authorization!.Parameter}\r\nContent-Type: application/json\r\n" +
                   "Content-Length: 100000\r\n\r\n{\"inputs\": [";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head));
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = await stream.ReadAsync(buffer, timeout.Token);
        var response = Encoding.ASCII.GetString(buffer, 0, read);

        Assert.StartsWith("HTTP/1.1 429", response, StringComparison.Ordinal);
        Assert.Contains("Retry-After: 1", response, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("inference_queue_full", response, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, (await admitted).StatusCode);
    }

    [Fact]
    public async Task BothPredictEndpoints_BodyOverTheLimitDerivedFromTheInputLimits_Return413()
    {
        // Two inputs of at most 100 characters: no body needs anywhere near 8 KB. Padded with JSON whitespace, this one is
        // valid, and was read, parsed and served before.
        await using var app = Start(new() { ["Read:MaxPredictBatch"] = "2", ["Read:MaxPredictTextChars"] = "100" });
        var (client, id, _, batcher) = await PublishedAsync(app, "too-large", 52);
        var padding = new string(' ', 8000);
        var single = $"{{\"inputs\": [{{\"text\": \"fine\"}}]{padding}}}";
        var mixed = $"{{\"inputs\": [{{\"adapter\": \"{id}\", \"text\": \"fine\"}}]{padding}}}";

        await (await client.PostAsync($"/v1/adapters/{id}/predict", Json(single))).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        await (await client.PostAsync("/v1/predict", Json(mixed))).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        // Sent chunked (no Content-Length), it is cut off while read.
        using var chunked = new ChunkedJson(Encoding.UTF8.GetBytes(single));
        await (await client.PostAsync($"/v1/adapters/{id}/predict", chunked)).AssertProblemAsync(HttpStatusCode.RequestEntityTooLarge, "payload_too_large");
        // Without the padding it is served.
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/adapters/{id}/predict", Json(single.Replace(padding, "", StringComparison.Ordinal)))).StatusCode);
        Assert.Equal(0, batcher.QueueDepth);
    }

    private static StringContent Json(string body) => new(body, Encoding.UTF8, "application/json");

    /// <summary>JSON sent with chunked transfer encoding: its length is not known up front.</summary>
    private sealed class ChunkedJson : HttpContent
    {
        private readonly byte[] body;

        public ChunkedJson(byte[] body)
        {
            this.body = body;
            Headers.ContentType = new("application/json");
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => stream.WriteAsync(body).AsTask();

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
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
