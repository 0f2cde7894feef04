namespace Read.Domain.Receipts;

/// <summary>
/// What the workers measured around a job's runs, added up over every attempt (a job resumed after its worker died is
/// billed for both); the receipt adds the job's own metrics. Written as the run goes (each stage, every few seconds and at
/// its end), so an attempt killed without warning still counts up to its last write. Sums: <see cref="CpuSeconds"/>,
/// the stage seconds, <see cref="BackboneTokens"/>, <see cref="Attempts"/>. Maxima: <see cref="PeakRssBytes"/>,
/// <see cref="ConcurrentJobs"/>. The last attempt's: <see cref="Worker"/>, <see cref="MeasuredAt"/>.
/// </summary>
public sealed class JobMeasurement
{
    public required string JobId { get; init; }
    public required Guid TenantId { get; init; }
    /// <summary>Process CPU time (user + kernel) spent between each attempt's first stage and its end, all threads, summed over attempts.</summary>
    public required double CpuSeconds { get; set; }
    /// <summary>Largest resident set size of a worker process sampled while an attempt ran (the largest over attempts).</summary>
    public required long PeakRssBytes { get; set; }
    /// <summary>Tokens (after truncation) of every example in the job's activation cache: train followed by validation (0 until a precompute finished).</summary>
    public required long DatasetTokens { get; set; }
    /// <summary>Jobs the same process ran at the same time at any point; CPU and RSS are per process, so above 1 they are shared.</summary>
    public required int ConcurrentJobs { get; set; }
    public required string Worker { get; set; }
    public required DateTime MeasuredAt { get; set; }

    /// <summary>Tokens the backbone ran over, summed over attempts: an attempt that built the cache counts the dataset, one that reused it 0.</summary>
    public long? BackboneTokens { get; set; }

    /// <summary>Wall seconds in each stage, summed over attempts (an attempt killed mid-stage counts up to its last write).</summary>
    public double? PrecomputeSeconds { get; set; }

    public double? TrainSeconds { get; set; }

    public double? EvaluateSeconds { get; set; }

    /// <summary>Attempts that wrote here. Null (with the three stage sums and <see cref="BackboneTokens"/>) on a receipt written before attempts were added up: the receipt then reads the job's metrics.</summary>
    public int? Attempts { get; set; }
}
