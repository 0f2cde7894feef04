namespace Read.Domain.FineTuning;

/// <summary>What one fine-tuning run measured.</summary>
public sealed record FineTuneMetrics(
    double ValidationAccuracy,
    double FinalTrainLoss,
    long TrainableParameters,
    int TrainExamples,
    int ValidationExamples,
    double PrecomputeSeconds,
    double TrainSeconds,
    double EvaluateSeconds,
    bool CacheHit);
