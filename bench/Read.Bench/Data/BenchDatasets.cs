using Read.Domain.Datasets;
using Read.Domain.Files;
using Read.Research.Datasets;

namespace Read.Bench.Data;

/// <summary>The prepared public datasets: DATA/datasets/NAME/{train,validation,test}.jsonl, fetched and split on first use.</summary>
internal static class BenchDatasets
{
    public sealed record Splits(IReadOnlyList<LabeledExample> Train, IReadOnlyList<LabeledExample> Validation, IReadOnlyList<LabeledExample> Test);

    /// <param name="trainLimit">Keep only the first N examples of the split (null = all); likewise the others.</param>
    public static async Task<Splits> LoadAsync(
        string name, string dataDirectory, int? trainLimit, int? validationLimit, int? testLimit, CancellationToken ct)
    {
        var datasets = Path.Combine(dataDirectory, "datasets");
        if (!File.Exists(Path.Combine(datasets, name, "test.jsonl")))
            await PublicDatasets.PrepareAsync(datasets, Path.Combine(dataDirectory, "npm"), [name], ct: ct);
        IReadOnlyList<LabeledExample> Read(string split, int? limit)
        {
            var parsed = JsonlDatasetParser.Parse(File.ReadAllBytes(Path.Combine(datasets, name, split + ".jsonl")));
            if (!parsed.Succeeded)
                throw new InvalidDataException($"{name}/{split}: {parsed.ErrorMessage}");
            return limit is { } n ? parsed.Examples.Take(n).ToList() : parsed.Examples;
        }

        return new Splits(Read("train", trainLimit), Read("validation", validationLimit), Read("test", testLimit));
    }
}
