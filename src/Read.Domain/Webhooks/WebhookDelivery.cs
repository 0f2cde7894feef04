namespace Read.Domain.Webhooks;

/// <summary>One event for one endpoint, retried until it is answered 2xx or runs out of attempts.</summary>
public sealed class WebhookDelivery
{
    public required string Id { get; init; }
    public required string EndpointId { get; init; }
    public required Guid TenantId { get; init; }
    public required long ChangeId { get; init; }
    /// <summary>fine_tuning.job.&lt;status&gt;</summary>
    public required string EventType { get; init; }
    /// <summary>The exact JSON body sent (and signed) on every attempt.</summary>
    public required string Payload { get; init; }
    /// <summary>pending | succeeded | failed</summary>
    public required string Status { get; set; }
    public int Attempts { get; set; }
    /// <summary>When the next attempt is due; a dispatcher sending it pushes this forward first, which is its claim.</summary>
    public required DateTime NextAttemptAt { get; set; }
    public int? LastStatusCode { get; set; }
    public string? LastError { get; set; }
    public required DateTime CreatedAt { get; init; }
    public DateTime? DeliveredAt { get; set; }
}
