namespace Read.Domain.Sweeps;

/// <summary>A hyperparameter sweep: ordinary jobs (trials) on one backbone and one training file, sharing one activation cache.</summary>
public sealed class Sweep
{
    public required string Id { get; init; }
    public required Guid TenantId { get; init; }
    public required string BackboneId { get; init; }
    public required string TrainingFileId { get; init; }
    public string? ValidationFileId { get; init; }
    /// <summary>The validation metric (a FineTuneMetrics field, snake_case) that picks the best trial.</summary>
    public required string Metric { get; init; }
    public required int MaxParallel { get; init; }
    /// <summary>Trial job ids in trial order; the first one builds the cache.</summary>
    public required List<string> TrialJobIds { get; init; }
    public required DateTime CreatedAt { get; init; }
}
