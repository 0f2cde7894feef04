namespace Read.Domain.FineTuning;

/// <summary>
/// One step of a layer-streamed precompute (0 = embeddings, i = layer i): bytes of weights read from the checkpoint,
/// seconds loading them, seconds running the step over every batch, tokens (padded) it ran over.
/// </summary>
public sealed record StreamedPrecomputeStep(int Step, long WeightBytesRead, double LoadSeconds, double RunSeconds, long Tokens);
