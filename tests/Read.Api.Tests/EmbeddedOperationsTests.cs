using System.Net.Http.Json;
using System.Text.Json;
using Read.Api.Webhooks;

namespace Read.Api.Tests;

/// <summary>Webhooks, receipts and the cache budget on the embedded default (SQLite triggers, in-process training).</summary>
[Collection(ServiceCollection.Name)]
public sealed class EmbeddedOperationsTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_ops_key";
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-embedded-ops-").FullName;

    [Fact]
    public async Task Embedded_TwoJobsUnderAZeroCacheBudget_WebhooksFireReceiptsIssueAndOnlyTheLiveCacheStays()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null, new Dictionary<string, string?>
        {
            ["Read:DevelopmentApiKey"] = DevelopmentKey,
            ["Read:Webhooks:AllowPrivateNetworks"] = "true",
            ["Read:Webhooks:PollInterval"] = "00:00:00.100",
            ["Read:Training:CacheDiskBudgetBytes"] = "0",
            ["Read:Training:CacheMinimumIdle"] = "00:00:00",
        });
        using var client = app.CreateClient(DevelopmentKey);
        var registered = await client.PostAsJsonAsync("/v1/webhooks", new { url = receiver.Url, events = new[] { "succeeded" } });
        registered.EnsureSuccessStatusCode();

        var jobs = new List<string>();
        foreach (var seed in new[] { 91, 92 })
        {
            var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed)));
            var id = (await client.CreateJobOkAsync(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } }))
                .GetProperty("id").GetString()!;
            Assert.Equal("succeeded", (await client.WaitForJobAsync(id)).GetProperty("status").GetString());
            jobs.Add(id);
        }

        foreach (var id in jobs)
            await receiver.WaitForAsync(r => JsonDocument.Parse(r.Body).RootElement.GetProperty("data").GetProperty("id").GetString() == id);
        Assert.Equal(2, receiver.Requests.Count);

        var receipt = await (await client.GetAsync($"/v1/fine-tuning/jobs/{jobs[1]}/receipt")).JsonAsync();
        Assert.True(receipt.GetProperty("backbone_tokens_processed").GetInt64() > 0, receipt.ToString());

        // Budget 0: when the second job started training, the first job's cache (idle, unheld) was evicted; its own was held.
        var caches = await (await app.CreateClient(ReadApplication.AdminKey).GetAsync("/v1/caches")).JsonAsync();
        var held = caches.GetProperty("data").EnumerateArray().ToList();
        Assert.Single(held);
        Assert.Equal(receipt.GetProperty("cache_bytes").GetInt64(), held[0].GetProperty("bytes").GetInt64());
    }

    [Fact]
    public async Task WebhookClient_NameResolvingToLoopbackWithoutAllowance_RefusedAtConnectAndNothingArrives()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        using var http = WebhookDispatcher.CreateClient(new WebhookOptions { AllowPrivateNetworks = false });
        // "localhost" passes no literal-address check: only the connect-time check after DNS can stop it.
        var url = receiver.Url.Replace("127.0.0.1", "localhost", StringComparison.Ordinal);
        var error = await Assert.ThrowsAsync<HttpRequestException>(() => http.PostAsync(url, new StringContent("{}")));
        Assert.Contains("no public address", error.Message);
        Assert.Empty(receiver.Requests);

        using var allowed = WebhookDispatcher.CreateClient(new WebhookOptions { AllowPrivateNetworks = true });
        (await allowed.PostAsync(url, new StringContent("{}"))).EnsureSuccessStatusCode();
        Assert.Single(receiver.Requests);
    }

    public void Dispose()
    {
        try { Directory.Delete(_dataDirectory, recursive: true); } catch (IOException) { }
    }
}
