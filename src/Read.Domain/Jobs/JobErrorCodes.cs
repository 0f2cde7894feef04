namespace Read.Domain.Jobs;

/// <summary>Stable error codes recorded on failed jobs.</summary>
public static class JobErrorCodes
{
    public const string InvalidTrainingData = "invalid_training_data";
    public const string BackboneUnavailable = "backbone_unavailable";
    public const string TrainingFailed = "training_failed";
    /// <summary>The from_checkpoint checkpoint was deleted, or its weights do not fit this job's adapter shape.</summary>
    public const string CheckpointUnavailable = "checkpoint_unavailable";
    public const string TrainingDiverged = FineTuning.NonFiniteValueException.TrainingDiverged;
    public const string NonFiniteActivations = FineTuning.NonFiniteValueException.NonFiniteActivations;
}
