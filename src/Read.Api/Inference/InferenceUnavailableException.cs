namespace Read.Api.Inference;

/// <summary>
/// The batcher cannot take the request: it is shutting down, or the backbone's lane stopped on an unexpected error (the
/// next request starts a fresh one). Answered 503 <c>inference_unavailable</c> with Retry-After; nothing of the request
/// is still running when it is thrown.
/// </summary>
internal sealed class InferenceUnavailableException(string message, Exception? inner = null) : Exception(message, inner);
