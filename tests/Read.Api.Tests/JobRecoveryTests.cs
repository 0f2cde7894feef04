using System.Security.Claims;
using Read.ServiceDefaults;
using Hangfire;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using Read.Api.Authentication;
using Read.Api.FineTuning;
using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using Read.Domain.Tenants;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Read.Api.Hosting;
using Read.Domain.Jobs;
using Read.Domain.Persistence;

namespace Read.Api.Tests;

/// <summary>Jobs survive crashes: nothing the database accepted is lost, and an interrupted job starts over cleanly.</summary>
[Collection(ServiceCollection.Name)]
public sealed class JobRecoveryTests(PostgresServiceFixture service)
{
    [Fact]
    public async Task ApiStart_WithQueuedJobThatNeverReachedHangfire_EnqueuesItAndWorkerFinishesIt()
    {
        using var client = await service.Api.CreateTenantClientAsync("orphan");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 9)));
        // The API committed the row and stopped before it could enqueue, longer ago than recovery's grace age.
        var jobId = await InsertJobAsync(fileId, JobStatus.Queued, attempts: 0, createdAt: DateTime.UtcNow - JobRecovery.GraceAge * 2);

        await using (var restarted = ReadApplication.Start(Path.Combine(service.ApiDataDirectory, "second"), service.ConnectionString))
        {
            var job = await client.WaitForJobAsync(jobId);
            Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
            Assert.Equal(1, job.GetProperty("attempts").GetInt32());
        }
    }

    [Fact]
    public async Task CreateJob_ClientGoneRightAfterTheEnqueue_StillSavesTheHangfireId()
    {
        using var client = await service.Api.CreateTenantClientAsync("gone-after-enqueue");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(16, seed: 12)));
        Guid tenantId;
        await using (var db = CreateDb())
            tenantId = await db.Files.Where(f => f.Id == fileId).Select(f => f.TenantId).SingleAsync();
        // The request is aborted the instant its job reaches Hangfire (the real client), as when the caller hangs up then.
        using var aborted = new CancellationTokenSource();
        var hangfire = new AbortOnEnqueue(service.Api.Service<IBackgroundJobClient>(), aborted);
        var user = new ClaimsPrincipal(new ClaimsIdentity([new Claim(TenantClaims.TenantId, tenantId.ToString())], "test"));
        await using (var scope = service.Api.Services.CreateAsyncScope())
        {
            var services = scope.ServiceProvider;
            try
            {
                await FineTuningApi.Create(new CreateJobRequest("tiny-bert", null, fileId, null, new ReadHyperparameters { Epochs = 1 }, null),
                    user, services.GetRequiredService<ReadDbContext>(), services.GetRequiredService<BackboneRegistry>(), hangfire,
                    services.GetRequiredService<IOptions<QuotaOptions>>(), new DefaultHttpContext(), aborted.Token);
            }
            catch (OperationCanceledException)
            {
                // Nobody is listening for the answer; what matters is what the database kept.
            }
        }

        Assert.NotNull(hangfire.EnqueuedId);
        await using (var db = CreateDb())
        {
            var job = await db.Jobs.AsNoTracking().SingleAsync(j => j.TrainingFileId == fileId);
            // Unsaved, the job sweep would take the job for one that never reached Hangfire and enqueue it again.
            Assert.Equal(hangfire.EnqueuedId, job.HangfireJobId);
            Assert.Equal(JobStatus.Succeeded, (await client.WaitForJobAsync(job.Id)).GetProperty("status").GetString());
        }
    }

    /// <summary>The real Hangfire client, cancelling the request's token once it has enqueued.</summary>
    private sealed class AbortOnEnqueue(IBackgroundJobClient inner, CancellationTokenSource abort) : IBackgroundJobClient
    {
        public string? EnqueuedId { get; private set; }

        public string Create(Hangfire.Common.Job job, Hangfire.States.IState state)
        {
            EnqueuedId = inner.Create(job, state);
            abort.Cancel();
            return EnqueuedId;
        }

        public bool ChangeState(string jobId, Hangfire.States.IState state, string expectedState) => inner.ChangeState(jobId, state, expectedState);
    }

    [Fact]
    public async Task Redelivery_OfJobLeftRunningByCrashedWorker_StartsOverAndPublishesOnce()
    {
        using var client = await service.Api.CreateTenantClientAsync("crashed");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 10)));
        // A worker died mid-job: the row says running, attempt 1, and Hangfire hands the job out again.
        var jobId = await InsertJobAsync(fileId, JobStatus.Running, attempts: 1);
        service.Api.Service<IBackgroundJobClient>()
            .Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));

        var job = await client.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal(2, job.GetProperty("attempts").GetInt32());

        // A second, late delivery of the finished job changes nothing.
        var lateDelivery = service.Api.Service<IBackgroundJobClient>()
            .Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
        await WaitForHangfireSuccessAsync(lateDelivery);
        await using var db = CreateDb();
        Assert.Equal(1, await db.Adapters.CountAsync(a => a.JobId == jobId));
        var after = await client.WaitForJobAsync(jobId);
        Assert.Equal(2, after.GetProperty("attempts").GetInt32());
    }

    [Fact]
    public async Task Delivery_OfJobRunningUnderAnotherWorkersLiveLease_ExitsUntilTheLeaseLapses()
    {
        using var client = await service.Api.CreateTenantClientAsync("leased");
        var fileId = await client.UploadOkAsync(TestData.Jsonl(TestData.Sentiment(32, seed: 11)));
        var jobId = await InsertJobAsync(fileId, JobStatus.Running, attempts: 1);
        await using (var db = CreateDb())
        {
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(u => u
                .SetProperty(j => j.LeaseOwner, "other-worker")
                .SetProperty(j => j.LeaseExpiresAt, DateTime.UtcNow.AddMinutes(10)));
        }

        // A duplicate delivery while the other worker is alive: it must not start a second run.
        var duplicate = service.Api.Service<IBackgroundJobClient>()
            .Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
        await WaitForHangfireSuccessAsync(duplicate);
        await using (var db = CreateDb())
        {
            var row = await db.Jobs.AsNoTracking().SingleAsync(j => j.Id == jobId);
            Assert.Equal((JobStatus.Running, 1, "other-worker"), (row.Status, row.Attempts, row.LeaseOwner));
            Assert.Equal(0, await db.Adapters.CountAsync(a => a.JobId == jobId));
            // The other worker dies: its lease lapses.
            await db.Jobs.Where(j => j.Id == jobId).ExecuteUpdateAsync(u => u.SetProperty(j => j.LeaseExpiresAt, DateTime.UtcNow.AddSeconds(-1)));
        }

        service.Api.Service<IBackgroundJobClient>()
            .Enqueue<FineTuneJobRunner>(FineTuneJobRunner.Queue, r => r.RunAsync(jobId, CancellationToken.None));
        var job = await client.WaitForJobAsync(jobId);
        Assert.True(job.GetProperty("status").GetString() == "succeeded", job.ToString());
        Assert.Equal(2, job.GetProperty("attempts").GetInt32());
    }

    private async Task WaitForHangfireSuccessAsync(string hangfireJobId)
    {
        using var connection = service.Api.Service<JobStorage>().GetConnection();
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (connection.GetStateData(hangfireJobId)?.Name != "Succeeded")
        {
            Assert.True(DateTime.UtcNow < deadline, $"Hangfire job {hangfireJobId} did not succeed in time");
            await Task.Delay(100);
        }
    }

    private ReadDbContext CreateDb() => service.Worker.Services.GetRequiredService<IDbContextFactory<ReadDbContext>>().CreateDbContext();

    private async Task<string> InsertJobAsync(string fileId, string status, int attempts, DateTime? createdAt = null)
    {
        await using var db = CreateDb();
        var tenantId = (await db.Files.SingleAsync(f => f.Id == fileId)).TenantId;
        var jobId = "ftjob-" + Guid.NewGuid().ToString("N");
        db.Jobs.Add(new FineTuneJob
        {
            Id = jobId, TenantId = tenantId, BackboneId = "tiny-bert", TrainingFileId = fileId,
            HyperparametersJson = "{\"epochs\":1}", Status = status, Attempts = attempts,
            CreatedAt = createdAt ?? DateTime.UtcNow, StartedAt = status == JobStatus.Running ? DateTime.UtcNow : null,
        });
        await db.SaveChangesAsync();
        return jobId;
    }
}
