using Read.Domain.Datasets;
using Read.Research.Datasets;

namespace Read.Domain.Tests.Research.Datasets;

public sealed class DatasetSplitsTests
{
    private static IReadOnlyList<LabeledExample> Examples() =>
        Enumerable.Range(0, 300).Select(i => new LabeledExample($"text {i}", null, i % 3 == 0 ? "a" : "b")).ToList();

    [Fact]
    public void Create_SameSeed_SameSplitsAndDisjointCover()
    {
        var first = DatasetSplits.Create(Examples(), 0.1, 0.2, seed: 3);
        var second = DatasetSplits.Create(Examples(), 0.1, 0.2, seed: 3);
        Assert.Equal(first.Train, second.Train);
        Assert.Equal(first.Validation, second.Validation);
        Assert.Equal(first.Test, second.Test);

        var all = first.Train.Concat(first.Validation).Concat(first.Test).Select(e => e.Text).ToList();
        Assert.Equal(300, all.Count);
        Assert.Equal(300, all.Distinct().Count());
        Assert.NotEqual(first.Test, DatasetSplits.Create(Examples(), 0.1, 0.2, seed: 4).Test);
    }

    [Fact]
    public void Create_KeepsLabelProportionsInEverySplit()
    {
        var splits = DatasetSplits.Create(Examples(), 0.1, 0.2, seed: 0);
        // 100 "a" and 200 "b": test 20 + 40, validation 10 + 20, train 70 + 140.
        Assert.Equal((20, 40), Count(splits.Test));
        Assert.Equal((10, 20), Count(splits.Validation));
        Assert.Equal((70, 140), Count(splits.Train));
        static (int, int) Count(IReadOnlyList<LabeledExample> s) => (s.Count(e => e.Label == "a"), s.Count(e => e.Label == "b"));
    }
}
