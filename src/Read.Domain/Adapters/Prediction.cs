namespace Read.Domain.Adapters;

/// <summary>The most probable label of one input and the probability of every label.</summary>
public sealed record Prediction(string Label, IReadOnlyDictionary<string, double> Probabilities);
