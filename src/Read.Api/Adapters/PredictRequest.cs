
namespace Read.Api.Adapters;

/// <summary>Body of POST /v1/adapters/{id}/predict: a batch of inputs.</summary>
internal sealed record PredictRequest(IReadOnlyList<PredictInput>? Inputs);

internal sealed record PredictInput(string? Text, string? TextPair);

internal sealed record PredictResponse(string AdapterId, IReadOnlyList<PredictionResponse> Predictions);

/// <summary>Classification: label and probabilities. Regression: value (label is the same number as text).</summary>
internal sealed record PredictionResponse(string Label, IReadOnlyDictionary<string, double>? Probabilities, double? Value);
