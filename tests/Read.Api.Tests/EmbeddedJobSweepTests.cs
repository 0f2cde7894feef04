using Microsoft.EntityFrameworkCore;
using Read.Domain.Jobs;
using Read.Domain.Persistence;
using Read.ServiceDefaults;

namespace Read.Api.Tests;

/// <summary>
/// The embedded API is its own worker, so it runs the periodic job sweep too: a job committed but never enqueued (the
/// enqueue after the commit was lost) is picked up while the process runs, not only at its next start.
/// </summary>
public sealed class EmbeddedJobSweepTests : IDisposable
{
    private const string DevelopmentKey = "rk_development_sweep_key";
    private readonly string _dataDirectory = Directory.CreateTempSubdirectory("read-embedded-sweep-").FullName;

    [Fact]
    public async Task JobCommittedButNeverEnqueued_IsPickedUpByTheSweepWithoutARestart()
    {
        await using var app = ReadApplication.Start(_dataDirectory, postgres: null,
            new Dictionary<string, string?> { ["Read:DevelopmentApiKey"] = DevelopmentKey, ["Read:JobSweepInterval"] = "00:00:01" });
        using var client = app.CreateClient(DevelopmentKey);
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 12)));

        // Inserted after start-up recovery ran, older than the grace age, with no Hangfire job: only a sweep can find it.
        var jobId = "ftjob-" + Guid.NewGuid().ToString("N");
        await using (var db = await app.Service<IDbContextFactory<ReadDbContext>>().CreateDbContextAsync())
        {
            var tenantId = (await db.Files.SingleAsync(f => f.Id == fileId)).TenantId;
            db.Jobs.Add(new FineTuneJob
            {
                Id = jobId, TenantId = tenantId, BackboneId = "tiny-bert", TrainingFileId = fileId, HyperparametersJson = "{\"epochs\":1}",
                Status = JobStatus.Queued, CreatedAt = DateTime.UtcNow - JobRecovery.GraceAge * 2,
            });
            await db.SaveChangesAsync();
        }

        var job = await client.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
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
