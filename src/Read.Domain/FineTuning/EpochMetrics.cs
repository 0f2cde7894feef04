namespace Read.Domain.FineTuning;

/// <summary>One finished epoch: mean training loss, validation metrics (null without a validation set) and its duration.</summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, EvaluationMetrics? Validation, double Seconds)
{
    /// <summary>Validation accuracy (classification), for callers that only want that.</summary>
    public double? ValidationAccuracy => Validation?.Accuracy;

    /// <summary>"train loss 0.1234, validation accuracy 0.9000, macro F1 …" — the text of an epoch event.</summary>
    public string Describe() =>
        $"train loss {TrainLoss.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)}"
        + (Validation is null ? ", no validation set" : ", validation " + Validation.Describe());
}
