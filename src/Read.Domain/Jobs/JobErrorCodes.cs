namespace Read.Domain.Jobs;

/// <summary>Stable error codes recorded on failed jobs.</summary>
public static class JobErrorCodes
{
    public const string InvalidTrainingData = "invalid_training_data";
    public const string BackboneUnavailable = "backbone_unavailable";
    public const string TrainingFailed = "training_failed";
    public const string TrainingDiverged = FineTuning.NonFiniteValueException.TrainingDiverged;
    public const string NonFiniteActivations = FineTuning.NonFiniteValueException.NonFiniteActivations;
}
