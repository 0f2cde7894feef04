using Read.Domain.FineTuning;

namespace Read.Research.Baselines;

/// <summary>What one method's run measured. Test metrics are null when no test set was given.</summary>
public sealed record BaselineResult
{
    public required BaselineMethod Method { get; init; }

    public required double LearningRate { get; init; }

    public required int TrainExamples { get; init; }

    public int TestExamples { get; init; }

    /// <summary>Parameters that receive gradients, head included.</summary>
    public required long TrainableParameters { get; init; }

    /// <summary>Bytes of the trainable tensors written as float32 safetensors (the whole model for full fine-tuning).</summary>
    public required long AdapterBytes { get; init; }

    public EvaluationMetrics? Test { get; init; }

    /// <summary>Backbone features computed once before training (read: the activation cache; probe: pooled features); null otherwise.</summary>
    public double? PrecomputeSeconds { get; init; }

    public required double TrainSeconds { get; init; }

    public double EvaluateSeconds { get; init; }

    /// <summary>Optimizer steps taken.</summary>
    public required int Steps { get; init; }

    /// <summary>Mean training loss of each epoch.</summary>
    public required IReadOnlyList<double> EpochLosses { get; init; }
}
