namespace Read.Domain.Webhooks;

/// <summary>One HTTP attempt of a delivery, as the receiver answered it (or why it could not).</summary>
public sealed class WebhookDeliveryAttempt
{
    public long Id { get; init; }
    public required string DeliveryId { get; init; }
    public required int Number { get; init; }
    public required DateTime StartedAt { get; init; }
    public required double DurationMs { get; init; }
    public int? StatusCode { get; init; }
    public string? Error { get; init; }
}
