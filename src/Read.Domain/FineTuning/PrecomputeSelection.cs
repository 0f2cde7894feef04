using Read.Domain.Backbones;

namespace Read.Domain.FineTuning;

/// <summary>
/// Whether a backbone's weights fit the memory budget, and which precompute a job runs: a <see cref="PrecomputeMode"/>.
/// </summary>
public static class PrecomputeSelection
{
    /// <summary>Headroom over the weights: a quarter of them (a batch's activations, libtorch's buffers), at least 256 MiB.</summary>
    public static long Headroom(long weightBytes) => Math.Max(256L << 20, weightBytes / 4);

    /// <summary>Whether weights of <paramref name="weightBytes"/> plus <see cref="Headroom"/> fit <paramref name="budgetBytes"/>.</summary>
    public static bool Fits(long weightBytes, long budgetBytes) => weightBytes + Headroom(weightBytes) <= budgetBytes;

    /// <summary>True for a layer-streamed precompute; throws when the mode cannot run on this backbone.</summary>
    public static bool UseStreamed(Backbone backbone, PrecomputeMode mode)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        switch (mode)
        {
            case PrecomputeMode.Auto:
                return !backbone.IsResident;
            case PrecomputeMode.Resident:
                return backbone.IsResident
                    ? false
                    : throw backbone.NotResident(BackboneTooLargeException.ResidentPrecompute, "a resident precompute (precompute: \"resident\")");
            case PrecomputeMode.Streamed:
                if (!backbone.CanStream)
                    throw new ArgumentException($"precompute \"streamed\" needs a safetensors checkpoint; backbone '{backbone.Id}' has none.", nameof(mode));
                return true;
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, null);
        }
    }
}
