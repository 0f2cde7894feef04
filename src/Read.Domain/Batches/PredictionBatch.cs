using Read.Domain.Persistence;

namespace Read.Domain.Batches;

/// <summary>
/// A batch prediction job (OpenAI Batch API shape): a JSONL file of predict requests answered offline into an output
/// file (successes) and an error file (failed requests). docs/decisions/017-batch-prediction.md.
/// </summary>
public sealed class PredictionBatch : ITenantListed
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    /// <summary>/v1/predict or /v1/adapters/{id}/predict: every line's url must be this endpoint.</summary>
    public required string Endpoint { get; init; }
    public required string InputFileId { get; init; }
    public required string CompletionWindow { get; init; }
    /// <summary>One of <see cref="BatchStatus"/>.</summary>
    public required string Status { get; set; }
    public string? OutputFileId { get; set; }
    public string? ErrorFileId { get; set; }
    public required DateTime CreatedAt { get; init; }
    public DateTime? InProgressAt { get; set; }
    public DateTime? FinalizingAt { get; set; }
    public DateTime? CompletedAt { get; set; }
    public DateTime? FailedAt { get; set; }
    public DateTime? CancellingAt { get; set; }
    public DateTime? CancelledAt { get; set; }
    public int TotalRequests { get; set; }
    public int CompletedRequests { get; set; }
    public int FailedRequests { get; set; }
    /// <summary>Batch-level errors (input that became unreadable, an internal failure): a JSON array of {code, message, line}.</summary>
    public string? ErrorsJson { get; set; }
    public string? MetadataJson { get; init; }
    /// <summary>The accepting API's top_k default and limit (Read:Inference), so the batch answers as its online endpoint would.</summary>
    public required int DefaultTopK { get; init; }
    public required int MaxTopK { get; init; }
    /// <summary>The run that owns the batch now; a later delivery takes it over and the earlier run can no longer publish.</summary>
    public string? RunOwner { get; set; }
    public string? HangfireJobId { get; set; }
}
