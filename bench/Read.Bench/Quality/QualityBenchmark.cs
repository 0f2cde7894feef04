using Read.Domain.Configuration;
using Read.Domain.SideNetwork;
using System.Globalization;
using Read.Bench.Data;
using Read.Bench.Measurement;
using Read.Bench.Reporting;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using Read.Research.Baselines;
using TorchSharp;

namespace Read.Bench.Quality;

/// <summary>
/// For each dataset: READ (one row per pooling) and a head-only linear probe on the same frozen backbone, scored on the
/// held-out test split; plus the cost ratios the issue targets, all measured in this one process.
/// </summary>
internal static class QualityBenchmark
{
    public sealed record Settings(
        IReadOnlyList<string> Datasets, string BackboneId, string DataDirectory, string OutputDirectory, IReadOnlyList<string> Poolings,
        int Epochs, int Patience, int SideHiddenSize, double LearningRate, int MaxLength, int Seed, bool Quick, string? Tag, string CommandLine);

    private const int PredictBatch = 32;

    public static async Task RunAsync(Settings s, CancellationToken ct)
    {
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = s.DataDirectory });
        var backbone = registry.Get(s.BackboneId);
        var denseParameters = BackboneFlops.DenseParameters(backbone);
        var matmul = MatmulRate.MeasureGflops();
        Console.WriteLine($"backbone {s.BackboneId}: {backbone.Shape.NumHiddenLayers} layers, d={backbone.Shape.HiddenSize}; " +
                          $"fp32 matmul {matmul:F1} GFLOP/s on {torch.get_num_threads()} threads");

        var quality = new MarkdownTable("dataset", "method", "test accuracy", "test F1", "test macro F1", "trainable params", "epochs run (best)");
        var cost = new MarkdownTable("dataset", "method", "train+val examples", "precompute s", "train s", "s / epoch",
            "epoch / precompute", "cache MB", "precompute GFLOP/s", "of matmul rate", "predict: side-network overhead");
        var cacheRoot = Path.Combine(s.DataDirectory, "bench-cache", DateTime.UtcNow.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture));

        foreach (var name in s.Datasets)
        {
            var (train, validation, test) = await LoadSplitsAsync(name, s, ct);
            var labels = train.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();  // List: IndexOf
            Console.WriteLine($"\n== {name}: {train.Count} train / {validation.Count} validation / {test.Count} test");
            var precomputeFlops = TokenCounts(backbone, train.Concat(validation).ToList(), s.MaxLength)
                                      .Sum(n => BackboneFlops.ForExample(backbone.Shape, denseParameters, n));

            foreach (var pooling in s.Poolings)
            {
                var hp = new ReadHyperparameters
                {
                    Pooling = JsonEnum<Pooling>.Parse(pooling), Epochs = s.Quick ? 2 : s.Epochs, EarlyStoppingPatience = s.Patience, SideHiddenSize = s.SideHiddenSize,
                    LearningRate = s.LearningRate, MaxLength = s.MaxLength, Seed = s.Seed,
                };
                var cacheDirectory = Path.Combine(cacheRoot, $"{name}-{pooling}");
                var result = new ReadFineTuner().Run(backbone, train, validation, FineTuneTask.Classification, hp, cacheDirectory, new ConsoleProgress(), ct);
                using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
                var evaluation = ReadFineTuner.Evaluate(backbone, adapter, test, cacheDirectory);
                var m = result.Metrics;
                var method = $"READ gru r={s.SideHiddenSize} {pooling}";
                quality.Add(name, method, evaluation.Metrics.Accuracy, evaluation.Metrics.F1, evaluation.Metrics.MacroF1,
                    m.TrainableParameters, $"{m.EpochsRun} ({m.BestEpoch})");
                var perEpoch = m.TrainSeconds / Math.Max(1, m.EpochsRun);
                var gflops = precomputeFlops / m.PrecomputeSeconds / 1e9;
                cost.Add(name, method, m.TrainExamples + m.ValidationExamples, m.PrecomputeSeconds, m.TrainSeconds, perEpoch,
                    Percent(perEpoch / m.PrecomputeSeconds), m.CacheBytes / 1e6, gflops, Percent(gflops / matmul),
                    Percent(PredictOverhead(backbone, adapter, test)));
                Console.WriteLine($"{method}: test {evaluation.Metrics.Describe()}");
            }

            var probe = RunProbe(train, test, s, ct);
            var probeMetrics = probe.Test!;
            quality.Add(name, "linear probe (mean-pooled)", probeMetrics.Accuracy, probeMetrics.F1, probeMetrics.MacroF1, probe.TrainableParameters,
                $"{probe.EpochLosses.Count} (last)");
            cost.Add(name, "linear probe (mean-pooled)", train.Count, probe.PrecomputeSeconds ?? double.NaN, probe.TrainSeconds,
                probe.TrainSeconds / Math.Max(1, probe.EpochLosses.Count), "", double.NaN, double.NaN, "", "");
            Console.WriteLine($"linear probe: test {probeMetrics.Describe()}");
        }

        Directory.CreateDirectory(s.OutputDirectory);
        var stem = Path.Combine(s.OutputDirectory, "read-quality" + (s.Quick ? "-quick" : "") + (s.Tag is { Length: > 0 } t ? "-" + t : ""));
        var markdown =
            $"# READ vs linear probe on {s.BackboneId}\n\n" +
            $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on {Environment.ProcessorCount} cores; fp32 matmul {matmul:F1} GFLOP/s " +
            $"(1024², {torch.get_num_threads()} threads), same process. Command:\n\n```\n{s.CommandLine}\n```\n\n" +
            $"Hyperparameters: epochs ≤ {(s.Quick ? 2 : s.Epochs)}, early-stopping patience {s.Patience}, r = {s.SideHiddenSize}, " +
            $"lr {s.LearningRate}, max length {s.MaxLength}, seed {s.Seed}; otherwise the service defaults.\n\n" +
            "## Quality (test split)\n\n" + quality.ToMarkdown() + "\n## Cost\n\n" + cost.ToMarkdown() +
            "\n`epoch / precompute`: one training epoch over the cache relative to running the backbone once over the same " +
            "examples (target ≤ 5%). `of matmul rate`: precompute FLOPs (2·dense params·tokens + 4·S·d·L per token, real tokens only) " +
            "per second over the fp32 matmul rate (target ≥ 50%). `side-network overhead`: side network + head time, over " +
            $"backbone time (tokenization + forward), for a batch of {PredictBatch} test inputs, 10 calls (target ≤ 10%).\n";
        await File.WriteAllTextAsync(stem + ".md", markdown, ct);
        await File.WriteAllTextAsync(stem + "-quality.csv", quality.ToCsv(), ct);
        await File.WriteAllTextAsync(stem + "-cost.csv", cost.ToCsv(), ct);
        Console.WriteLine("\n" + quality.ToMarkdown() + "\n" + cost.ToMarkdown());
        Console.WriteLine($"written: {stem}.md, -quality.csv, -cost.csv");
        try { Directory.Delete(cacheRoot, recursive: true); } catch (IOException) { }
    }

    private static string Percent(double ratio) => double.IsFinite(ratio) ? ratio.ToString("P1", CultureInfo.InvariantCulture) : "n/a";

    private static async Task<(IReadOnlyList<LabeledExample>, IReadOnlyList<LabeledExample>, IReadOnlyList<LabeledExample>)> LoadSplitsAsync(
        string name, Settings s, CancellationToken ct)
    {
        var splits = await BenchDatasets.LoadAsync(name, s.DataDirectory, s.Quick ? 200 : null, s.Quick ? 50 : null, s.Quick ? 100 : null, ct);
        return (splits.Train, splits.Validation, splits.Test);
    }

    /// <summary>Real (unpadded) token count of each example after truncation.</summary>
    private static IEnumerable<int> TokenCounts(Backbone backbone, IReadOnlyList<LabeledExample> examples, int maxLength)
    {
        for (var start = 0; start < examples.Count; start += 256)
        {
            var batch = examples.Skip(start).Take(256).ToList();
            using var encoded = backbone.Encode(batch.Select(e => e.Text).ToList(), batch.Select(e => e.TextPair).ToList(), maxLength);
            using var lengths = encoded.AttentionMask.sum(1);
            foreach (var n in lengths.data<long>())
                yield return (int)n;
        }
    }

    /// <summary>
    /// Side network + head time over backbone time inside the predict path, summed over repeated calls on one batch of
    /// test inputs (after a warm-up call); measured within each call, so machine noise hits both sides alike.
    /// </summary>
    private static double PredictOverhead(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<LabeledExample> test)
    {
        var batch = test.Take(PredictBatch).ToList();
        var texts = batch.Select(e => e.Text).ToList();
        var pairs = batch.Select(e => e.TextPair).ToList();
        AdapterPredictor.Predict(backbone, adapter, texts, pairs);
        var timings = new PredictionTimings();
        for (var i = 0; i < 10; i++)
            AdapterPredictor.Predict(backbone, adapter, texts, pairs, timings);
        return timings.SideNetwork / timings.Backbone;
    }

    /// <summary>
    /// The one linear probe every benchmark uses (<see cref="BaselineTrainer"/>'s, issue 7): a head on frozen mean-pooled
    /// features, the same epochs, batch size, AdamW schedule and seed budget as the other baselines, trained on the
    /// training split only (no validation-based epoch choice), scored on the test split.
    /// </summary>
    private static BaselineResult RunProbe(IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample> test, Settings s, CancellationToken ct)
    {
        var config = new BaselineConfig { Method = BaselineMethod.Probe, Epochs = s.Quick ? 2 : s.Epochs, MaxLength = s.MaxLength, Seed = s.Seed };
        var directory = Path.GetFullPath(Path.Combine(s.DataDirectory, "backbones", s.BackboneId));
        var work = Path.Combine(Path.GetTempPath(), "read-bench-probe-" + Guid.NewGuid().ToString("N"));
        try
        {
            return BaselineTrainer.Run(config, s.BackboneId, directory, train, test, work, ct);
        }
        finally
        {
            if (Directory.Exists(work))
                Directory.Delete(work, recursive: true);
        }
    }

    private sealed class ConsoleProgress : IFineTuneProgress
    {
        public void StageStarted(FineTuneStage stage) => Console.WriteLine($"  stage {stage}");

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics metrics) =>
            Console.WriteLine($"  epoch {metrics.Epoch}: {metrics.Describe()} ({metrics.Seconds:F1} s)");
    }
}
