namespace Read.Domain.Adapters;

/// <summary>
/// One input's prediction. Classification: the most probable label and every label's probability (Value null).
/// Regression: Value, with Label its invariant-culture text and no probabilities.
/// </summary>
public sealed record Prediction(string Label, IReadOnlyDictionary<string, double> Probabilities, double? Value = null);
