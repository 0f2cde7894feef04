namespace Read.Api.Inference;

/// <summary>The inference queue holds <see cref="InferenceOptions.MaxQueuedRequests"/> requests already: answer 429.</summary>
internal sealed class InferenceQueueFullException(int capacity)
    : Exception($"The inference queue is full ({capacity} requests); retry shortly.")
{
    public int Capacity { get; } = capacity;
}
