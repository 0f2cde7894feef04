namespace Read.Domain.FineTuning;

/// <summary>Classification and regression metrics, computed as scikit-learn and SciPy define them.</summary>
public static class MetricsCalculator
{
    /// <summary>
    /// Accuracy, macro F1 (over the classes present in either series), MCC, and binary F1 of class 1 when
    /// <paramref name="classes"/> is 2. Loss is left to the caller.
    /// </summary>
    public static EvaluationMetrics Classification(IReadOnlyList<int> predicted, IReadOnlyList<int> actual, int classes)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(actual);
        if (predicted.Count != actual.Count)
            throw new ArgumentException("predicted and actual differ in length.", nameof(predicted));
        var n = actual.Count;
        if (n == 0)
            return new EvaluationMetrics();
        var confusion = new long[classes, classes]; // [actual, predicted]
        for (var i = 0; i < n; i++)
            confusion[actual[i], predicted[i]]++;
        long correct = 0;
        var truth = new long[classes];
        var guessed = new long[classes];
        for (var a = 0; a < classes; a++)
        {
            correct += confusion[a, a];
            for (var p = 0; p < classes; p++)
            {
                truth[a] += confusion[a, p];
                guessed[p] += confusion[a, p];
            }
        }

        double F1Of(int k)
        {
            var tp = confusion[k, k];
            var denominator = 2.0 * tp + (guessed[k] - tp) + (truth[k] - tp);
            return denominator == 0 ? 0 : 2.0 * tp / denominator;
        }

        var present = Enumerable.Range(0, classes).Where(k => truth[k] + guessed[k] > 0).ToList();
        double s = n, c = correct;
        double sumPt = 0, sumP2 = 0, sumT2 = 0;
        for (var k = 0; k < classes; k++)
        {
            sumPt += (double)guessed[k] * truth[k];
            sumP2 += (double)guessed[k] * guessed[k];
            sumT2 += (double)truth[k] * truth[k];
        }

        var mccDenominator = Math.Sqrt((s * s - sumP2) * (s * s - sumT2));
        return new EvaluationMetrics
        {
            Examples = n,
            Accuracy = c / s,
            F1 = classes == 2 ? F1Of(1) : null,
            MacroF1 = present.Average(F1Of),
            Mcc = mccDenominator == 0 ? 0 : (c * s - sumPt) / mccDenominator,
        };
    }

    /// <summary>MSE (also reported as Loss), Pearson's r and Spearman's ρ (Pearson of average ranks).</summary>
    public static EvaluationMetrics Regression(IReadOnlyList<double> predicted, IReadOnlyList<double> actual)
    {
        ArgumentNullException.ThrowIfNull(predicted);
        ArgumentNullException.ThrowIfNull(actual);
        if (predicted.Count != actual.Count)
            throw new ArgumentException("predicted and actual differ in length.", nameof(predicted));
        if (actual.Count == 0)
            return new EvaluationMetrics();
        var mse = predicted.Zip(actual).Average(p => (p.First - p.Second) * (p.First - p.Second));
        return new EvaluationMetrics
        {
            Examples = actual.Count,
            Loss = mse,
            Mse = mse,
            Pearson = Pearson(predicted, actual),
            Spearman = Pearson(Ranks(predicted), Ranks(actual)),
        };
    }

    /// <summary>Pearson's r; null when either series is constant or shorter than two.</summary>
    public static double? Pearson(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        ArgumentNullException.ThrowIfNull(x);
        ArgumentNullException.ThrowIfNull(y);
        if (x.Count < 2 || x.Count != y.Count)
            return null;
        double mx = x.Average(), my = y.Average(), sxy = 0, sxx = 0, syy = 0;
        for (var i = 0; i < x.Count; i++)
        {
            sxy += (x[i] - mx) * (y[i] - my);
            sxx += (x[i] - mx) * (x[i] - mx);
            syy += (y[i] - my) * (y[i] - my);
        }

        return sxx == 0 || syy == 0 ? null : Math.Clamp(sxy / Math.Sqrt(sxx * syy), -1, 1);
    }

    /// <summary>1-based ranks; ties get the mean of the ranks they span.</summary>
    public static double[] Ranks(IReadOnlyList<double> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var order = Enumerable.Range(0, values.Count).OrderBy(i => values[i]).ToArray();
        var ranks = new double[values.Count];
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && values[order[end + 1]] == values[order[start]])
                end++;
            var rank = (start + end) / 2.0 + 1;
            for (var k = start; k <= end; k++)
                ranks[order[k]] = rank;
            start = end + 1;
        }

        return ranks;
    }
}
