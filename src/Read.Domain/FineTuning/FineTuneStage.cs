namespace Read.Domain.FineTuning;

/// <summary>The stages of one fine-tuning run, in order.</summary>
public enum FineTuneStage
{
    Precompute,
    Train,
    Evaluate,
    Publish,
}
