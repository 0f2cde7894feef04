using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

public sealed class MetricsCalculatorTests
{
    [Fact]
    public void Classification_Binary_MatchesHandComputedValues()
    {
        // actual:    1 1 1 0 0 0 0 1
        // predicted: 1 0 1 0 1 0 0 1  → TP 3, FN 1, FP 1, TN 3
        int[] actual = [1, 1, 1, 0, 0, 0, 0, 1];
        int[] predicted = [1, 0, 1, 0, 1, 0, 0, 1];
        var m = MetricsCalculator.Classification(predicted, actual, 2);
        Assert.Equal(0.75, m.Accuracy!.Value, 12);
        Assert.Equal(0.75, m.F1!.Value, 12); // 2·3 / (2·3 + 1 + 1)
        Assert.Equal(0.75, m.MacroF1!.Value, 12); // class 0: 2·3 / (6 + 1 + 1) = 0.75 as well
        Assert.Equal(0.5, m.Mcc!.Value, 12); // (3·3 − 1·1) / sqrt(4·4·4·4)
    }

    [Fact]
    public void Classification_PositiveClassIsTheSecondLabel()
    {
        // Class 1 never predicted correctly: F1 of class 1 = 0, while class 0 scores 2·2 / (4 + 2) = 2/3.
        var m = MetricsCalculator.Classification([0, 0, 0, 0], [0, 0, 1, 1], 2);
        Assert.Equal(0.0, m.F1!.Value, 12);
        Assert.Equal(1.0 / 3, m.MacroF1!.Value, 12);
        Assert.Equal(0.0, m.Mcc!.Value, 12); // a constant prediction: sklearn's 0
    }

    [Fact]
    public void Classification_ThreeClasses_MatchesHandComputedValues()
    {
        // Confusion [actual, predicted]: [[2,1,0],[0,2,0],[1,0,1]] → n 7, correct 5.
        int[] actual = [0, 0, 0, 1, 1, 2, 2];
        int[] predicted = [0, 0, 1, 1, 1, 0, 2];
        var m = MetricsCalculator.Classification(predicted, actual, 3);
        Assert.Equal(5.0 / 7, m.Accuracy!.Value, 12);
        Assert.Null(m.F1);
        // F1: class 0 2·2/(4+1+1) = 2/3, class 1 2·2/(4+1+0) = 4/5, class 2 2·1/(2+0+1) = 2/3.
        Assert.Equal((2.0 / 3 + 0.8 + 2.0 / 3) / 3, m.MacroF1!.Value, 12);
        // Gorodkin: t = (3,2,2), p = (3,3,1); (c·s − Σ p·t) / sqrt((s² − Σp²)(s² − Σt²)) = (35 − 17) / sqrt((49 − 19)(49 − 17)).
        Assert.Equal(18 / Math.Sqrt(30.0 * 32), m.Mcc!.Value, 12);
    }

    [Fact]
    public void Regression_MatchesHandComputedValues()
    {
        double[] actual = [1, 2, 3, 4];
        double[] predicted = [1.5, 1.5, 3.5, 5];
        var m = MetricsCalculator.Regression(predicted, actual);
        Assert.Equal((0.25 + 0.25 + 0.25 + 1) / 4, m.Mse!.Value, 12);
        // Pearson: means 2.5 and 2.875; Σdxdy = 6.25, Σdx² = 5, Σdy² = 8.6875 (hand-expanded).
        Assert.Equal(6.25 / Math.Sqrt(5 * 8.6875), m.Pearson!.Value, 12);
        // Spearman: predicted ranks (1.5, 1.5, 3, 4) against (1, 2, 3, 4): Σdxdy = 4.5, Σdx² = 4.5, Σdy² = 5.
        Assert.Equal(4.5 / Math.Sqrt(4.5 * 5), m.Spearman!.Value, 12);
    }

    [Fact]
    public void Regression_ConstantPrediction_HasNoCorrelation()
    {
        var m = MetricsCalculator.Regression([2.0, 2.0, 2.0], [1.0, 2.0, 3.0]);
        Assert.Null(m.Pearson);
        Assert.Null(m.Spearman);
        Assert.Equal(2.0 / 3, m.Mse!.Value, 12);
    }

    [Fact]
    public void Ranks_Ties_GetTheirMeanRank()
    {
        Assert.Equal([2.5, 1, 2.5, 4], MetricsCalculator.Ranks([5.0, 1.0, 5.0, 9.0]));
    }
}
