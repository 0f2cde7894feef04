using System.CommandLine;
using System.Diagnostics;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.SideNetwork;
using TorchSharp;

namespace Read.Bench.Load;

/// <summary>
/// `read-bench shared-forward`: in one process, four adapters' 8-text requests run alone (four forwards) vs as one
/// shared 32-row forward (<see cref="SharedForwardPredictor"/>), alternated. Separates the batcher's compute from the
/// serving around it when the load test disagrees.
/// </summary>
internal static class SharedForwardCommand
{
    public static Command Create()
    {
        var data = new Option<string>("--data") { DefaultValueFactory = _ => "data/load-test", Description = "Data directory the backbone is imported into." };
        var rounds = new Option<int>("--rounds") { DefaultValueFactory = _ => 3 };
        var command = new Command("shared-forward", "Four 8-text predicts alone vs one shared 32-row forward, MiniLM, in one process.") { data, rounds };
        command.SetAction(parse =>
        {
            using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = Path.GetFullPath(parse.GetValue(data)!) });
            var backbone = registry.Get(BackboneRegistry.DefaultBackboneId);
            var d = backbone.Shape.HiddenSize;
            var layers = Enumerable.Range(1, backbone.Shape.NumHiddenLayers).ToArray();
            var adapters = Enumerable.Range(0, 4).Select(seed =>
            {
                torch.manual_seed(seed);
                using var classifier = new ReadClassifier(new ReadSideNetwork(d, 64, zeroInitOutput: false), d, 2, Pooling.Mean);
                var config = new AdapterConfig(backbone.Id, backbone.WeightsHash, d, RecurrentCell.Gru, 64, LayerAggregation.Mean, layers, ["negative", "positive"], 64,
                    AdapterTokenizerConfig.From(backbone.TokenizerSettings), Pooling: Pooling.Mean, Architecture: backbone.Architecture, ModelType: backbone.ModelType);
                return AdapterArtifact.Load(AdapterArtifact.Write(config, classifier, new { }), backbone);
            }).ToArray();
            var random = new Random(1);
            string[] subjects = ["the movie", "this phone", "our dinner", "the service"];
            var texts = Enumerable.Range(0, 32).Select(_ => string.Join(", and ", Enumerable.Range(0, random.Next(1, 8)).Select(_ => $"{subjects[random.Next(4)]} was good"))).ToArray();
            Console.WriteLine($"{backbone.Id}, {torch.get_num_threads()} threads, texts of 1-7 clauses, max_length 64");
            for (var round = 0; round < parse.GetValue(rounds); round++)
            {
                var clock = Stopwatch.StartNew();
                for (var a = 0; a < 4; a++)
                    AdapterPredictor.Predict(backbone, adapters[a], texts[(a * 8)..(a * 8 + 8)], null);
                var alone = clock.Elapsed.TotalMilliseconds;
                clock.Restart();
                SharedForwardPredictor.Predict(backbone, adapters.Select((adapter, a) => new SharedForwardPredictor.Segment(adapter, texts[(a * 8)..(a * 8 + 8)], null)).ToList(), out var forward);
                var shared = clock.Elapsed.TotalMilliseconds;
                Console.WriteLine($"round {round}: 4 × 8 texts alone {alone:F0} ms; shared 32 rows {shared:F0} ms (tokenize + forward {forward * 1000:F0} ms); alone / shared {alone / shared:F2}");
            }

            foreach (var adapter in adapters)
                adapter.Dispose();
        });
        return command;
    }
}
