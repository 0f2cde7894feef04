namespace Read.Domain.FineTuning;

/// <summary>What the head predicts: one of a set of labels, or a number.</summary>
public enum FineTuneTask
{
    Classification,
    Regression,
}
