namespace Read.Domain.FineTuning;

/// <summary>
/// Quality of predictions against known labels. Classification fills Loss (mean cross-entropy), Accuracy, MacroF1, Mcc,
/// and F1 when there are two labels (positive class: the second label in ordinal order); regression fills Loss and Mse
/// (both in label units), Pearson and Spearman. Undefined values (a constant series' correlation) are null.
/// </summary>
public sealed record EvaluationMetrics
{
    public int Examples { get; init; }

    public double? Loss { get; init; }

    public double? Accuracy { get; init; }

    public double? F1 { get; init; }

    public double? MacroF1 { get; init; }

    public double? Mcc { get; init; }

    public double? Mse { get; init; }

    public double? Pearson { get; init; }

    public double? Spearman { get; init; }

    /// <summary>"accuracy 0.9000, macro F1 0.8990, MCC 0.8000" or "MSE 0.1200, Pearson 0.9100, Spearman 0.9000".</summary>
    public string Describe()
    {
        static string F(double? v) => v is { } x ? x.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        return Accuracy is not null
            ? $"accuracy {F(Accuracy)}, macro F1 {F(MacroF1)}, MCC {F(Mcc)}"
            : $"MSE {F(Mse)}, Pearson {F(Pearson)}, Spearman {F(Spearman)}";
    }
}
