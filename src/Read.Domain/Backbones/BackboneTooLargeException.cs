namespace Read.Domain.Backbones;

/// <summary>
/// The backbone is registered layer-streamed (its weights do not fit the memory budget), so it cannot run a whole forward
/// in memory: online predict and resident precompute are refused. <see cref="Code"/> is the stable error code.
/// </summary>
public sealed class BackboneTooLargeException(string code, string message) : Exception(message)
{
    /// <summary>Online predict needs the whole backbone resident.</summary>
    public const string OnlinePredict = "backbone_too_large_for_online_predict";

    /// <summary>A job asked for precompute: "resident" on a backbone that only streams.</summary>
    public const string ResidentPrecompute = "backbone_too_large_for_resident_precompute";

    public string Code { get; } = code;
}
