using Read.ServiceDefaults;
using Hangfire;
using Hangfire.Common;
using Hangfire.States;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Read.Domain.Configuration;
using Read.Domain.Jobs;

namespace Read.Api.Tests;

/// <summary>The worker's periodic sweep on the real database, with a Hangfire client whose storage is down.</summary>
public sealed class JobLeaseSweepTests
{
    [Fact]
    public async Task Sweep_EnqueueThrows_GivesTheOrphanClaimBackForTheNextSweep()
    {
        await using var db = await JobsDatabase.CreateAsync();
        var jobId = await db.InsertJobAsync(JobStatus.Queued, createdAt: DateTime.UtcNow.AddMinutes(-5)); // committed, never enqueued
        var sweep = new JobLeaseSweep(db.Factory, new UnavailableHangfire(), Options.Create(new ReadOptions()), NullLogger<JobLeaseSweep>.Instance);

        await Assert.ThrowsAsync<InvalidOperationException>(() => sweep.SweepAsync(CancellationToken.None));

        var job = await db.JobAsync(jobId);
        Assert.Null(job.HangfireJobId); // not left as a "recovering:" claim that would block sweeps for a minute
        Assert.Equal(JobStatus.Queued, job.Status);
    }

    /// <summary>Hangfire's client when its storage cannot be reached: every create throws.</summary>
    private sealed class UnavailableHangfire : IBackgroundJobClient
    {
        public string Create(Job job, IState state) => throw new InvalidOperationException("Hangfire storage unavailable.");
        public bool ChangeState(string jobId, IState state, string expectedState) => throw new InvalidOperationException("Hangfire storage unavailable.");
    }
}
