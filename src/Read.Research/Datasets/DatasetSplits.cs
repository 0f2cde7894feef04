using Read.Domain.Datasets;

namespace Read.Research.Datasets;

/// <summary>Train / validation / test partitions of one dataset.</summary>
public sealed record DatasetSplits(
    IReadOnlyList<LabeledExample> Train,
    IReadOnlyList<LabeledExample> Validation,
    IReadOnlyList<LabeledExample> Test)
{
    /// <summary>
    /// Deterministic stratified split: within each label (ordinal order) the examples are shuffled with a seeded
    /// Fisher–Yates and cut by the fractions, so every split keeps the label balance and the same seed gives the same split.
    /// </summary>
    public static DatasetSplits Create(IReadOnlyList<LabeledExample> examples, double validationFraction, double testFraction, int seed)
    {
        if (validationFraction < 0 || testFraction < 0 || validationFraction + testFraction >= 1)
            throw new ArgumentException("Validation and test fractions must be non-negative and leave a training set.");
        var train = new List<LabeledExample>();
        var validation = new List<LabeledExample>();
        var test = new List<LabeledExample>();
        foreach (var group in examples.GroupBy(e => e.Label).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var items = group.ToArray();
            var random = new Random(unchecked(seed * 31 + StableHash(group.Key)));
            for (var i = items.Length - 1; i > 0; i--)
            {
                var j = random.Next(i + 1);
                (items[i], items[j]) = (items[j], items[i]);
            }
            var testCount = (int)Math.Round(items.Length * testFraction);
            var validationCount = (int)Math.Round(items.Length * validationFraction);
            test.AddRange(items.Take(testCount));
            validation.AddRange(items.Skip(testCount).Take(validationCount));
            train.AddRange(items.Skip(testCount + validationCount));
        }
        return new DatasetSplits(Interleave(train, seed), Interleave(validation, seed), Interleave(test, seed));
    }

    // Mix the labels so a file read top to bottom is not sorted by class.
    private static List<LabeledExample> Interleave(List<LabeledExample> items, int seed)
    {
        var random = new Random(seed);
        var array = items.ToArray();
        for (var i = array.Length - 1; i > 0; i--)
        {
            var j = random.Next(i + 1);
            (array[i], array[j]) = (array[j], array[i]);
        }
        return [.. array];
    }

    // string.GetHashCode is randomised per process; splits must be identical across runs.
    private static int StableHash(string s)
    {
        unchecked
        {
            var hash = (int)2166136261;
            foreach (var c in s)
                hash = (hash ^ c) * 16777619;
            return hash;
        }
    }
}
