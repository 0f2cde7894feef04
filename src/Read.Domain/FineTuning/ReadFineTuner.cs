using System.Diagnostics;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>
/// Runs READ on a frozen backbone: precompute (or reuse) the activation cache, train the side network and head
/// over the cache only, evaluate, and package the adapter.
/// </summary>
public sealed class ReadFineTuner
{
    private const int EvaluateBatchSize = 256;

    // libtorch's default generator is process-wide: seeding and initialising a model must not interleave across jobs.
    private static readonly Lock SeedLock = new();

    public FineTuneResult Run(
        Backbone backbone,
        IReadOnlyList<LabeledExample> train,
        IReadOnlyList<LabeledExample>? validation,
        ReadHyperparameters hyperparameters,
        string cacheDirectory,
        IFineTuneProgress progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(hyperparameters);
        ArgumentNullException.ThrowIfNull(progress);
        var errors = hyperparameters.Validate(backbone.Config.MaxPositionEmbeddings);
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(hyperparameters));
        if (train.Count == 0)
            throw new ArgumentException("The training set is empty.", nameof(train));

        var labels = train.Concat(validation ?? []).Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (labels.Count < 2)
            throw new ArgumentException("Classification needs at least two distinct labels.", nameof(train));
        var labelIndex = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (long)p.i, StringComparer.Ordinal);

        // One cache over train followed by validation; a holdout split only picks indices, so it never changes the cache key.
        var all = validation is null ? train : train.Concat(validation).ToList();
        var (trainIndices, validationIndices) = Split(train.Count, validation?.Count, hyperparameters);

        progress.StageStarted(FineTuneStage.Precompute);
        var clock = Stopwatch.StartNew();
        var (cache, hit) = ActivationCache.GetOrCreate(backbone, all, hyperparameters.MaxLength, cacheDirectory,
            f => progress.Progress(FineTuneStage.Precompute, f), cancellationToken);
        var precomputeSeconds = clock.Elapsed.TotalSeconds;

        progress.StageStarted(FineTuneStage.Train);
        clock.Restart();
        using var states = cache.ToTensor(); // (N, L, d), layers 1..L
        using var targets = torch.tensor(all.Select(e => labelIndex[e.Label]).ToArray(), ScalarType.Int64); // (N)
        using var classifier = CreateClassifier(backbone.Config.HiddenSize, hyperparameters, labels.Count);
        var finalLoss = Train(classifier, states, targets, trainIndices, validationIndices, hyperparameters, progress, cancellationToken);
        var trainSeconds = clock.Elapsed.TotalSeconds;

        progress.StageStarted(FineTuneStage.Evaluate);
        clock.Restart();
        classifier.eval();
        var accuracy = Accuracy(classifier, states, targets, validationIndices);
        progress.Progress(FineTuneStage.Evaluate, 1.0);
        var evaluateSeconds = clock.Elapsed.TotalSeconds;

        var metrics = new FineTuneMetrics(accuracy, finalLoss, classifier.TrainableParameters, trainIndices.Length, validationIndices.Length,
            precomputeSeconds, trainSeconds, evaluateSeconds, hit);
        var config = new AdapterConfig(
            backbone.Id, backbone.WeightsHash, backbone.Config.HiddenSize, hyperparameters.Cell, hyperparameters.SideHiddenSize,
            hyperparameters.Aggregation, Enumerable.Range(1, backbone.Config.NumHiddenLayers).ToList(), labels, hyperparameters.MaxLength,
            new AdapterTokenizerConfig(backbone.LowerCase));
        var artifact = AdapterArtifact.Write(config, classifier, metrics);
        return new FineTuneResult(artifact, metrics, labels);
    }

    /// <summary>
    /// The evaluation path, reusable: precompute (or reuse) the cache for these examples and run the adapter over
    /// the cached states.
    /// </summary>
    public static IReadOnlyList<Prediction> PredictViaCache(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<LabeledExample> examples, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        var (cache, _) = ActivationCache.GetOrCreate(backbone, examples, adapter.Config.MaxLength, cacheDirectory, null, CancellationToken.None);
        using var scope = NewDisposeScope();
        var all = cache.ToTensor();
        using var layerIndex = torch.tensor(adapter.Config.Layers.Select(l => (long)l - 1).ToArray(), ScalarType.Int64);
        var states = all.index_select(1, layerIndex); // (N, |layers|, d)
        return AdapterPredictor.Classify(adapter.Classifier, states, adapter.Config.LabelNames);
    }

    private static ReadClassifier CreateClassifier(int hiddenSize, ReadHyperparameters hp, int labels)
    {
        lock (SeedLock)
        {
            torch.manual_seed(hp.Seed);
            var side = new ReadSideNetwork(hiddenSize, hp.SideHiddenSize, hp.Cell, hp.Aggregation);
            return new ReadClassifier(side, hiddenSize, labels);
        }
    }

    private static double Train(
        ReadClassifier classifier, Tensor states, Tensor targets, long[] trainIndices, long[] validationIndices,
        ReadHyperparameters hp, IFineTuneProgress progress, CancellationToken cancellationToken)
    {
        var batchesPerEpoch = (trainIndices.Length + hp.BatchSize - 1) / hp.BatchSize;
        var totalSteps = hp.Epochs * batchesPerEpoch;
        var warmup = Math.Max(1, totalSteps / 10);
        using var optimizer = optim.AdamW(classifier.parameters(), hp.LearningRate, weight_decay: hp.WeightDecay);
        // Linear warmup over the first tenth of the steps, then linear decay to zero.
        var schedule = optim.lr_scheduler.LambdaLR(optimizer, step =>
            step < warmup ? (step + 1.0) / warmup : Math.Max(0.0, (double)(totalSteps - step) / Math.Max(1, totalSteps - warmup)));
        var shuffle = new Random(hp.Seed);
        var order = (long[])trainIndices.Clone();
        var lastLoss = double.NaN;
        var step = 0;
        for (var epoch = 1; epoch <= hp.Epochs; epoch++)
        {
            classifier.train();
            shuffle.Shuffle(order);
            double lossSum = 0;
            for (var start = 0; start < order.Length; start += hp.BatchSize)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var count = Math.Min(hp.BatchSize, order.Length - start);
                var index = torch.tensor(order.AsSpan(start, count).ToArray(), ScalarType.Int64);
                var logits = classifier.call(states.index_select(0, index)); // (B, labels)
                var loss = nn.functional.cross_entropy(logits, targets.index_select(0, index));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                schedule.step();
                lossSum += loss.item<float>() * count;
                step++;
                progress.Progress(FineTuneStage.Train, (double)step / totalSteps);
            }

            lastLoss = lossSum / order.Length;
            classifier.eval();
            progress.EpochCompleted(epoch, lastLoss, Accuracy(classifier, states, targets, validationIndices));
        }

        return lastLoss;
    }

    private static double Accuracy(ReadClassifier classifier, Tensor states, Tensor targets, long[] indices)
    {
        if (indices.Length == 0)
            return 0.0;
        using var noGrad = no_grad();
        long correct = 0;
        for (var start = 0; start < indices.Length; start += EvaluateBatchSize)
        {
            using var scope = NewDisposeScope();
            var index = torch.tensor(indices.AsSpan(start, Math.Min(EvaluateBatchSize, indices.Length - start)).ToArray(), ScalarType.Int64);
            var predicted = classifier.call(states.index_select(0, index)).argmax(-1);
            correct += predicted.eq(targets.index_select(0, index)).sum().item<long>();
        }

        return (double)correct / indices.Length;
    }

    /// <summary>Train and validation indices into the concatenated example list; a seeded holdout when no validation set is given.</summary>
    private static (long[] Train, long[] Validation) Split(int trainCount, int? validationCount, ReadHyperparameters hp)
    {
        if (validationCount is { } count)
            return (Enumerable.Range(0, trainCount).Select(i => (long)i).ToArray(), Enumerable.Range(trainCount, count).Select(i => (long)i).ToArray());
        var shuffled = Enumerable.Range(0, trainCount).Select(i => (long)i).ToArray();
        new Random(hp.Seed).Shuffle(shuffled);
        var holdout = Math.Min(trainCount - 1, (int)Math.Round(trainCount * hp.ValidationSplit));
        return (shuffled[holdout..].Order().ToArray(), shuffled[..holdout].Order().ToArray());
    }
}
