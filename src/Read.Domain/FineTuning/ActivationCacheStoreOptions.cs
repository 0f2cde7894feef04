namespace Read.Domain.FineTuning;

/// <summary>Disk budget for activation caches (configuration section "Read:Training").</summary>
public sealed class ActivationCacheStoreOptions
{
    public const string Section = "Read:Training";

    /// <summary>Bytes the activation-cache directory may hold; least recently used caches go first. Null: no limit.</summary>
    public long? CacheDiskBudgetBytes { get; set; }

    /// <summary>
    /// A cache used this recently is never evicted, even when no reader holds it: the job that just closed it is likely
    /// followed by another on the same data (a sweep's next trial, a retry, an evaluation). A cache being written needs no
    /// such grace: its writer holds it open from before it is renamed into place.
    /// </summary>
    public TimeSpan CacheMinimumIdle { get; set; } = TimeSpan.FromMinutes(5);
}
