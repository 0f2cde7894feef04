using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>Idempotency-Key on POST /v1/files and POST /v1/fine-tuning/jobs, against the real API on Postgres.</summary>
[Collection(ServiceCollection.Name)]
public sealed class IdempotencyTests(PostgresServiceFixture service)
{
    private static HttpRequestMessage Upload(byte[] content, string key, string fileName = "data.jsonl")
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(content);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/jsonl");
        form.Add(file, "file", fileName);
        var message = new HttpRequestMessage(HttpMethod.Post, "/v1/files") { Content = form };
        message.Headers.Add("Idempotency-Key", key);
        return message;
    }

    private static HttpRequestMessage CreateJob(object body, string key)
    {
        var message = new HttpRequestMessage(HttpMethod.Post, "/v1/fine-tuning/jobs") { Content = JsonContent.Create(body) };
        message.Headers.Add("Idempotency-Key", key);
        return message;
    }

    [Fact]
    public async Task Upload_RetriedWithSameKey_ReturnsTheFirstFile_DifferentBodyIs422()
    {
        using var client = await service.Api.CreateTenantClientAsync("idem-files");
        var content = TestData.Jsonl(TestData.Sentiment(8, seed: 31));

        var first = await client.SendAsync(Upload(content, "upload-1"));
        var retry = await client.SendAsync(Upload(content, "upload-1"));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        Assert.Equal(HttpStatusCode.Created, retry.StatusCode);
        var firstId = (await first.JsonAsync()).GetProperty("id").GetString();
        Assert.Equal(firstId, (await retry.JsonAsync()).GetProperty("id").GetString());
        Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
        Assert.False(first.Headers.Contains("Idempotent-Replayed"));
        var files = await client.GetFromJsonAsync<JsonElement>("/v1/files");
        Assert.Equal(1, files.GetProperty("data").GetArrayLength());

        await (await client.SendAsync(Upload(TestData.Jsonl(TestData.Sentiment(8, seed: 32)), "upload-1")))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        // Another key is another upload.
        var other = await client.SendAsync(Upload(content, "upload-2"));
        Assert.NotEqual(firstId, (await other.JsonAsync()).GetProperty("id").GetString());
    }

    [Fact]
    public async Task CreateJob_ConcurrentRetriesWithSameKey_CreateOneJob()
    {
        using var client = await service.Api.CreateTenantClientAsync("idem-jobs");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 33)));
        var body = new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1 } };

        // A client that timed out and retried at once: the requests race.
        var responses = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => client.SendAsync(CreateJob(body, "job-key-1"))));
        var ids = new List<string>();
        foreach (var response in responses)
        {
            var json = await response.JsonAsync();
            Assert.True(response.StatusCode == HttpStatusCode.Created, json.ToString());
            ids.Add(json.GetProperty("id").GetString()!);
        }
        Assert.Single(ids.Distinct());
        await using (var db = service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContext())
            Assert.Equal(1, await db.Jobs.CountAsync(j => j.TrainingFileId == fileId));

        await (await client.SendAsync(CreateJob(new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 2 } }, "job-key-1")))
            .AssertProblemAsync(HttpStatusCode.UnprocessableEntity, "idempotency_key_reused");
        var tooLong = CreateJob(body, new string('k', 256));
        await (await client.SendAsync(tooLong)).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_idempotency_key");
        await client.WaitForJobAsync(ids[0]);
    }

    [Fact]
    public async Task CreateJob_RetriedAtTheConcurrentJobLimit_ReplaysTheFirstJob()
    {
        using var client = await TenantWithQuotasAsync("idem-job-quota", new { max_concurrent_jobs = 1 });
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 35)));
        var body = new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1000, early_stopping_patience = 0 } };

        var first = await client.SendAsync(CreateJob(body, "quota-job"));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var jobId = (await first.JsonAsync()).GetProperty("id").GetString()!;
        try
        {
            // The first job fills the quota; its retry must still get it back, not be refused for the job it created.
            var retry = await client.SendAsync(CreateJob(body, "quota-job"));
            var replayed = await retry.JsonAsync();
            Assert.True(retry.StatusCode == HttpStatusCode.Created, replayed.ToString());
            Assert.Equal(jobId, replayed.GetProperty("id").GetString());
            Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
            // A new request is still held to the quota.
            await (await client.SendAsync(CreateJob(body, "quota-job-2"))).AssertProblemAsync(HttpStatusCode.TooManyRequests, "concurrent_job_limit");
        }
        finally
        {
            // The job would train for minutes and hold the one test worker.
            Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/fine-tuning/jobs/{jobId}/cancel", null)).StatusCode);
        }
    }

    [Fact]
    public async Task Upload_RetriedAtTheStorageQuota_ReplaysTheFirstFile()
    {
        var content = TestData.Jsonl(TestData.Sentiment(8, seed: 36));
        using var client = await TenantWithQuotasAsync("idem-file-quota", new { max_storage_bytes = content.Length });

        var first = await client.SendAsync(Upload(content, "quota-upload"));
        Assert.Equal(HttpStatusCode.Created, first.StatusCode);
        var fileId = (await first.JsonAsync()).GetProperty("id").GetString();
        // The quota is now full with this very file: the retry replays it instead of counting its bytes a second time.
        var retry = await client.SendAsync(Upload(content, "quota-upload"));
        var replayed = await retry.JsonAsync();
        Assert.True(retry.StatusCode == HttpStatusCode.Created, replayed.ToString());
        Assert.Equal(fileId, replayed.GetProperty("id").GetString());
        Assert.True(retry.Headers.Contains("Idempotent-Replayed"));
        await (await client.SendAsync(Upload(content, "quota-upload-2"))).AssertProblemAsync(HttpStatusCode.Forbidden, "storage_quota_exceeded");
    }

    private async Task<HttpClient> TenantWithQuotasAsync(string name, object quotas)
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var tenant = await (await admin.PostAsJsonAsync("/v1/admin/tenants", new { name })).JsonAsync();
        var tenantId = tenant.GetProperty("tenant_id").GetString()!;
        Assert.Equal(HttpStatusCode.OK, (await admin.PutAsJsonAsync($"/v1/admin/tenants/{tenantId}/quotas", quotas)).StatusCode);
        return service.Api.CreateClient(tenant.GetProperty("api_key").GetString());
    }

    [Fact]
    public async Task IdempotencyKeys_AreScopedPerTenant()
    {
        using var first = await service.Api.CreateTenantClientAsync("idem-a");
        using var second = await service.Api.CreateTenantClientAsync("idem-b");
        var content = TestData.Jsonl(TestData.Sentiment(8, seed: 34));
        var a = await (await first.SendAsync(Upload(content, "shared-key"))).JsonAsync();
        var b = await (await second.SendAsync(Upload(content, "shared-key"))).JsonAsync();
        Assert.NotEqual(a.GetProperty("id").GetString(), b.GetProperty("id").GetString());
    }
}
