namespace Read.Domain.FineTuning;

/// <summary>
/// A NaN, an infinity, or a value the cache's 16-bit dtype cannot hold: training stops rather than publish an adapter
/// built on it. <see cref="Code"/> is the job's error code (training_diverged or non_finite_activations).
/// </summary>
public sealed class NonFiniteValueException(string code, string message) : Exception(message)
{
    public const string TrainingDiverged = "training_diverged";

    public const string NonFiniteActivations = "non_finite_activations";

    public string Code { get; } = code;
}
