namespace Read.Domain.Webhooks;

/// <summary>
/// The webhook outbox: one row per job status change, written by a database trigger in the same statement as the change
/// itself (see the WebhooksReceiptsQuotasSweeps migration), so no code path that moves a job can forget it and a crash
/// between the change and its delivery loses nothing.
/// </summary>
public sealed class JobStateChange
{
    public long Id { get; init; }
    public required string JobId { get; init; }
    public required Guid TenantId { get; init; }
    public required string Status { get; init; }
    public required DateTime OccurredAt { get; init; }
    /// <summary>Set once the dispatcher has turned the change into one delivery per matching endpoint.</summary>
    public DateTime? FannedOutAt { get; set; }
}
