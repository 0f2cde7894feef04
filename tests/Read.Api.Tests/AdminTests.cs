using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace Read.Api.Tests;

[Collection(ServiceCollection.Name)]
public sealed class AdminTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task RevokeKey_KeyInUse_Answers401OnTheVeryNextRequest()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var (tenantId, client) = await CreateTenantAsync(admin, "revoked");
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1/files")).StatusCode);
        var keys = (await (await admin.GetAsync($"/v1/admin/tenants/{tenantId}/keys")).JsonAsync()).GetProperty("data").EnumerateArray().ToList();
        var keyId = Assert.Single(keys).GetProperty("id").GetString();

        Assert.Equal(HttpStatusCode.NoContent, (await admin.DeleteAsync($"/v1/admin/keys/{keyId}")).StatusCode);
        await (await client.GetAsync("/v1/files")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        await (await admin.DeleteAsync($"/v1/admin/keys/{keyId}")).AssertProblemAsync(HttpStatusCode.Conflict, "key_already_revoked");
        await (await admin.DeleteAsync($"/v1/admin/keys/{Guid.NewGuid()}")).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
        var after = (await (await admin.GetAsync($"/v1/admin/tenants/{tenantId}/keys")).JsonAsync()).GetProperty("data")[0];
        Assert.True(after.TryGetProperty("revoked_at", out _));
    }

    [Fact]
    public async Task RotateKey_RevokeExisting_NewKeyWorksAndOldOneDoesNot()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var (tenantId, old) = await CreateTenantAsync(admin, "rotated");
        var keep = await admin.PostAsJsonAsync($"/v1/admin/tenants/{tenantId}/keys", new { revoke_existing = false });
        Assert.Equal(HttpStatusCode.Created, keep.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await old.GetAsync("/v1/files")).StatusCode); // a plain rotation keeps the old key for a grace period

        var rotated = await (await admin.PostAsJsonAsync($"/v1/admin/tenants/{tenantId}/keys", new { revoke_existing = true })).JsonAsync();
        Assert.Equal(2, rotated.GetProperty("revoked_keys").GetInt32());
        using var fresh = service.Api.CreateClient(rotated.GetProperty("api_key").GetString());
        Assert.Equal(HttpStatusCode.OK, (await fresh.GetAsync("/v1/files")).StatusCode);
        await (await old.GetAsync("/v1/files")).AssertProblemAsync(HttpStatusCode.Unauthorized, "invalid_api_key");
        await (await admin.PostAsJsonAsync($"/v1/admin/tenants/{Guid.NewGuid()}/keys", new { })).AssertProblemAsync(HttpStatusCode.NotFound, "not_found");
    }

    [Fact]
    public async Task ListTenants_PagedByCursor_EachTenantOnceNewestFirst()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var created = new List<string>();
        for (var i = 0; i < 3; i++)
            created.Add((await CreateTenantAsync(admin, $"paged-{i}")).TenantId);

        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        do
        {
            var page = await (await admin.GetAsync($"/v1/admin/tenants?limit=2{(after is null ? "" : $"&after={after}")}")).JsonAsync();
            var ids = page.GetProperty("data").EnumerateArray().Select(t => t.GetProperty("id").GetString()!).ToList();
            Assert.InRange(ids.Count, 1, 2);
            seen.AddRange(ids);
            after = ids[^1];
            pages++;
            if (!page.GetProperty("has_more").GetBoolean())
                break;
        } while (pages < 1000);
        Assert.Equal(seen.Count, seen.Distinct().Count());
        // Newest first: the three just created lead the list, last one first.
        Assert.Equal(created.AsEnumerable().Reverse(), seen.Take(3));

        await (await admin.GetAsync("/v1/admin/tenants?limit=0")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_limit");
        await (await admin.GetAsync("/v1/admin/tenants?limit=101")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_limit");
        await (await admin.GetAsync($"/v1/admin/tenants?after={Guid.NewGuid()}")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_cursor");
        using var tenant = await service.Api.CreateTenantClientAsync("not-admin");
        await (await tenant.GetAsync("/v1/admin/tenants")).AssertProblemAsync(HttpStatusCode.Forbidden, "forbidden");
    }

    [Fact]
    public async Task Quota_ConcurrentJobs_SecondJob429UntilTheFirstEnds()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var (tenantId, client) = await CreateTenantAsync(admin, "quota-jobs");
        var set = await admin.PutAsJsonAsync($"/v1/admin/tenants/{tenantId}/quotas", new { max_concurrent_jobs = 1 });
        Assert.Equal(1, (await set.JsonAsync()).GetProperty("max_concurrent_jobs").GetInt32());
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 51)));
        object Job() => new { backbone = "tiny-bert", training_file = fileId, hyperparameters = new { epochs = 1000, early_stopping_patience = 0 } }; // runs until cancelled

        var first = (await client.CreateJobOkAsync(Job())).GetProperty("id").GetString()!;
        await (await client.PostAsJsonAsync("/v1/fine-tuning/jobs", Job())).AssertProblemAsync(HttpStatusCode.TooManyRequests, "concurrent_job_limit");
        Assert.Equal(HttpStatusCode.OK, (await client.PostAsync($"/v1/fine-tuning/jobs/{first}/cancel", null)).StatusCode);
        var next = (await client.CreateJobOkAsync(Job())).GetProperty("id").GetString()!;
        await client.PostAsync($"/v1/fine-tuning/jobs/{next}/cancel", null);
        await (await admin.PutAsJsonAsync($"/v1/admin/tenants/{tenantId}/quotas", new { max_concurrent_jobs = -1 }))
            .AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_quota");
    }

    [Fact]
    public async Task Quota_StorageBytes_UploadBeyondIt403AndNothingStored()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var (tenantId, client) = await CreateTenantAsync(admin, "quota-storage");
        var content = TestData.Jsonl(TestData.Sentiment(8, seed: 52));
        await admin.PutAsJsonAsync($"/v1/admin/tenants/{tenantId}/quotas", new { max_storage_bytes = content.Length + content.Length / 2 });

        await client.UploadOkAsync(content);
        await (await client.UploadAsync(content)).AssertProblemAsync(HttpStatusCode.Forbidden, "storage_quota_exceeded");
        Assert.Single((await (await client.GetAsync("/v1/files")).JsonAsync()).GetProperty("data").EnumerateArray());
    }

    [Fact]
    public async Task ListFiles_PagedByCursor_NoOverlapAndAllSeen()
    {
        using var client = await service.Api.CreateTenantClientAsync("paged-files");
        var ids = new List<string>();
        for (var i = 0; i < 3; i++)
            ids.Add(await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(4, seed: 60 + i))));
        var first = await (await client.GetAsync("/v1/files?limit=2")).JsonAsync();
        Assert.True(first.GetProperty("has_more").GetBoolean());
        var firstIds = first.GetProperty("data").EnumerateArray().Select(f => f.GetProperty("id").GetString()!).ToList();
        var second = await (await client.GetAsync($"/v1/files?limit=2&after={firstIds[^1]}")).JsonAsync();
        Assert.False(second.GetProperty("has_more").GetBoolean());
        var all = firstIds.Concat(second.GetProperty("data").EnumerateArray().Select(f => f.GetProperty("id").GetString()!)).ToList();
        Assert.Equal(ids.AsEnumerable().Reverse(), all);
    }

    [Fact]
    public async Task HangfireDashboard_AdminKeyOnly()
    {
        using var admin = service.Api.CreateClient(ReadApplication.AdminKey);
        var page = await admin.GetAsync("/hangfire");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Contains("Hangfire", await page.Content.ReadAsStringAsync());
        using var tenant = await service.Api.CreateTenantClientAsync("dashboard-peeker");
        Assert.Equal(HttpStatusCode.Forbidden, (await tenant.GetAsync("/hangfire")).StatusCode);
        using var anonymous = service.Api.CreateClient(apiKey: null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/hangfire")).StatusCode);
    }

    private async Task<(string TenantId, HttpClient Client)> CreateTenantAsync(HttpClient admin, string name)
    {
        var response = await admin.PostAsJsonAsync("/v1/admin/tenants", new { name });
        var body = await response.JsonAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body.ToString());
        return (body.GetProperty("tenant_id").GetString()!, service.Api.CreateClient(body.GetProperty("api_key").GetString()));
    }
}
