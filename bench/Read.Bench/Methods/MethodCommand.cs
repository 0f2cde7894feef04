using Read.Domain.Backbones.Bert;
using Read.Domain.Configuration;
using Read.Domain.SideNetwork;
using System.CommandLine;
using System.Globalization;
using Read.Domain.Backbones;
using Read.Research.Baselines;

namespace Read.Bench.Methods;

/// <summary>`read-bench method`: one fine-tuning method on one dataset in this process; prints one RESULT line.</summary>
internal static class MethodCommand
{
    public static Command Create()
    {
        var method = new Option<string>("--method") { Description = "full | lora | bitfit | adapters | probe | read | read-nocache", Required = true };
        var dataset = new Option<string?>("--dataset") { Description = "amazon | imdb | yelp | spam-assassin (not with --random-config)." };
        var trainLimit = new Option<int?>("--train-limit") { Description = "Use only the first N training examples." };
        var testLimit = new Option<int?>("--test-limit") { Description = "Score only the first N test examples." };
        var epochs = new Option<int>("--epochs") { DefaultValueFactory = _ => 10 };
        var batch = new Option<int>("--batch") { DefaultValueFactory = _ => 32 };
        var maxLength = new Option<int>("--max-length") { DefaultValueFactory = _ => 128 };
        var learningRate = new Option<double?>("--lr") { Description = "Peak learning rate (default: the method's, docs/decisions/007)." };
        var cell = new Option<string>("--cell") { Description = "READ cell: gru | rnn | lstm.", DefaultValueFactory = _ => "gru" };
        var r = new Option<int>("--r") { Description = "READ side-network hidden size.", DefaultValueFactory = _ => 64 };
        var pooling = new Option<string>("--pooling") { Description = "READ head pooling: mean | cls.", DefaultValueFactory = _ => "mean" };
        var loraR = new Option<int>("--lora-r") { DefaultValueFactory = _ => 8 };
        var loraAlpha = new Option<double>("--lora-alpha") { DefaultValueFactory = _ => 8 };
        var loraTargets = new Option<string[]>("--lora-targets")
        {
            Description = "Projections LoRA adapts: query key value attention.output.dense intermediate.dense output.dense.",
            AllowMultipleArgumentsPerToken = true,
        };
        var adapterSize = new Option<int>("--adapter-size") { Description = "Bottleneck width m of the adapters.", DefaultValueFactory = _ => 64 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 0 };
        var backbone = new Option<string>("--backbone") { DefaultValueFactory = _ => BackboneRegistry.DefaultBackboneId };
        var randomConfig = new Option<string?>("--random-config")
        {
            Description = "L,d: a random-weight BERT (heads d/64, FFN 4d) trained on synthetic sequences of exactly --max-length tokens, " +
                          "for memory and time scaling; no quality is measured.",
        };
        var steps = new Option<int>("--steps") { Description = "With --random-config: optimizer steps (one epoch of steps × batch examples).", DefaultValueFactory = _ => 3 };
        var data = new Option<string>("--data") { Description = "Data directory (backbones, datasets, scratch).", DefaultValueFactory = _ => "data" };
        var command = new Command("method", "Train and test one method (full, LoRA, BitFit, adapters, probe, READ with or without cache) on one dataset; prints `RESULT {json}`.")
        {
            method, dataset, trainLimit, testLimit, epochs, batch, maxLength, learningRate, cell, r, pooling, loraR, loraAlpha, loraTargets,
            adapterSize, seed, backbone, randomConfig, steps, data,
        };
        command.SetAction(async (parse, ct) =>
        {
            var (layers, width) = ParseRandomConfig(parse.GetValue(randomConfig));
            var config = new BaselineConfig
            {
                Method = BaselineConfig.ParseMethod(parse.GetValue(method)!),
                Epochs = parse.GetValue(epochs),
                BatchSize = parse.GetValue(batch),
                MaxLength = parse.GetValue(maxLength),
                LearningRate = parse.GetValue(learningRate),
                Seed = parse.GetValue(seed),
                LoraRank = parse.GetValue(loraR),
                LoraAlpha = parse.GetValue(loraAlpha),
                LoraTargets = parse.GetValue(loraTargets) is { Length: > 0 } targets ? targets : BertLoraTargets.Targets.Default,
                AdapterSize = parse.GetValue(adapterSize),
                Cell = JsonEnum<RecurrentCell>.Parse(parse.GetValue(cell)),
                SideHiddenSize = parse.GetValue(r),
                Pooling = JsonEnum<Pooling>.Parse(parse.GetValue(pooling)),
            };
            var settings = new MethodBenchmark.Settings(
                config, parse.GetValue(dataset), parse.GetValue(backbone)!, parse.GetValue(data)!, parse.GetValue(trainLimit), parse.GetValue(testLimit),
                layers, width, parse.GetValue(steps));
            return await MethodBenchmark.RunAsync(settings, ct);
        });
        return command;
    }

    private static (int? Layers, int? Width) ParseRandomConfig(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
            return (null, null);
        var parts = text.Split(',', StringSplitOptions.TrimEntries);
        if (parts.Length != 2 || !int.TryParse(parts[0], CultureInfo.InvariantCulture, out var l) || !int.TryParse(parts[1], CultureInfo.InvariantCulture, out var d)
            || l < 1 || d < 64 || d % 64 != 0)
            throw new ArgumentException($"--random-config takes L,d with d a multiple of 64 (got '{text}').");
        return (l, d);
    }
}
