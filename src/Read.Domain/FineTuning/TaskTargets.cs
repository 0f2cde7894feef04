using System.Globalization;
using Read.Domain.Datasets;

namespace Read.Domain.FineTuning;

/// <summary>
/// Training targets of a list of examples: label indices (classification, labels in ordinal order) or numbers
/// (regression, standardised with the training set's mean and standard deviation).
/// </summary>
internal sealed class TaskTargets
{
    private TaskTargets(FineTuneTask task, IReadOnlyList<string> labels, long[] classes, double[] values, double mean, double std)
    {
        Task = task;
        Labels = labels;
        Classes = classes;
        Values = values;
        Mean = mean;
        Std = std;
    }

    public FineTuneTask Task { get; }

    public bool IsRegression => Task == FineTuneTask.Regression;

    /// <summary>Label names in head-output order (ordinal); empty for regression.</summary>
    public IReadOnlyList<string> Labels { get; }

    /// <summary>Per example: the label's index (classification).</summary>
    public long[] Classes { get; }

    /// <summary>Per example: the numeric label (regression).</summary>
    public double[] Values { get; }

    public double Mean { get; }

    public double Std { get; }

    /// <param name="trainCount">Leading examples whose statistics standardise regression targets.</param>
    public static TaskTargets Create(FineTuneTask task, IReadOnlyList<LabeledExample> examples, IReadOnlyList<long> trainIndices)
    {
        if (task == FineTuneTask.Regression)
        {
            var values = examples.Select(e => ParseNumber(e.Label)).ToArray();
            var train = trainIndices.Select(i => values[i]).ToArray();
            var mean = train.Average();
            var std = Math.Sqrt(train.Average(v => (v - mean) * (v - mean)));
            return new TaskTargets(task, [], [], values, mean, std > 1e-12 ? std : 1.0);
        }

        var labels = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (labels.Count < 2)
            throw new ArgumentException("Classification needs at least two distinct labels.", nameof(examples));
        var index = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (long)p.i, StringComparer.Ordinal);
        return new TaskTargets(task, labels, examples.Select(e => index[e.Label]).ToArray(), [], 0, 1);
    }

    /// <summary>A regression label: a finite number in invariant culture.</summary>
    public static double ParseNumber(string label) =>
        double.TryParse(label, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && double.IsFinite(value)
            ? value
            : throw new ArgumentException($"Regression labels must be numbers; got '{label}'.", nameof(label));

    /// <summary>"balanced": N / (K · n_k) over the training examples (1 for a class absent from them).</summary>
    public float[] BalancedWeights(IReadOnlyList<long> trainIndices)
    {
        var counts = new long[Labels.Count];
        foreach (var i in trainIndices)
            counts[Classes[i]]++;
        return counts.Select(c => c == 0 ? 1f : (float)(trainIndices.Count / ((double)Labels.Count * c))).ToArray();
    }
}
