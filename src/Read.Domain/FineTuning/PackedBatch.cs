using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// Cached states of a batch of examples with no padding: States (P, C, d) float32, Segments (P) int64 the batch-local
/// example index of each position, Count examples.
/// </summary>
internal sealed class PackedBatch(Tensor states, Tensor segments, int count) : IDisposable
{
    public Tensor States { get; } = states;

    public Tensor Segments { get; } = segments;

    public int Count { get; } = count;

    public void Dispose()
    {
        States.Dispose();
        Segments.Dispose();
    }
}
