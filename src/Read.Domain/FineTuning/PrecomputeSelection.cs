using Read.Domain.Backbones;

namespace Read.Domain.FineTuning;

/// <summary>
/// Whether a backbone's weights fit the memory budget, and which precompute a job runs: <c>auto</c> (resident when the
/// backbone is in memory, else layer-streamed), <c>resident</c> or <c>streamed</c>.
/// </summary>
public static class PrecomputeSelection
{
    public const string Auto = "auto";
    public const string Resident = "resident";
    public const string Streamed = "streamed";

    public static readonly IReadOnlyList<string> Modes = [Auto, Resident, Streamed];

    /// <summary>Headroom over the weights: a quarter of them (a batch's activations, libtorch's buffers), at least 256 MiB.</summary>
    public static long Headroom(long weightBytes) => Math.Max(256L << 20, weightBytes / 4);

    /// <summary>Whether weights of <paramref name="weightBytes"/> plus <see cref="Headroom"/> fit <paramref name="budgetBytes"/>.</summary>
    public static bool Fits(long weightBytes, long budgetBytes) => weightBytes + Headroom(weightBytes) <= budgetBytes;

    /// <summary>True for a layer-streamed precompute; throws when the mode cannot run on this backbone.</summary>
    public static bool UseStreamed(Backbone backbone, string mode)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        switch (mode)
        {
            case Auto:
                return !backbone.IsResident;
            case Resident:
                return backbone.IsResident
                    ? false
                    : throw backbone.NotResident(BackboneTooLargeException.ResidentPrecompute, "a resident precompute (precompute: \"resident\")");
            case Streamed:
                if (!backbone.CanStream)
                    throw new ArgumentException($"precompute \"streamed\" needs a safetensors checkpoint; backbone '{backbone.Id}' has none.", nameof(mode));
                return true;
            default:
                throw new ArgumentException($"precompute must be one of {string.Join(", ", Modes)} (got '{mode}').", nameof(mode));
        }
    }
}
