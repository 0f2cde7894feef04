namespace Read.Domain.Jobs;

/// <summary>
/// One run's hold on its job row (<see cref="FineTuneJob.LeaseOwner"/>, <see cref="FineTuneJob.LeaseExpiresAt"/>), shared by
/// the lease watcher and the checkpoint writes, which both renew it. The run knows its lease only up to the last expiry it
/// wrote: a database error does not end it, but once that expiry is near with no renewal through, another worker may take
/// the job at any moment, so the run stops itself (<see cref="Lost"/>) a margin before the expiry rather than train beside
/// the next one (docs/decisions/014-checkpoints-leases.md).
/// </summary>
internal sealed class JobLease(string owner, TimeSpan duration, DateTime firstExpiry)
{
    private long _confirmedUntilTicks = firstExpiry.Ticks;
    private volatile bool _lost;

    public string Owner { get; } = owner;

    public TimeSpan Duration { get; } = duration;

    /// <summary>Renewed when less than this is left of it (every third of the duration on a healthy worker).</summary>
    public TimeSpan RenewWhenLeft => Duration - Duration / 3;

    /// <summary>The expiry this run last wrote (and saw committed).</summary>
    public DateTime ConfirmedUntil => new(Interlocked.Read(ref _confirmedUntilTicks), DateTimeKind.Utc);

    /// <summary>
    /// Half a renewal interval before the expiry: past this without a renewal, the run gives the job up. The margin covers
    /// the time the training thread takes to notice (one batch) and clock drift between workers.
    /// </summary>
    public DateTime GiveUpAt => ConfirmedUntil - Duration / 6;

    /// <summary>Another worker holds the job, or this run could not renew before <see cref="GiveUpAt"/>: it must stop and write nothing more.</summary>
    public bool Lost => _lost;

    public DateTime NextExpiry() => DateTime.UtcNow + Duration;

    public void Confirm(DateTime expiry)
    {
        var current = Interlocked.Read(ref _confirmedUntilTicks);
        while (expiry.Ticks > current)
        {
            var seen = Interlocked.CompareExchange(ref _confirmedUntilTicks, expiry.Ticks, current);
            if (seen == current)
                return;
            current = seen;
        }
    }

    public void MarkLost() => _lost = true;
}
