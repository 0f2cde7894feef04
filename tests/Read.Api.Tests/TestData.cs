using Read.Domain.Datasets;
using Read.Domain.Files;

namespace Read.Api.Tests;

/// <summary>A small sentiment dataset whose label is learnable from single words, so a few epochs on a tiny backbone learn it.</summary>
internal static class TestData
{
    private static readonly string[] Positive = ["good", "great", "excellent", "wonderful", "love", "happy", "nice", "best"];
    private static readonly string[] Negative = ["bad", "awful", "terrible", "poor", "hate", "sad", "worst", "boring"];
    private static readonly string[] Subjects = ["the movie", "this phone", "our dinner", "the service", "that book", "my trip"];

    public static IReadOnlyList<LabeledExample> Sentiment(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<LabeledExample>();
        for (var i = 0; i < count; i++)
        {
            var positive = i % 2 == 0;
            var words = positive ? Positive : Negative;
            var text = $"{Subjects[random.Next(Subjects.Length)]} was {words[random.Next(words.Length)]} and {words[random.Next(words.Length)]}";
            examples.Add(new LabeledExample(text, null, positive ? "positive" : "negative"));
        }
        return examples;
    }

    /// <summary>Regression: the target is the number of positive words minus the number of negative ones (−2…2).</summary>
    public static IReadOnlyList<LabeledExample> SentimentScores(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<LabeledExample>();
        for (var i = 0; i < count; i++)
        {
            var words = Enumerable.Range(0, 2).Select(_ => random.Next(3)).ToList(); // 0 neutral, 1 positive, 2 negative
            var text = $"{Subjects[random.Next(Subjects.Length)]} was " + string.Join(" and ", words.Select(w => w switch
            {
                1 => Positive[random.Next(Positive.Length)],
                2 => Negative[random.Next(Negative.Length)],
                _ => "there",
            }));
            var score = words.Count(w => w == 1) - words.Count(w => w == 2);
            examples.Add(new LabeledExample(text, null, score.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        }
        return examples;
    }

    public static byte[] Jsonl(IEnumerable<LabeledExample> examples) => JsonlDatasetParser.Write(examples);
}
