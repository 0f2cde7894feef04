namespace Read.Domain.Receipts;

/// <summary>What the worker measured around one job run (the last run that reached publish); the receipt adds the job's own metrics.</summary>
public sealed class JobMeasurement
{
    public required string JobId { get; init; }
    public required Guid TenantId { get; init; }
    /// <summary>Process CPU time (user + kernel) spent between the job's first stage and publish, all threads.</summary>
    public required double CpuSeconds { get; set; }
    /// <summary>Largest resident set size of the worker process sampled while the job ran.</summary>
    public required long PeakRssBytes { get; set; }
    /// <summary>Tokens (after truncation) of every example in the job's activation cache: train followed by validation.</summary>
    public required long DatasetTokens { get; set; }
    /// <summary>Jobs the same process ran at the same time at any point; CPU and RSS are per process, so above 1 they are shared.</summary>
    public required int ConcurrentJobs { get; set; }
    public required string Worker { get; set; }
    public required DateTime MeasuredAt { get; set; }
}
