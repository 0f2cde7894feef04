namespace Read.Domain.FineTuning;

/// <summary>Fine-tuning settings of a worker (configuration section <c>Read:Training</c>).</summary>
public sealed class TrainingOptions
{
    public const string Section = "Read:Training";

    /// <summary>
    /// Memory a backbone's weights (in their storage dtype: what is resident) plus headroom may take; a backbone over it is registered
    /// layer-streamed (docs/decisions/011-layer-streamed-precompute.md). Null or 0: half the memory this process may use
    /// (the container limit, else physical memory).
    /// </summary>
    public long? MemoryBudgetBytes { get; set; }

    /// <summary>The budget in force: <see cref="MemoryBudgetBytes"/> or half the memory available to the process.</summary>
    public long EffectiveMemoryBudgetBytes =>
        MemoryBudgetBytes is > 0 and var bytes ? bytes : GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;

    /// <summary>
    /// Where activation caches live; empty for &lt;DataDirectory&gt;/activation-cache. May be a volume every worker mounts,
    /// so a job resumed on another worker reuses the cache its first worker built: writes go to a temporary file renamed
    /// into place, so two workers building one cache at once never expose a partial file (the later rename wins, and both
    /// wrote the same bytes).
    /// </summary>
    public string CacheDirectory { get; set; } = "";
}
