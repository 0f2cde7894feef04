using System.Diagnostics;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

/// <summary>
/// READ without the activation cache: the frozen backbone runs under no_grad on every step of every epoch and feeds the
/// same side network and head, built, seeded, shuffled and optimised exactly as <see cref="ReadFineTuner"/> does. The
/// only numerical difference from READ is fp32 live states instead of the cache's fp16, so the gap in time between the
/// two is what the cache itself buys.
/// </summary>
internal static class ReadWithoutCacheTrainer
{
    public static BaselineResult Run(
        BaselineConfig config, Backbone backbone, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample>? test,
        IReadOnlyList<string> labels, string workDirectory, CancellationToken cancellationToken)
    {
        var hp = config.ToReadHyperparameters();
        var errors = hp.Validate(backbone.Shape.MaxPositionEmbeddings, backbone.Shape.NumHiddenLayers);
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(config));
        var layout = LayerLayout.Create(hp.Layers, backbone.Shape.NumHiddenLayers, hp.InitialState == InitialState.Embedding);
        var d = backbone.Shape.HiddenSize;
        using var model = BaselineTrainer.Seeded(hp.Seed, () => new ReadClassifier(
            new ReadSideNetwork(new ReadSideNetworkConfig(d, hp.SideHiddenSize, hp.Cell, hp.Aggregation, hp.InputNorm, hp.ZeroInitOutput, hp.InitialState), layout),
            d, labels.Count, hp.Pooling));
        var classes = BaselineTrainer.Classes(train, labels);

        var clock = Stopwatch.StartNew();
        model.train();
        var losses = BaselineTrainer.TrainLoop(train.Count, config, model.parameters(), indices =>
        {
            var (states, segments) = States(backbone, train, indices, layout, hp);
            var outputs = model.Forward(states, segments, indices.Length); // (B, classes)
            return nn.functional.cross_entropy(outputs, tensor(indices.Select(i => classes[i]).ToArray()));
        }, cancellationToken);
        model.eval();
        var trainSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var metrics = test is null ? null : BaselineTrainer.Score(Predict(model, backbone, test, layout, hp), test, labels);
        return new BaselineResult
        {
            Method = config.Method,
            LearningRate = config.EffectiveLearningRate,
            TrainExamples = train.Count,
            TestExamples = test?.Count ?? 0,
            TrainableParameters = model.TrainableParameters,
            AdapterBytes = TrainableTensors.MeasureBytes(model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), workDirectory),
            Test = metrics,
            TrainSeconds = trainSeconds,
            EvaluateSeconds = clock.Elapsed.TotalSeconds,
            Steps = losses.Count * ((train.Count + config.BatchSize - 1) / config.BatchSize),
            EpochLosses = losses,
        };
    }

    /// <summary>The states the cache would hold for these examples, live: (P, C, d) float32 and each position's example.</summary>
    private static (Tensor States, Tensor Segments) States(
        Backbone backbone, IReadOnlyList<LabeledExample> examples, IEnumerable<long> indices, LayerLayout layout, ReadHyperparameters hp)
    {
        var encoded = BaselineTrainer.Encode(backbone, examples, indices, hp.MaxLength);
        var hidden = backbone.HiddenStates(encoded); // L + 1 × (B, S, d), no_grad
        return HiddenStateGather.Gather(hidden, encoded.AttentionMask, layout.Channels, hp.Pooling);
    }

    private static int[] Predict(ReadClassifier model, Backbone backbone, IReadOnlyList<LabeledExample> examples, LayerLayout layout, ReadHyperparameters hp)
    {
        using var noGrad = no_grad();
        var predicted = new List<int>(examples.Count);
        for (var start = 0; start < examples.Count; start += hp.BatchSize)
        {
            using var scope = NewDisposeScope();
            var indices = Enumerable.Range(start, Math.Min(hp.BatchSize, examples.Count - start)).Select(i => (long)i).ToArray();
            var (states, segments) = States(backbone, examples, indices, layout, hp);
            predicted.AddRange(model.Forward(states, segments, indices.Length).argmax(-1).data<long>().ToArray().Select(p => (int)p));
        }

        return [.. predicted];
    }
}
