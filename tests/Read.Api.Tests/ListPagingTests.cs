using System.Net;
using Microsoft.EntityFrameworkCore;
using Read.Domain.Adapters;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>The jobs and adapters lists page like every tenant list: newest first, limit, after (an id), has_more.</summary>
[Collection(ServiceCollection.Name)]
public sealed class ListPagingTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task ListJobs_PagedByCursor_NoOverlapAllSeenAndTiesOrderedById()
    {
        using var client = await service.Api.CreateTenantClientAsync("paged-jobs");
        var tenant = await TenantOfAsync(client);
        // Finished rows (no worker involved); two share a creation time, so the cursor must break the tie by id.
        var at = DateTime.UtcNow.AddMinutes(-5);
        var ids = await InsertAsync(db => new[] { at, at.AddSeconds(1), at.AddSeconds(1), at.AddSeconds(2) }.Select(createdAt =>
        {
            var job = new FineTuneJob
            {
                Id = "ftjob-" + Guid.NewGuid().ToString("N"), TenantId = tenant, BackboneId = "tiny-bert", TrainingFileId = "file-x",
                HyperparametersJson = "{}", Status = JobStatus.Cancelled, CreatedAt = createdAt,
            };
            db.Jobs.Add(job);
            return (job.Id, job.CreatedAt);
        }).ToList());

        await AssertPagesAsync(client, "/v1/fine-tuning/jobs", ids);
    }

    [Fact]
    public async Task ListAdapters_PagedByCursor_NoOverlapAllSeenAndTiesOrderedById()
    {
        using var client = await service.Api.CreateTenantClientAsync("paged-adapters");
        var tenant = await TenantOfAsync(client);
        var at = DateTime.UtcNow.AddMinutes(-5);
        var ids = await InsertAsync(db => new[] { at, at.AddSeconds(1), at.AddSeconds(1), at.AddSeconds(2) }.Select(createdAt =>
        {
            var adapter = new AdapterRecord
            {
                Id = "adapter-" + Guid.NewGuid().ToString("N"), TenantId = tenant, JobId = "ftjob-" + Guid.NewGuid().ToString("N"),
                BackboneId = "tiny-bert", BackboneWeightsHash = "none", ConfigJson = "{}", MetricsJson = "{}", Artifact = [1, 2, 3],
                SizeBytes = 3, Sha256 = "", CreatedAt = createdAt,
            };
            db.Adapters.Add(adapter);
            return (adapter.Id, adapter.CreatedAt);
        }).ToList());

        await AssertPagesAsync(client, "/v1/adapters", ids);
    }

    /// <summary>Pages of two through the list: every row once, newest first then by id descending; bad limit and cursors are 400.</summary>
    private async Task AssertPagesAsync(HttpClient client, string path, List<(string Id, DateTime CreatedAt)> rows)
    {
        var expected = rows.OrderByDescending(r => r.CreatedAt).ThenByDescending(r => r.Id, StringComparer.Ordinal).Select(r => r.Id).ToList();
        var seen = new List<string>();
        string? after = null;
        var pages = 0;
        while (true)
        {
            var page = await (await client.GetAsync($"{path}?limit=2{(after is null ? "" : $"&after={after}")}")).JsonAsync();
            Assert.Equal("list", page.GetProperty("object").GetString());
            var ids = page.GetProperty("data").EnumerateArray().Select(r => r.GetProperty("id").GetString()!).ToList();
            Assert.InRange(ids.Count, 1, 2);
            seen.AddRange(ids);
            pages++;
            if (!page.GetProperty("has_more").GetBoolean())
                break;
            after = ids[^1];
        }
        Assert.Equal(expected, seen);
        Assert.Equal(2, pages);

        await (await client.GetAsync($"{path}?limit=0")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_limit");
        await (await client.GetAsync($"{path}?limit=101")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_limit");
        await (await client.GetAsync($"{path}?after=nothing-with-this-id")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_cursor");
        // Another tenant's row is no cursor: it must not even reveal that the id exists.
        using var stranger = await service.Api.CreateTenantClientAsync("paged-stranger");
        await (await stranger.GetAsync($"{path}?after={expected[0]}")).AssertProblemAsync(HttpStatusCode.BadRequest, "invalid_cursor");
    }

    private async Task<Guid> TenantOfAsync(HttpClient client)
    {
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(4, seed: 70)));
        await using var db = await service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        return await db.Files.Where(f => f.Id == fileId).Select(f => f.TenantId).SingleAsync();
    }

    private async Task<List<(string Id, DateTime CreatedAt)>> InsertAsync(Func<ReadDbContext, List<(string Id, DateTime CreatedAt)>> add)
    {
        await using var db = await service.Api.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync();
        var rows = add(db);
        await db.SaveChangesAsync();
        return rows;
    }
}
