using Read.Domain.Jobs;

namespace Read.Api.Tests;

/// <summary>
/// One run per job, decided by the database: a duplicate Hangfire delivery of a running job is refused, and only a lease
/// that lapsed (a crashed worker) may be claimed again.
/// </summary>
public sealed class JobLeaseTests : IAsyncLifetime
{
    private static readonly TimeSpan Duration = TimeSpan.FromMinutes(2);
    private JobsDatabase _db = null!;

    public async Task InitializeAsync() => _db = await JobsDatabase.CreateAsync();

    public async Task DisposeAsync() => await _db.DisposeAsync();

    [Fact]
    public async Task ConcurrentClaims_OfOneQueuedJob_ExactlyOneWins()
    {
        var leases = new JobLeases(_db.Factory);
        for (var round = 0; round < 10; round++)
        {
            var jobId = await _db.InsertJobAsync(JobStatus.Queued);
            using var start = new Barrier(2);
            var claims = Enumerable.Range(0, 2).Select(i => Task.Factory.StartNew(() =>
            {
                start.SignalAndWait();
                return leases.TryClaimAsync(jobId, $"worker-{i}", Duration, CancellationToken.None).GetAwaiter().GetResult();
            }, TaskCreationOptions.LongRunning)).ToList();

            var results = await Task.WhenAll(claims);
            var winner = Assert.Single(results, r => r is not null)!;
            var row = await _db.JobAsync(jobId);
            Assert.Equal(JobStatus.Running, row.Status);
            Assert.Equal(1, row.Attempts);
            Assert.Equal(winner.LeaseOwner, row.LeaseOwner);
            Assert.True(row.LeaseExpiresAt > DateTime.UtcNow);
        }
    }

    [Fact]
    public async Task Claim_OfRunningJobWithLiveLease_IsRefusedAndLeavesTheRowAlone()
    {
        var leases = new JobLeases(_db.Factory);
        var jobId = await _db.InsertJobAsync(JobStatus.Queued);
        Assert.NotNull(await leases.TryClaimAsync(jobId, "first", Duration, CancellationToken.None));

        Assert.Null(await leases.TryClaimAsync(jobId, "duplicate-delivery", Duration, CancellationToken.None));
        var row = await _db.JobAsync(jobId);
        Assert.Equal("first", row.LeaseOwner);
        Assert.Equal(1, row.Attempts);
        // The holder renews; someone else cannot.
        Assert.True(await leases.RenewAsync(jobId, "first", Duration, CancellationToken.None));
        Assert.False(await leases.RenewAsync(jobId, "duplicate-delivery", Duration, CancellationToken.None));
    }

    [Fact]
    public async Task Claim_OfRunningJobWithExpiredLease_ReclaimsAsANewAttempt()
    {
        var leases = new JobLeases(_db.Factory);
        var jobId = await _db.InsertJobAsync(JobStatus.Queued);
        Assert.NotNull(await leases.TryClaimAsync(jobId, "crashed", TimeSpan.FromMilliseconds(1), CancellationToken.None));
        await Task.Delay(50);

        var reclaimed = await leases.TryClaimAsync(jobId, "survivor", Duration, CancellationToken.None);
        Assert.NotNull(reclaimed);
        Assert.Equal("survivor", reclaimed.LeaseOwner);
        Assert.Equal(2, reclaimed.Attempts);
        // The crashed run's heartbeat, were it to come back, finds the job taken.
        Assert.False(await leases.RenewAsync(jobId, "crashed", Duration, CancellationToken.None));
    }

    [Fact]
    public async Task Release_ClearsTheLease_SoARedeliveryClaimsAtOnce()
    {
        var leases = new JobLeases(_db.Factory);
        var jobId = await _db.InsertJobAsync(JobStatus.Queued);
        Assert.NotNull(await leases.TryClaimAsync(jobId, "stopping", Duration, CancellationToken.None));

        await leases.ReleaseAsync(jobId, "stopping"); // worker shutting down: the job stays running, the lease goes
        var row = await _db.JobAsync(jobId);
        Assert.Equal(JobStatus.Running, row.Status);
        Assert.Null(row.LeaseOwner);
        Assert.Null(row.LeaseExpiresAt);
        Assert.NotNull(await leases.TryClaimAsync(jobId, "redelivery", Duration, CancellationToken.None));
    }
}
