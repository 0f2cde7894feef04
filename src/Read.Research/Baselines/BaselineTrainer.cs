using Read.Domain.Backbones.Bert;
using System.Diagnostics;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Research.Baselines;

/// <summary>
/// Trains one method on a classification set and scores it on a test set, on a backbone loaded fresh from its
/// checkpoint directory (never a shared instance: full fine-tuning, BitFit and adapters change or extend it). Every
/// method gets the same tokenizer, max length, batch size, epochs, shuffles and AdamW schedule; labels are the
/// training set's, in ordinal order.
/// </summary>
public static class BaselineTrainer
{
    // libtorch's default generator is process-wide: seeding and initialising a model must not interleave across runs.
    private static readonly Lock SeedLock = new();

    /// <param name="workDirectory">Scratch space (READ's activation cache, the adapter-size file); the caller removes it.</param>
    /// <param name="test">Examples to score after training; null to skip evaluation.</param>
    /// <param name="backboneLoaded">Called once the backbone is loaded, before anything else: lets a benchmark separate the
    /// loading transient (file bytes, widened arrays) from training memory.</param>
    public static BaselineResult Run(
        BaselineConfig config, string backboneId, string checkpointDirectory, IReadOnlyList<LabeledExample> train,
        IReadOnlyList<LabeledExample>? test, string workDirectory, CancellationToken cancellationToken, Action? backboneLoaded = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(train);
        var errors = config.Validate();
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(config));
        if (train.Count == 0)
            throw new ArgumentException("The training set is empty.", nameof(train));
        var labels = train.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (labels.Count < 2)
            throw new ArgumentException("Classification needs at least two distinct labels.", nameof(train));

