namespace Read.Domain.Tenants;

/// <summary>A customer account. Every other row belongs to exactly one tenant.</summary>
public sealed class Tenant
{
    public required Guid Id { get; init; }
    public required string Name { get; set; }
    public required DateTime CreatedAt { get; init; }
    /// <summary>Queued plus running jobs allowed at once; null uses Read:Quotas:MaxConcurrentJobs.</summary>
    public int? MaxConcurrentJobs { get; set; }
    /// <summary>Bytes of dataset files the tenant may hold; null uses Read:Quotas:MaxStorageBytes.</summary>
    public long? MaxStorageBytes { get; set; }
}
