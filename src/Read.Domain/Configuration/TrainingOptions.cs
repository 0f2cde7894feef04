namespace Read.Domain.Configuration;

/// <summary>Settings of the training side (configuration section "Read:Training").</summary>
public sealed class TrainingOptions
{
    /// <summary>
    /// Where activation caches live; empty for &lt;DataDirectory&gt;/activation-cache. May be a volume every worker mounts,
    /// so a job resumed on another worker reuses the cache its first worker built: writes go to a temporary file renamed
    /// into place, so two workers building one cache at once never expose a partial file (the later rename wins, and both
    /// wrote the same bytes).
    /// </summary>
    public string CacheDirectory { get; set; } = "";
}
