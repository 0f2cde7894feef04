using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Read.Api.Webhooks;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class WebhookTests(PostgresServiceFixture service)
{
    private const string SignatureHeader = "Read-Webhook-Signature";
    private const string TimestampHeader = "Read-Webhook-Timestamp";

    [Fact]
    public async Task Webhook_JobLifecycle_EveryStatusChangeArrivesSignedInOrder()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var client = await service.Api.CreateTenantClientAsync("hooks-lifecycle");
        var (endpointId, secret) = await RegisterAsync(client, receiver.Url);

        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 31)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;
        var job = await client.WaitForJobAsync(jobId);
        Assert.Equal("succeeded", job.GetProperty("status").GetString());
        await receiver.WaitForAsync(r => Type(r) == "fine_tuning.job.succeeded");

        var received = receiver.Requests.ToList();
        Assert.Equal(["fine_tuning.job.queued", "fine_tuning.job.running", "fine_tuning.job.succeeded"], received.Select(Type).ToArray());
        foreach (var request in received)
        {
            // Recomputed here from the documented scheme: HMAC-SHA256(secret, "{timestamp}.{body}"), hex, prefixed v1=.
            var timestamp = request.Headers[TimestampHeader];
            var expected = "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.UTF8.GetBytes($"{timestamp}.{request.Body}")));
            Assert.Equal(expected, request.Headers[SignatureHeader]);
            Assert.InRange(long.Parse(timestamp), DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds(), DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
            Assert.StartsWith("application/json", request.Headers["Content-Type"]);
            var data = JsonDocument.Parse(request.Body).RootElement.GetProperty("data");
            Assert.Equal(jobId, data.GetProperty("id").GetString());
        }
        var succeeded = JsonDocument.Parse(received[^1].Body).RootElement.GetProperty("data");
        Assert.Equal(job.GetProperty("adapter_id").GetString(), succeeded.GetProperty("adapter_id").GetString());

        // The check above can fail: over the same timestamp and body, another secret does not give the signature sent,
        // nor does the right secret over a body changed by one character.
        var first = received[0];
        string Sign(string key, string body) =>
            "v1=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(key), Encoding.UTF8.GetBytes($"{first.Headers[TimestampHeader]}.{body}")));
        Assert.Equal(first.Headers[SignatureHeader], Sign(secret, first.Body));
        Assert.NotEqual(first.Headers[SignatureHeader], Sign("whsec_" + new string('0', 64), first.Body));
        Assert.NotEqual(first.Headers[SignatureHeader], Sign(secret, first.Body.Replace("queued", "queuee", StringComparison.Ordinal)));

        var deliveries = await WaitForDeliveriesAsync(client, endpointId, d => d.Count == 3 && d.All(x => x.GetProperty("status").GetString() == "succeeded"));
        Assert.All(deliveries, d => Assert.Equal(200, d.GetProperty("attempt_log")[0].GetProperty("status_code").GetInt32()));
    }

    [Fact]
    public async Task Webhook_ReceiverAnswers500_RetriedWithSameSignedBodyAndBothAttemptsRecorded()
    {
        await using var receiver = await WebhookReceiver.StartAsync(failFirst: 1);
        using var client = await service.Api.CreateTenantClientAsync("hooks-retry");
        var (endpointId, _) = await RegisterAsync(client, receiver.Url, ["queued"]);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 32)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;

        var deliveries = await WaitForDeliveriesAsync(client, endpointId, d => d.Count == 1 && d[0].GetProperty("status").GetString() == "succeeded");
        var attempts = deliveries[0].GetProperty("attempt_log").EnumerateArray().ToList();
        Assert.Equal([500, 200], attempts.Select(a => a.GetProperty("status_code").GetInt32()).ToArray());
        Assert.Equal("HTTP 500", attempts[0].GetProperty("error").GetString());
        Assert.Equal(2, deliveries[0].GetProperty("attempts").GetInt32());

        var requests = receiver.Requests.ToList();
        Assert.Equal(2, requests.Count);
        Assert.Equal(requests[0].Body, requests[1].Body);
        Assert.Equal(requests[0].Headers["Read-Webhook-Id"], requests[1].Headers["Read-Webhook-Id"]);
        // The retry waited at least the configured base delay (300 ms) after the failure.
        Assert.True(requests[1].At - requests[0].At >= TimeSpan.FromMilliseconds(250), $"{requests[1].At - requests[0].At}");
        await client.WaitForJobAsync(jobId);
    }

    [Fact]
    public async Task Webhook_Secret_NeverAppearsInTheLogs()
    {
        // A receiver that fails once, so the dispatcher's warning path (attempt failed, retried) is logged too.
        await using var receiver = await WebhookReceiver.StartAsync(failFirst: 1);
        using var client = await service.Api.CreateTenantClientAsync("hooks-secret-logs");
        var (endpointId, secret) = await RegisterAsync(client, receiver.Url);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 34)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;
        await client.WaitForJobAsync(jobId);
        await WaitForDeliveriesAsync(client, endpointId, d => d.Count == 3 && d.All(x => x.GetProperty("status").GetString() == "succeeded"));
        await service.Api.Logs.RequestLogAsync("/v1/webhooks"); // the registration that returned the secret is logged too
        Assert.Contains(service.Api.Logs.Messages, m => m.Contains("failed", StringComparison.Ordinal) && m.Contains("Webhook delivery", StringComparison.Ordinal));

        // Everything a log reader could see: rendered messages, templates, every property value, exceptions.
        var leaks = service.Api.Logs.Events.Where(e =>
            e.RenderMessage().Contains(secret, StringComparison.Ordinal)
            || e.MessageTemplate.Text.Contains(secret, StringComparison.Ordinal)
            || e.Properties.Values.Any(v => v.ToString().Contains(secret, StringComparison.Ordinal))
            || e.Exception?.ToString().Contains(secret, StringComparison.Ordinal) == true).ToList();
        Assert.True(leaks.Count == 0, string.Join("\n", leaks.Select(e => e.RenderMessage())));
        // The hex part alone is the key material too.
        Assert.DoesNotContain(service.Api.Logs.Events, e => e.RenderMessage().Contains(secret["whsec_".Length..], StringComparison.Ordinal));
    }

    [Fact]
    public async Task Webhook_OtherTenant_NeitherSeesEndpointNorHearsItsJobs()
    {
        await using var ours = await WebhookReceiver.StartAsync();
        await using var theirs = await WebhookReceiver.StartAsync();
        using var client = await service.Api.CreateTenantClientAsync("hooks-owner");
        using var other = await service.Api.CreateTenantClientAsync("hooks-stranger");
        var (endpointId, _) = await RegisterAsync(client, ours.Url, ["succeeded"]);
        await RegisterAsync(other, theirs.Url);

        await (await other.GetAsync($"/v1/webhooks/{endpointId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await other.GetAsync($"/v1/webhooks/{endpointId}/deliveries")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        await (await other.DeleteAsync($"/v1/webhooks/{endpointId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        var listed = await (await other.GetAsync("/v1/webhooks")).JsonAsync();
        Assert.DoesNotContain(listed.GetProperty("data").EnumerateArray(), e => e.GetProperty("id").GetString() == endpointId);
        Assert.False(listed.GetProperty("data")[0].TryGetProperty("secret", out _));

        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 33)));
        var jobId = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
            .GetProperty("id").GetString()!;
        await client.WaitForJobAsync(jobId);
        await ours.WaitForAsync(r => Type(r) == "fine_tuning.job.succeeded");
        // The events filter held (only succeeded), and the other tenant's endpoint heard nothing of this job.
        Assert.Single(ours.Requests);
        Assert.DoesNotContain(theirs.Requests, r => r.Body.Contains(jobId, StringComparison.Ordinal));

        Assert.Equal(HttpStatusCode.NoContent, (await client.DeleteAsync($"/v1/webhooks/{endpointId}")).StatusCode);
        await (await client.GetAsync($"/v1/webhooks/{endpointId}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Theory]
    [InlineData("ftp://example.com/hook", "invalid_webhook_url")]
    [InlineData("file:///etc/passwd", "invalid_webhook_url")]
    [InlineData("not a url", "invalid_webhook_url")]
    [InlineData("https://user:pw@example.com/hook", "invalid_webhook_url")]
    public async Task Webhook_BadUrl_400WithCode(string url, string code)
    {
        using var client = await service.Api.CreateTenantClientAsync("hooks-bad-url");
        await (await client.PostAsJsonAsync("/v1/webhooks", new { url })).AssertProblemAsync(HttpStatusCode.BadRequest, code);
        await (await client.PostAsJsonAsync("/v1/webhooks", new { url = "https://example.com/h", events = new[] { "finished" } }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_webhook_events");
    }

    [Theory]
    [InlineData("http://127.0.0.1:8080/hook")]
    [InlineData("http://localhost/hook")]
    [InlineData("http://169.254.169.254/latest/meta-data")]
    [InlineData("http://10.1.2.3/hook")]
    [InlineData("http://[::1]/hook")]
    [InlineData("http://[fd00::1]/hook")]
    public void ValidateUrl_PrivateDestinationWithoutAllowance_Refused(string url)
    {
        Assert.NotNull(WebhooksApi.ValidateUrl(url, allowPrivateNetworks: false));
        Assert.Null(WebhooksApi.ValidateUrl(url, allowPrivateNetworks: true));
    }

    [Theory]
    [InlineData("8.8.8.8", true)]
    [InlineData("172.15.0.1", true)]
    [InlineData("172.16.0.1", false)]
    [InlineData("172.31.255.255", false)]
    [InlineData("192.168.1.1", false)]
    [InlineData("100.64.0.1", false)]
    [InlineData("0.0.0.0", false)]
    [InlineData("::ffff:10.0.0.1", false)]
    [InlineData("2001:4860:4860::8888", true)]
    [InlineData("fe80::1", false)]
    public void NetworkGuard_Address_ClassifiedAsPublicOrNot(string address, bool expected) =>
        Assert.Equal(expected, NetworkGuard.IsPublic(IPAddress.Parse(address)));

    [Fact]
    public void Backoff_Doubles_FromTheBaseDelay() =>
        Assert.Equal([10, 20, 40, 80], Enumerable.Range(1, 4).Select(n => WebhookDispatcher.Backoff(TimeSpan.FromSeconds(10), n).TotalSeconds).ToArray());

    private static string Type(WebhookReceiver.Received r) => JsonDocument.Parse(r.Body).RootElement.GetProperty("type").GetString()!;

    private static async Task<(string Id, string Secret)> RegisterAsync(HttpClient client, string url, string[]? events = null)
    {
        var response = await client.PostAsJsonAsync("/v1/webhooks", new { url, events });
        var json = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, json.ToString());
        var secret = json.GetProperty("secret").GetString()!;
        Assert.StartsWith("whsec_", secret);
        return (json.GetProperty("id").GetString()!, secret);
    }

    private static async Task<List<JsonElement>> WaitForDeliveriesAsync(HttpClient client, string endpointId, Func<List<JsonElement>, bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var page = await (await client.GetAsync($"/v1/webhooks/{endpointId}/deliveries")).JsonAsync();
            var data = page.GetProperty("data").EnumerateArray().ToList();
            if (done(data))
                return data;
            Assert.True(DateTime.UtcNow < deadline, $"deliveries never reached the expected state: {page}");
            await Task.Delay(100);
        }
    }
}
