namespace Read.Domain.Jobs;

/// <summary>One entry of a job's ordered log: stage changes, per-epoch metrics, warnings, errors.</summary>
public sealed class JobEvent
{
    public long Id { get; init; }
    public required string JobId { get; init; }
    public required Guid TenantId { get; init; }
    public required DateTime CreatedAt { get; init; }
    /// <summary>info | warning | error</summary>
    public required string Level { get; init; }
    public required string Message { get; init; }
    public string? DataJson { get; init; }
}
