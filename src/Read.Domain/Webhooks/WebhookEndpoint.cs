using Read.Domain.Persistence;

namespace Read.Domain.Webhooks;

/// <summary>A tenant's URL that hears about job state changes, signed with its own secret.</summary>
public sealed class WebhookEndpoint : ITenantListed
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string Url { get; init; }
    /// <summary>Job statuses to send (queued, running, succeeded, failed, cancelled); empty means all of them.</summary>
    public required List<string> Events { get; init; }
    /// <summary>HMAC key; kept in the clear because signing needs it (shown to the tenant once, never logged).</summary>
    public required string Secret { get; init; }
    public required DateTime CreatedAt { get; init; }
}
