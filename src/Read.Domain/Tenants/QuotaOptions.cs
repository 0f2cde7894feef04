namespace Read.Domain.Tenants;

/// <summary>Default per-tenant limits (configuration section "Read:Quotas"); a tenant's own values override them. Null is unlimited.</summary>
public sealed class QuotaOptions
{
    public const string Section = "Read:Quotas";

    /// <summary>Queued plus running jobs one tenant may have at once (429 concurrent_job_limit beyond it).</summary>
    public int? MaxConcurrentJobs { get; set; }

    /// <summary>Bytes of dataset files one tenant may hold (403 storage_quota_exceeded beyond it).</summary>
    public long? MaxStorageBytes { get; set; }
}
