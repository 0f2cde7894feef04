namespace Read.Domain.FineTuning;

/// <summary>Disk budget for activation caches (configuration section "Read:Training").</summary>
public sealed class ActivationCacheStoreOptions
{
    public const string Section = "Read:Training";

    /// <summary>Bytes the activation-cache directory may hold; least recently used caches go first. Null: no limit.</summary>
    public long? CacheDiskBudgetBytes { get; set; }

    /// <summary>
    /// A cache used this recently is never evicted, even when no reader holds it: it covers the moment between a writer
    /// renaming its file into place and opening it, when no handle says "in use" yet.
    /// </summary>
    public TimeSpan CacheMinimumIdle { get; set; } = TimeSpan.FromMinutes(5);
}