        var backbone = HuggingFaceCheckpoint.Load(backboneId, checkpointDirectory);
        try
        {
            backboneLoaded?.Invoke();
            return config.Method switch
            {
                BaselineMethod.Read => RunRead(config, backbone, train, test, workDirectory, cancellationToken),
                BaselineMethod.ReadNoCache => ReadWithoutCacheTrainer.Run(config, backbone, train, test, labels, workDirectory, cancellationToken),
                BaselineMethod.Probe => RunProbe(config, backbone, train, test, labels, workDirectory, cancellationToken),
                _ => RunEndToEnd(config, backbone, train, test, labels, workDirectory, cancellationToken),
            };
        }
        finally
        {
            backbone.Dispose();
        }
    }

    /// <summary>A classifier for <paramref name="config"/>'s method on <paramref name="backbone"/>'s model, seeded.</summary>
    internal static BaselineClassifier CreateClassifier(Backbone backbone, BaselineConfig config, int classes)
    {
        lock (SeedLock)
        {
            manual_seed(config.Seed);
            // The baselines (LoRA, adapters, BitFit, full fine-tuning) are written against BERT's modules.
            var bert = backbone.Model as BertModel
                ?? throw new NotSupportedException($"Baselines run on BERT backbones only; '{backbone.Id}' is {backbone.Architecture}.");
            return new BaselineClassifier(bert, config, classes);
        }
    }

    /// <summary>Seeds libtorch and builds a model under the same lock as every other run.</summary>
    internal static T Seeded<T>(int seed, Func<T> create)
    {
        lock (SeedLock)
        {
            manual_seed(seed);
            return create();
        }
    }

    internal static long[] Classes(IReadOnlyList<LabeledExample> examples, IReadOnlyList<string> labels)
    {
        var index = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (long)p.i, StringComparer.Ordinal);
        return examples.Select(e => index.TryGetValue(e.Label, out var k)
            ? k : throw new ArgumentException($"Label '{e.Label}' does not occur in the training set ({string.Join(", ", labels)}).", nameof(examples))).ToArray();
    }

    /// <summary>
    /// The shared loop: each epoch shuffles the example indices with a generator seeded once (as READ does), cuts batches
    /// of <see cref="BaselineConfig.BatchSize"/>, and takes one AdamW step per batch. <paramref name="loss"/> gets a
    /// batch's indices and returns its mean loss. Returns each epoch's mean training loss.
    /// </summary>
    internal static List<double> TrainLoop(
        int count, BaselineConfig config, IEnumerable<Parameter> parameters, Func<long[], Tensor> loss, CancellationToken cancellationToken)
    {
        var batchesPerEpoch = (count + config.BatchSize - 1) / config.BatchSize;
        using var optimizer = new AdamWSchedule(parameters, config.EffectiveLearningRate, config.WeightDecay, config.WarmupRatio, config.MaxGradNorm,
            config.Epochs * batchesPerEpoch);
        var shuffle = new Random(config.Seed);
        var order = Enumerable.Range(0, count).Select(i => (long)i).ToArray();
        var losses = new List<double>(config.Epochs);
        for (var epoch = 0; epoch < config.Epochs; epoch++)
        {
            shuffle.Shuffle(order);
            double sum = 0;
            for (var start = 0; start < count; start += config.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var indices = order[start..Math.Min(count, start + config.BatchSize)];
                var batchLoss = loss(indices);
                optimizer.Step(batchLoss);
                sum += batchLoss.item<float>() * indices.Length;
            }

            losses.Add(sum / count);
        }

        return losses;
    }

    /// <summary>Tokenizes examples[indices] in order, padded to the batch's longest.</summary>
    internal static EncodedBatch Encode(Backbone backbone, IReadOnlyList<LabeledExample> examples, IEnumerable<long> indices, int maxLength)
    {
        var batch = indices.Select(i => examples[(int)i]).ToList();
        return backbone.Encode(batch.Select(e => e.Text).ToList(), batch.Select(e => e.TextPair).ToList(), maxLength);
    }

    internal static EvaluationMetrics Score(IReadOnlyList<int> predicted, IReadOnlyList<LabeledExample> test, IReadOnlyList<string> labels) =>
        MetricsCalculator.Classification(predicted, Classes(test, labels).Select(c => (int)c).ToList(), labels.Count);

    private static BaselineResult RunEndToEnd(
        BaselineConfig config, Backbone backbone, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample>? test,
        IReadOnlyList<string> labels, string workDirectory, CancellationToken cancellationToken)
    {
        using var model = CreateClassifier(backbone, config, labels.Count);
        var classes = Classes(train, labels);
        var clock = Stopwatch.StartNew();
        var losses = Fit(model, backbone, train, classes, config, cancellationToken);
        var trainSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var metrics = test is null ? null : Score(Predict(model, backbone, test, config), test, labels);
        return new BaselineResult
        {
            Method = config.Method,
            LearningRate = config.EffectiveLearningRate,
            TrainExamples = train.Count,
            TestExamples = test?.Count ?? 0,
            TrainableParameters = model.TrainableParameters,
            AdapterBytes = TrainableTensors.MeasureBytes(model.TrainableTensors().Select(t => (t.Name, (Tensor)t.Parameter)), workDirectory),
            Test = metrics,
            TrainSeconds = trainSeconds,
            EvaluateSeconds = clock.Elapsed.TotalSeconds,
            Steps = losses.Count * ((train.Count + config.BatchSize - 1) / config.BatchSize),
            EpochLosses = losses,
        };
    }

    /// <summary>End-to-end training through the backbone (full, LoRA, BitFit, adapters): gradients flow into whatever the method unfroze.</summary>
    internal static List<double> Fit(
        BaselineClassifier model, Backbone backbone, IReadOnlyList<LabeledExample> train, long[] classes, BaselineConfig config, CancellationToken cancellationToken) =>
        TrainLoop(train.Count, config, model.parameters(), indices =>
        {
            var encoded = Encode(backbone, train, indices, config.MaxLength);
            var logits = model.call(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds); // (B, classes)
            return nn.functional.cross_entropy(logits, tensor(indices.Select(i => classes[i]).ToArray()));
        }, cancellationToken);

    /// <summary>Predicted class of every example, under no_grad.</summary>
    internal static int[] Predict(BaselineClassifier model, Backbone backbone, IReadOnlyList<LabeledExample> examples, BaselineConfig config)
    {
        using var noGrad = no_grad();
        var predicted = new List<int>(examples.Count);
        for (var start = 0; start < examples.Count; start += config.BatchSize)
        {
            using var scope = NewDisposeScope();
            var indices = Enumerable.Range(start, Math.Min(config.BatchSize, examples.Count - start)).Select(i => (long)i);
            var encoded = Encode(backbone, examples, indices, config.MaxLength);
            predicted.AddRange(model.call(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds).argmax(-1).data<long>().ToArray().Select(p => (int)p));
        }

        return [.. predicted];
    }

    /// <summary>Masked-mean-pooled final states of the frozen backbone, (N, d), under no_grad: a probe's features.</summary>
    internal static Tensor Features(BaselineClassifier model, Backbone backbone, IReadOnlyList<LabeledExample> examples, BaselineConfig config)
    {
        using var noGrad = no_grad();
        var rows = new List<Tensor>();
        try
        {
            for (var start = 0; start < examples.Count; start += config.BatchSize)
            {
                using var scope = NewDisposeScope();
                var indices = Enumerable.Range(start, Math.Min(config.BatchSize, examples.Count - start)).Select(i => (long)i);
                var encoded = Encode(backbone, examples, indices, config.MaxLength);
                rows.Add(model.Pool(encoded.InputIds, encoded.AttentionMask, encoded.TokenTypeIds).MoveToOuterDisposeScope());
            }

            return cat(rows, 0);
        }
        finally
        {
            foreach (var row in rows)
                row.Dispose();
        }
    }

    private static BaselineResult RunProbe(
        BaselineConfig config, Backbone backbone, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample>? test,
        IReadOnlyList<string> labels, string workDirectory, CancellationToken cancellationToken)
    {
        using var model = CreateClassifier(backbone, config, labels.Count);
        var classes = Classes(train, labels);
        var clock = Stopwatch.StartNew();
        using var features = Features(model, backbone, train, config); // (N, d), computed once
        var precomputeSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        var losses = TrainLoop(train.Count, config, model.parameters(), indices =>
        {
            var logits = model.Head(features.index_select(0, tensor(indices))); // (B, classes)
            return nn.functional.cross_entropy(logits, tensor(indices.Select(i => classes[i]).ToArray()));
        }, cancellationToken);
        var trainSeconds = clock.Elapsed.TotalSeconds;

        clock.Restart();
        EvaluationMetrics? metrics = null;
        if (test is not null)
        {
            using var testFeatures = Features(model, backbone, test, config);
            using var noGrad = no_grad();
            using var predicted = model.Head(testFeatures).argmax(-1);
            metrics = Score(predicted.data<long>().ToArray().Select(p => (int)p).ToList(), test, labels);
        }

        return new BaselineResult
        {
            Method = config.Method,
            LearningRate = config.EffectiveLearningRate,
            TrainExamples = train.Count,
            TestExamples = test?.Count ?? 0,
            TrainableParameters = model.TrainableParameters,
            AdapterBytes = TrainableTensors.MeasureBytes(model.TrainableTensors().Select(t => (t.Name, (Tensor)t.Parameter)), workDirectory),
            Test = metrics,
            PrecomputeSeconds = precomputeSeconds,
            TrainSeconds = trainSeconds,
            EvaluateSeconds = clock.Elapsed.TotalSeconds,
            Steps = losses.Count * ((train.Count + config.BatchSize - 1) / config.BatchSize),
            EpochLosses = losses,
        };
    }

    /// <summary>READ as the service runs it: activation cache (fresh, under the work directory), side network, head.</summary>
    private static BaselineResult RunRead(
        BaselineConfig config, Backbone backbone, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample>? test,
        string workDirectory, CancellationToken cancellationToken)
    {
        var cacheDirectory = Path.Combine(workDirectory, "activation-cache");
        var progress = new EpochRecorder();
        // An empty validation set: READ trains on exactly the examples the other methods train on, with no holdout.
        var result = new ReadFineTuner().Run(backbone, train, [], FineTuneTask.Classification, config.ToReadHyperparameters(), cacheDirectory, progress, cancellationToken);
        using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
        var clock = Stopwatch.StartNew();
        var metrics = test is null ? null : ReadFineTuner.Evaluate(backbone, adapter, test, cacheDirectory).Metrics;
        return new BaselineResult
        {
            Method = config.Method,
            LearningRate = config.EffectiveLearningRate,
            TrainExamples = result.Metrics.TrainExamples,
            TestExamples = test?.Count ?? 0,
            TrainableParameters = result.Metrics.TrainableParameters,
            AdapterBytes = TrainableTensors.MeasureBytes(adapter.Classifier.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), workDirectory),
            Test = metrics,
            PrecomputeSeconds = result.Metrics.PrecomputeSeconds,
            TrainSeconds = result.Metrics.TrainSeconds,
            EvaluateSeconds = clock.Elapsed.TotalSeconds,
            Steps = result.Metrics.EpochsRun * ((train.Count + config.BatchSize - 1) / config.BatchSize),
            EpochLosses = progress.Losses,
        };
    }

    private sealed class EpochRecorder : IFineTuneProgress
    {
        public List<double> Losses { get; } = [];

        public void StageStarted(FineTuneStage stage)
        {
        }

        public void Progress(FineTuneStage stage, double fraction)
        {
        }

        public void EpochCompleted(EpochMetrics metrics) => Losses.Add(metrics.TrainLoss);
    }
}
