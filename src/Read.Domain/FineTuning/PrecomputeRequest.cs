namespace Read.Domain.FineTuning;

/// <summary>
/// How a cache miss runs the backbone: <see cref="Mode"/> picks resident or layer-streamed; a layer-streamed
/// precompute reports each step to <see cref="StepCompleted"/> (the benchmark's per-layer timings).
/// <see cref="TokensCounted"/> hears the tokens (after truncation) of every example the backbone is about to run over,
/// counted by the precompute's own tokenization pass.
/// </summary>
internal sealed record PrecomputeRequest(PrecomputeMode Mode, Action<StreamedPrecomputeStep>? StepCompleted = null, Action<long>? TokensCounted = null)
{
    public static readonly PrecomputeRequest Default = new(PrecomputeMode.Auto);
}
