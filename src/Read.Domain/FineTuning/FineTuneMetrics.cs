namespace Read.Domain.FineTuning;

/// <summary>
/// What one fine-tuning run measured (serialised snake_case into the job and metrics.json). Validation metrics are those
/// of the weights in the artifact; fields that do not apply to the task, or without a validation set, are null.
/// </summary>
public sealed record FineTuneMetrics
{
    /// <summary>classification or regression.</summary>
    public string Task { get; init; } = "classification";

    public double? ValidationAccuracy { get; init; }

    /// <summary>Binary F1 of the positive class (the second label in ordinal order); null with more than two labels.</summary>
    public double? F1 { get; init; }

    public double? MacroF1 { get; init; }

    /// <summary>Matthews correlation coefficient (multiclass: Gorodkin's R_K).</summary>
    public double? Mcc { get; init; }

    public double? Mse { get; init; }

    public double? Pearson { get; init; }

    public double? Spearman { get; init; }

    /// <summary>Mean cross-entropy (classification) or MSE in label units (regression) on the validation set.</summary>
    public double? ValidationLoss { get; init; }

    /// <summary>Mean training loss of the last epoch run (regression: MSE on standardised targets).</summary>
    public double FinalTrainLoss { get; init; }

    /// <summary>Side network + head; independent of the backbone's depth.</summary>
    public long TrainableParameters { get; init; }

    public int TrainExamples { get; init; }

    public int ValidationExamples { get; init; }

    public int EpochsRun { get; init; }

    /// <summary>The epoch whose weights the artifact holds.</summary>
    public int BestEpoch { get; init; }

    public double PrecomputeSeconds { get; init; }

    public double TrainSeconds { get; init; }

    public double EvaluateSeconds { get; init; }

    /// <summary>The activation cache existed and was intact: the backbone was not run.</summary>
    public bool CacheHit { get; init; }

    /// <summary>Size of the activation cache file.</summary>
    public long CacheBytes { get; init; }
}
