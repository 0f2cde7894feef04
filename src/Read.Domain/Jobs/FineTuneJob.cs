using Read.Domain.Persistence;

namespace Read.Domain.Jobs;

/// <summary>A fine-tuning job row: what to train, and where it stands.</summary>
public sealed class FineTuneJob : ITenantListed
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string BackboneId { get; init; }
    /// <summary>classification | regression</summary>
    public string Task { get; init; } = FineTuneTasks.Classification;
    public required string TrainingFileId { get; init; }
    public string? ValidationFileId { get; init; }
    /// <summary>Hyperparameters as submitted, after defaults were applied (snake_case JSON); "auto" values are replaced by the resolved numbers once the run picks them.</summary>
    public required string HyperparametersJson { get; init; }
    /// <summary>The submitted hyperparameters, kept only when some were "auto" and have been resolved into <see cref="HyperparametersJson"/>.</summary>
    public string? RequestedHyperparametersJson { get; init; }
    public string? MetadataJson { get; init; }
    /// <summary>A checkpoint of an earlier job of the tenant whose weights this job starts from; null to start afresh.</summary>
    public string? FromCheckpointId { get; init; }
    public required string Status { get; set; }
    /// <summary>precompute | train | evaluate | publish while running; the last stage reached afterwards.</summary>
    public string? Stage { get; set; }
    public double Progress { get; set; }
    public string? ErrorCode { get; set; }
    public string? ErrorMessage { get; set; }
    public string? AdapterId { get; set; }
    public bool? CacheHit { get; set; }
    public string? MetricsJson { get; set; }
    public int Attempts { get; set; }
    public DateTime? CancelRequestedAt { get; set; }
    public string? HangfireJobId { get; set; }

    /// <summary>The worker running the job now; with <see cref="LeaseExpiresAt"/> it keeps a duplicate delivery out.</summary>
    public string? LeaseOwner { get; set; }

    /// <summary>Renewed by the running worker; once past, the worker is presumed dead and the job may be claimed again.</summary>
    public DateTime? LeaseExpiresAt { get; set; }
    public required DateTime CreatedAt { get; init; }
    public DateTime? StartedAt { get; set; }
    public DateTime? FinishedAt { get; set; }

    /// <summary>When training should end at the pace of the epochs run so far (the full epoch budget; early stopping may end sooner).</summary>
    public DateTime? EstimatedFinishAt { get; set; }
}
