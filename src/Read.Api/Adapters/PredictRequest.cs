
namespace Read.Api.Adapters;

/// <summary>Body of POST /v1/adapters/{id}/predict: a batch of inputs; top_k bounds the probabilities returned per input.</summary>
internal sealed record PredictRequest(IReadOnlyList<PredictInput?>? Inputs, int? TopK = null);

internal sealed record PredictInput(string? Text, string? TextPair);

internal sealed record PredictResponse(string AdapterId, IReadOnlyList<PredictionResponse> Predictions);

/// <summary>
/// Classification: label and the probabilities of the top_k most probable labels. Regression: value (label is the
/// same number as text).
/// </summary>
internal sealed record PredictionResponse(string Label, IReadOnlyDictionary<string, double>? Probabilities, double? Value);

/// <summary>Body of POST /v1/predict: inputs that each name one of the caller's adapters, answered in order.</summary>
internal sealed record MixedPredictRequest(IReadOnlyList<MixedPredictInput?>? Inputs, int? TopK = null);

internal sealed record MixedPredictInput(string? Adapter, string? Text, string? TextPair);

internal sealed record MixedPredictResponse(IReadOnlyList<MixedPredictionResponse> Predictions);

internal sealed record MixedPredictionResponse(string Adapter, string Label, IReadOnlyDictionary<string, double>? Probabilities, double? Value);
