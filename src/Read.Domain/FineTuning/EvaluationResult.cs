using Read.Domain.Adapters;

namespace Read.Domain.FineTuning;

/// <summary>Metrics of an adapter on a labelled set, and its prediction for every example (input order).</summary>
public sealed record EvaluationResult(EvaluationMetrics Metrics, IReadOnlyList<Prediction> Predictions);
