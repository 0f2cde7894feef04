namespace Read.Domain.Jobs;

/// <summary>
/// A job's training state at the end of one epoch (<see cref="FineTuning.TrainingCheckpoint"/> bytes), stored with the job so
/// any worker can resume it. Only the last and the best epoch are kept.
/// </summary>
public sealed class JobCheckpoint
{
    public required string Id { get; init; }
    public required string JobId { get; init; }
    public required Guid TenantId { get; init; }
    public required int Epoch { get; init; }
    /// <summary>The epoch's train loss and validation metrics (snake_case JSON).</summary>
    public required string MetricsJson { get; init; }
    /// <summary>The checkpoint of the best epoch so far by the early-stopping metric (the last one without early stopping).</summary>
    public bool IsBest { get; set; }
    public required byte[] State { get; init; }
    public required DateTime CreatedAt { get; init; }
}
