namespace Read.Domain.FineTuning;

/// <summary>Where a NaN, an infinity or an out-of-range number turned up.</summary>
public enum NonFiniteSource
{
    /// <summary>The training loss, or the trained weights: training diverged.</summary>
    Training,

    /// <summary>Backbone hidden states about to be stored in the activation cache (non-finite, or beyond the cache dtype's range).</summary>
    Activations,
}

/// <summary>
/// Fine-tuning met numbers it cannot go on with. Thrown instead of carrying on, so that no adapter trained on (or made of)
/// NaN is ever published and no cache holding them is ever written.
/// </summary>
public sealed class NonFiniteValuesException(NonFiniteSource source, string message) : Exception(message)
{
    public NonFiniteSource Origin { get; } = source;
}
