using System.CommandLine;

namespace Read.Bench.Quality;

/// <summary>`read-bench read`: READ's quality and cost on the real datasets, next to a linear probe (issue 3 §6).</summary>
internal static class ReadQualityCommand
{
    public static Command Create()
    {
        var datasets = new Option<string[]>("--dataset") { Description = "Datasets (default: amazon imdb yelp spam-assassin).", AllowMultipleArgumentsPerToken = true };
        var backbone = new Option<string>("--backbone") { DefaultValueFactory = _ => Read.Domain.Backbones.BackboneRegistry.DefaultBackboneId };
        var data = new Option<string>("--data") { Description = "Data directory (backbones, datasets, caches).", DefaultValueFactory = _ => "data" };
        var output = new Option<string>("--out") { Description = "Where the markdown and CSV go.", DefaultValueFactory = _ => "docs/benchmarks" };
        var poolings = new Option<string[]>("--pooling") { Description = "READ configurations to run (mean, cls).", AllowMultipleArgumentsPerToken = true };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 20 };
        var patience = new Option<int>("--patience") { Description = "Early-stopping patience (0 = off).", DefaultValueFactory = _ => 3 };
        var r = new Option<int>("--r") { Description = "Side-network hidden size.", DefaultValueFactory = _ => 64 };
        var learningRate = new Option<double>("--lr") { DefaultValueFactory = _ => 2e-3 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var quick = new Option<bool>("--quick") { Description = "Smoke run: 200 train / 50 validation / 100 test examples, 2 epochs." };
        var tag = new Option<string?>("--tag") { Description = "Suffix for the output files (read-quality-TAG.md), so runs with other settings sit side by side." };
        var command = new Command("read", "READ vs a linear probe on frozen features: test accuracy/F1, precompute and training time, cache size, FLOP-rate and overhead ratios.")
        {
            datasets, backbone, data, output, poolings, epochs, patience, r, learningRate, maxLength, seed, quick, tag,
        };
        command.SetAction(async (parse, ct) =>
        {
            var settings = new QualityBenchmark.Settings(
                Datasets: parse.GetValue(datasets) is { Length: > 0 } d ? d : ["amazon", "imdb", "yelp", "spam-assassin"],
                BackboneId: parse.GetValue(backbone)!,
                DataDirectory: parse.GetValue(data)!,
                OutputDirectory: parse.GetValue(output)!,
                Poolings: parse.GetValue(poolings) is { Length: > 0 } p ? p : ["mean", "cls"],
                Epochs: parse.GetValue(epochs),
                Patience: parse.GetValue(patience),
                SideHiddenSize: parse.GetValue(r),
                LearningRate: parse.GetValue(learningRate),
                MaxLength: parse.GetValue(maxLength),
                Seed: parse.GetValue(seed),
                Quick: parse.GetValue(quick),
                Tag: parse.GetValue(tag),
                CommandLine: "dotnet run -c Release --project bench/Read.Bench -- " + string.Join(' ', args(parse)));
            await QualityBenchmark.RunAsync(settings, ct);
            return 0;
        });
        return command;

        static IEnumerable<string> args(ParseResult parse) => parse.Tokens.Select(t => t.Value);
    }
}
