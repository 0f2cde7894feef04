namespace Read.Domain.Jobs;

/// <summary>Stable error codes recorded on failed jobs.</summary>
public static class JobErrorCodes
{
    public const string InvalidTrainingData = "invalid_training_data";
    public const string BackboneUnavailable = "backbone_unavailable";
    public const string TrainingFailed = "training_failed";
    /// <summary>The loss (or the trained weights) became NaN or infinite; nothing was published.</summary>
    public const string TrainingDiverged = "training_diverged";
    /// <summary>The backbone produced NaN, infinite or out-of-cache-range hidden states; nothing was cached or published.</summary>
    public const string NonFiniteActivations = "non_finite_activations";
}
