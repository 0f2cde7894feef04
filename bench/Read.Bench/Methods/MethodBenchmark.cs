using Read.Domain.Configuration;
using Read.Domain.SideNetwork;
using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using Read.Bench.Data;
using Read.Bench.Measurement;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Datasets;
using Read.Research.Baselines;
using TorchSharp;

namespace Read.Bench.Methods;

/// <summary>
/// Runs one method on one dataset (or on synthetic full-length sequences of a random-weight backbone) in this process and
/// prints <c>RESULT {json}</c> on stdout; progress goes to stderr. One process per method keeps peak RSS per method.
/// </summary>
internal static class MethodBenchmark
{
    public sealed record Settings(
        BaselineConfig Config, string? Dataset, string BackboneId, string DataDirectory, int? TrainLimit, int? TestLimit,
        int? RandomLayers, int? RandomWidth, int Steps);

    private const int RandomWeightsSeed = 0;

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    public static async Task<int> RunAsync(Settings s, CancellationToken ct)
    {
        var wall = Stopwatch.StartNew();
        var cpuStart = ProcessStats.CpuSeconds();
        var config = s.Config;
        string backboneId, directory, datasetName;
        IReadOnlyList<LabeledExample> train;
        IReadOnlyList<LabeledExample>? test;
        var generated = false;
        if (s.RandomLayers is { } layers && s.RandomWidth is { } width)
        {
            backboneId = $"random-L{layers}-d{width}";
            directory = Path.GetFullPath(Path.Combine(s.DataDirectory, "backbones", backboneId));
            if (!File.Exists(Path.Combine(directory, HuggingFaceCheckpoint.WeightsFile)))
            {
                Console.Error.WriteLine($"generating {backboneId} in {directory}");
                var bert = new BertConfig(1, width, layers, width / 64, 4 * width, Math.Max(512, config.MaxLength));
                TinyBertCheckpoint.Write(directory, bert, RandomWeightsSeed);
                generated = true;
            }

            config = config with { Epochs = 1 };
            train = SyntheticSequences(s.Steps * config.BatchSize, config.MaxLength - 2, config.Seed);
            test = null;
            datasetName = "synthetic";
        }
        else
        {
            datasetName = s.Dataset ?? throw new ArgumentException("--dataset is required (or --random-config).");
            using (var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = s.DataDirectory }))
            {
                if (!registry.Contains(s.BackboneId))
                    throw new ArgumentException($"Unknown backbone '{s.BackboneId}'.");
                registry.Info(s.BackboneId); // generates or imports the checkpoint directory if needed, loads nothing
            }

            backboneId = s.BackboneId;
            directory = Path.GetFullPath(Path.Combine(s.DataDirectory, "backbones", backboneId));
            var splits = await BenchDatasets.LoadAsync(datasetName, s.DataDirectory, s.TrainLimit, 0, s.TestLimit, ct);
            train = splits.Train;
            test = splits.Test;
        }

        Console.Error.WriteLine($"{BaselineConfig.NameOf(config.Method)} on {datasetName} ({backboneId}): {train.Count} train / {test?.Count ?? 0} test, " +
                                $"{config.Epochs} epochs, batch {config.BatchSize}, max length {config.MaxLength}, lr {config.EffectiveLearningRate}");
        var work = Path.Combine(s.DataDirectory, "bench-cache", "method-" + Guid.NewGuid().ToString("N"));
        // Loading widens the whole checkpoint into managed arrays next to the model: a transient every method pays once.
        // After it, collect and reset VmHWM so train_peak_rss_mb is the memory of training itself (model included).
        double setupPeak = 0;
        var reset = false;
        void BackboneLoaded()
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            setupPeak = ProcessStats.PeakRssMb();
            reset = ProcessStats.ResetPeakRss();
        }

        BaselineResult result;
        try
        {
            result = BaselineTrainer.Run(config, backboneId, directory, train, test, work, ct, BackboneLoaded);
        }
        finally
        {
            try
            {
                if (Directory.Exists(work))
                    Directory.Delete(work, recursive: true);
            }
            catch (IOException)
            {
            }
        }

        var endPeak = ProcessStats.PeakRssMb();
        var isRead = config.Method is BaselineMethod.Read or BaselineMethod.ReadNoCache;
        var isLora = config.Method == BaselineMethod.Lora;
        var line = new MethodResultLine(
            BaselineConfig.NameOf(config.Method), datasetName, backboneId, config.Epochs, config.BatchSize, config.MaxLength, result.LearningRate, config.Seed,
            result.TrainExamples, result.TestExamples, result.TrainableParameters, result.AdapterBytes,
            result.Test?.Accuracy, result.Test?.F1, result.Test?.MacroF1,
            Round(wall.Elapsed.TotalSeconds), Round(ProcessStats.CpuSeconds() - cpuStart), Round(Math.Max(setupPeak, endPeak)),
            reset ? Round(endPeak) : null, Round(setupPeak), generated,
            result.PrecomputeSeconds is { } pre ? Round(pre) : null, Round(result.TrainSeconds), Round(result.EvaluateSeconds), result.Steps,
            result.EpochLosses.Select(l => Math.Round(l, 6)).ToList(), torch.get_num_threads(),
            s.RandomLayers is null ? null : $"{s.RandomLayers},{s.RandomWidth}",
            isRead ? JsonEnum<RecurrentCell>.Name(config.Cell) : null, isRead ? config.SideHiddenSize : null, isRead ? JsonEnum<Pooling>.Name(config.Pooling) : null,
            isLora ? config.LoraRank : null, isLora ? config.LoraAlpha : null, isLora ? config.LoraTargets : null,
            config.Method == BaselineMethod.Adapters ? config.AdapterSize : null);
        Console.WriteLine("RESULT " + JsonSerializer.Serialize(line, Json));
        return 0;
    }

    private static double Round(double value) => Math.Round(value, 3);

    /// <summary>
    /// Texts of exactly <paramref name="words"/> whole-word tokens of the generated vocabulary, so every example is
    /// words + 2 tokens long after [CLS] and [SEP]; alternating labels.
    /// </summary>
    private static List<LabeledExample> SyntheticSequences(int count, int words, int seed)
    {
        var vocabulary = TinyBertCheckpoint.Vocabulary().Where(t => t.Length > 1 && t.All(char.IsAsciiLetterLower)).ToArray();
        var random = new Random(seed);
        return Enumerable.Range(0, count)
            .Select(i => new LabeledExample(string.Join(' ', Enumerable.Range(0, words).Select(_ => vocabulary[random.Next(vocabulary.Length)])), null, i % 2 == 0 ? "a" : "b"))
            .ToList();
    }
}
