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

    public static byte[] Jsonl(IEnumerable<LabeledExample> examples) => JsonlDatasetParser.Write(examples);
}
