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

    /// <summary><see cref="SweepStatus.Running"/> until every trial has finished, then the outcome, recorded once.</summary>
    public string Status { get; set; } = SweepStatus.Running;

    /// <summary>Set by the sweep's cancel: it then finishes cancelled, promoting nothing.</summary>
    public DateTime? CancelRequestedAt { get; set; }

    /// <summary>The promoted trial: the best succeeded one by <see cref="Metric"/>, once every trial has finished.</summary>
    public string? BestJobId { get; set; }
    public double? BestMetricValue { get; set; }
    /// <summary>The promoted trial's adapter: the one to predict with.</summary>
    public string? PromotedAdapterId { get; set; }
    public DateTime? FinishedAt { get; set; }
}
