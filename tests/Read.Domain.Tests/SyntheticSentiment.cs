using Read.Domain.Datasets;

namespace Read.Domain.Tests;

/// <summary>A small, learnable sentiment set: the label is carried by a positive or negative word.</summary>
internal static class SyntheticSentiment
{
    private static readonly string[] Positive = ["good", "great"];
    private static readonly string[] Negative = ["bad", "awful"];
    private static readonly string[] Nouns = ["movie", "film", "book", "phone", "food", "service", "story", "product"];
    private static readonly string[] Fillers = ["the", "this", "a", "really", "very", "so", "was", "is", "and", "it", "quite"];

    public static IEnumerable<string> Words => Positive.Concat(Negative).Concat(Nouns).Concat(Fillers);

    public static List<LabeledExample> Generate(int count, int seed)
    {
        var random = new Random(seed);
        var examples = new List<LabeledExample>(count);
        for (var i = 0; i < count; i++)
        {
            var positive = i % 2 == 0;
            var sentiment = positive ? Positive[random.Next(Positive.Length)] : Negative[random.Next(Negative.Length)];
            var words = new List<string> { Fillers[random.Next(3)], Nouns[random.Next(Nouns.Length)], "was" };
            if (random.Next(2) == 0)
                words.Add(Fillers[3 + random.Next(3)]);
            words.Add(sentiment);
            examples.Add(new LabeledExample(string.Join(' ', words), null, positive ? "positive" : "negative"));
        }

        return examples;
    }
}
