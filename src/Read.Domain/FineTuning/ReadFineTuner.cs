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
    // Positions per evaluation batch: bounds memory with all-token caches.
    private const int EvaluatePositionBudget = 8192;
    private const int EvaluateMaxExamples = 512;

    // libtorch's default generator is process-wide: seeding and initialising a model must not interleave across jobs.
    private static readonly Lock SeedLock = new();

    /// <summary>
    /// Who may reuse the activation caches this run writes or reads. The service passes one scope per tenant, so a
    /// cache hit never tells one tenant what another trained on (docs/decisions/009-per-tenant-activation-cache.md).
    /// </summary>
    public string CacheScope { get; init; } = ActivationCacheSpec.SharedScope;

    /// <summary>Called after each step of a layer-streamed precompute (the benchmark's per-layer figures).</summary>
    public Action<StreamedPrecomputeStep>? StreamedStepCompleted { get; init; }
    /// <summary>Called at the end of every epoch with a checkpoint the run can be resumed from; null skips writing one.</summary>
    public Action<TrainingCheckpoint>? CheckpointSaved { get; init; }

    /// <summary>Called once with the hyperparameters after "auto" values were resolved (only when some were "auto").</summary>
    public Action<ReadHyperparameters>? AutoResolved { get; init; }

    /// <summary>
    /// A checkpoint of this same run (same data, hyperparameters and seed): training continues at its epoch + 1 and ends
    /// exactly as the uninterrupted run does (docs/decisions/014-checkpoints-leases.md).
    /// </summary>
    public TrainingCheckpoint? ResumeFrom { get; init; }

    /// <summary>A checkpoint of an earlier run whose weights start this one (optimizer and schedule start afresh): training further.</summary>
    public TrainingCheckpoint? InitialWeights { get; init; }

    /// <summary>Called with the epoch <see cref="ResumeFrom"/> continues after, once the checkpoint has been checked and loaded.</summary>
    public Action<int>? Resumed { get; init; }

    /// <summary>
    /// Called with the reason when <see cref="ResumeFrom"/> no longer matches this run (written by another version, or for
    /// other hyperparameters, split or labels): it is set aside and training starts over from epoch 1, from
    /// <see cref="InitialWeights"/> when given. The activation cache is reused all the same.
    /// </summary>
    public Action<string>? ResumeDiscarded { get; init; }

    /// <summary>Called once the activation cache is open: hit or miss, and the tokens for the receipt.</summary>
    public Action<PrecomputeOutcome>? Precomputed { get; init; }

    /// <summary>Sequence classification; see the overload taking a <see cref="FineTuneTask"/>.</summary>
    public FineTuneResult Run(
        Backbone backbone, IReadOnlyList<LabeledExample> train, IReadOnlyList<LabeledExample>? validation, ReadHyperparameters hyperparameters,
        string cacheDirectory, IFineTuneProgress progress, CancellationToken cancellationToken) =>
        Run(backbone, train, validation, FineTuneTask.Classification, hyperparameters, cacheDirectory, progress, cancellationToken);

    /// <param name="validation">Held-out examples; null to hold out <see cref="ReadHyperparameters.ValidationSplit"/> of
    /// <paramref name="train"/> (seeded).</param>
    /// <param name="task">Classification (labels are names) or regression (labels are numbers in invariant culture).</param>
    public FineTuneResult Run(
        Backbone backbone,
        IReadOnlyList<LabeledExample> train,
        IReadOnlyList<LabeledExample>? validation,
        FineTuneTask task,
        ReadHyperparameters hyperparameters,
        string cacheDirectory,
        IFineTuneProgress progress,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        ArgumentNullException.ThrowIfNull(train);
        ArgumentNullException.ThrowIfNull(hyperparameters);
        ArgumentNullException.ThrowIfNull(progress);
        var hp = hyperparameters;
        var errors = hp.Validate(backbone.Shape.MaxPositionEmbeddings, backbone.Shape.NumHiddenLayers, backbone.Shape.HiddenSize, backbone.Poolings);
        if (errors.Count > 0)
            throw new ArgumentException(string.Join(" ", errors), nameof(hyperparameters));
        if (train.Count == 0)
            throw new ArgumentException("The training set is empty.", nameof(train));

        // One cache over train followed by validation; a holdout split only picks indices, so it never changes the cache key.
        var all = validation is null ? train : train.Concat(validation).ToList();
        var (trainIndices, validationIndices) = Split(train, validation?.Count, hp, task);
        hp = hp.ResolveAuto(trainIndices.Length);
        if (hyperparameters.HasAuto)
            AutoResolved?.Invoke(hp);
        var targets = TaskTargets.Create(task, all, trainIndices);
        var layout = LayerLayout.Create(hp.Layers, backbone.Shape.NumHiddenLayers, hp.InitialState == InitialState.Embedding);
        var spec = new ActivationCacheSpec(hp.MaxLength, hp.Pooling, layout.Channels, hp.CacheDtype, backbone.TokenizerSettings, CacheScope);

        progress.StageStarted(FineTuneStage.Precompute);
        var clock = Stopwatch.StartNew();
        long? tokensRun = null;
        var (cache, hit) = ActivationCache.GetOrCreate(backbone, all, spec, cacheDirectory, f => progress.Progress(FineTuneStage.Precompute, f), cancellationToken,
            new PrecomputeRequest(hp.Precompute, StreamedStepCompleted, tokens => tokensRun = tokens));
        using var cacheScope = cache;
        var precomputeSeconds = clock.Elapsed.TotalSeconds;
        Precomputed?.Invoke(new PrecomputeOutcome(hit, hit ? 0 : tokensRun ?? 0, DatasetTokens(backbone, all, hp, spec, cache, hit ? null : tokensRun)));

        progress.StageStarted(FineTuneStage.Train);
        clock.Restart();
        using var model = CreateModel(backbone.Shape.HiddenSize, hp, layout, targets);
        model.to(backbone.Device.Torch); // parameters first, so AdamW's state is allocated beside them
        var trained = Train(model, cache, targets, trainIndices, validationIndices, hp, progress, cancellationToken);
        var trainSeconds = clock.Elapsed.TotalSeconds;

        progress.StageStarted(FineTuneStage.Evaluate);
        clock.Restart();
        var evaluation = validationIndices.Length == 0 ? null : Evaluate(model, cache, validationIndices, targets).Metrics;
        progress.Progress(FineTuneStage.Evaluate, 1.0);
        var evaluateSeconds = clock.Elapsed.TotalSeconds;

        var metrics = new FineTuneMetrics
        {
            Task = task == FineTuneTask.Regression ? "regression" : "classification",
            ValidationAccuracy = evaluation?.Accuracy,
            F1 = evaluation?.F1,
            MacroF1 = evaluation?.MacroF1,
            Mcc = evaluation?.Mcc,
            Mse = evaluation?.Mse,
            Pearson = evaluation?.Pearson,
            Spearman = evaluation?.Spearman,
            ValidationLoss = evaluation?.Loss,
            FinalTrainLoss = trained.FinalTrainLoss,
            TrainableParameters = model.TrainableParameters,
            TrainExamples = trainIndices.Length,
            ValidationExamples = validationIndices.Length,
            EpochsRun = trained.EpochsRun,
            BestEpoch = trained.BestEpoch,
            PrecomputeSeconds = precomputeSeconds,
            TrainSeconds = trainSeconds,
            EvaluateSeconds = evaluateSeconds,
            CacheHit = hit,
            CacheBytes = cache.FileBytes,
        };
        var config = new AdapterConfig(
            backbone.Id, backbone.WeightsHash, backbone.Shape.HiddenSize, hp.Cell, hp.SideHiddenSize, hp.Aggregation, layout.InputLayers,
            targets.Labels, hp.MaxLength, AdapterTokenizerConfig.From(backbone.TokenizerSettings),
            InputLayerNorm: hp.InputNorm == InputNorm.LayerNorm,
            Head: targets.IsRegression ? AdapterConfig.RegressionHead : AdapterConfig.ClassificationHead,
            Pooling: hp.Pooling,
            InputNorm: hp.InputNorm,
            InitialState: hp.InitialState,
            BackboneLayers: backbone.Shape.NumHiddenLayers,
            CacheDtype: hp.CacheDtype,
            TargetMean: targets.IsRegression ? targets.Mean : null,
            TargetStd: targets.IsRegression ? targets.Std : null,
            Architecture: backbone.Architecture,
            ModelType: backbone.ModelType);
        var artifact = AdapterArtifact.Write(config, model, metrics);
        return new FineTuneResult(artifact, metrics, targets.Labels);
    }

    /// <summary>
    /// Scores an adapter on labelled examples through the activation cache (built once, reused after): metrics and
    /// a prediction per example, in input order. Labels must be the adapter's (classification) or numbers (regression).
    /// </summary>
    public static EvaluationResult Evaluate(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<LabeledExample> examples, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(examples);
        var config = adapter.Config;
        var labelIndex = config.LabelNames.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => (long)p.i, StringComparer.Ordinal);
        var classes = config.IsRegression ? [] : examples.Select(e => labelIndex.TryGetValue(e.Label, out var k)
            ? k : throw new ArgumentException($"Label '{e.Label}' is not one of the adapter's labels ({string.Join(", ", config.LabelNames)}).", nameof(examples))).ToArray();
        var values = config.IsRegression ? examples.Select(e => TaskTargets.ParseNumber(e.Label)).ToArray() : [];
        var (cache, _) = OpenCache(backbone, adapter, examples, cacheDirectory);
        using (cache)
            return Evaluate(adapter.ClassifierOn(backbone.Device), cache, Enumerable.Range(0, examples.Count).Select(i => (long)i).ToArray(), classes, values, config);
    }

    /// <summary>
    /// The evaluation path without labels: precompute (or reuse) the cache for these examples and run the adapter over
    /// the cached states.
    /// </summary>
    public static IReadOnlyList<Prediction> PredictViaCache(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<LabeledExample> examples, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(examples);
        var (cache, _) = OpenCache(backbone, adapter, examples, cacheDirectory);
        using (cache)
        {
            var outputs = Outputs(adapter.ClassifierOn(backbone.Device), cache, Enumerable.Range(0, examples.Count).Select(i => (long)i).ToArray());
            var config = adapter.Config;
            return AdapterPredictor.Decode(outputs, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1);
        }
    }

    private static (ActivationCache Cache, bool Hit) OpenCache(Backbone backbone, LoadedAdapter adapter, IReadOnlyList<LabeledExample> examples, string cacheDirectory)
    {
        ArgumentNullException.ThrowIfNull(backbone);
        if (!string.Equals(adapter.Config.BackboneWeightsHash, backbone.WeightsHash, StringComparison.OrdinalIgnoreCase))
            throw new InvalidOperationException($"The adapter belongs to backbone weights {adapter.Config.BackboneWeightsHash}, not {backbone.WeightsHash}.");
        // The adapter's own tokenizer settings: an adapter trained before accents were stripped is scored on its own ids.
        var spec = new ActivationCacheSpec(
            adapter.Config.MaxLength, adapter.Config.Pooling, adapter.Layout.Channels, adapter.Config.CacheDtype, adapter.Config.Tokenizer.Settings);
        return ActivationCache.GetOrCreate(backbone, examples, spec, cacheDirectory, null, CancellationToken.None);
    }

    /// <summary>
    /// The dataset's tokens after truncation: counted by the precompute on a miss, the cache's positions with all-token
    /// pooling, else a tokenization pass beside training (no backbone forward, and no second read of the data).
    /// </summary>
    private static Task<long> DatasetTokens(Backbone backbone, IReadOnlyList<LabeledExample> examples, ReadHyperparameters hp, ActivationCacheSpec spec, ActivationCache cache, long? counted)
    {
        if (counted is { } tokens)
            return Task.FromResult(tokens);
        if (!hp.Pooling.IsSinglePosition())
            return Task.FromResult(cache.Header.Positions);
        var texts = examples.Select(e => e.Text).ToList();
        var pairs = examples.Select(e => e.TextPair).ToList();
        return Task.Run(() => TokenLengths.Of(backbone, texts, pairs, spec.MaxLength, spec.Tokenizer).Sum(l => (long)l));
    }

    private static ReadClassifier CreateModel(int hiddenSize, ReadHyperparameters hp, LayerLayout layout, TaskTargets targets)
    {
        lock (SeedLock)
        {
            torch.manual_seed(hp.Seed);
            var side = new ReadSideNetwork(
                new ReadSideNetworkConfig(hiddenSize, hp.SideHiddenSize, hp.Cell, hp.Aggregation, hp.InputNorm, hp.ZeroInitOutput, hp.InitialState), layout);
            return new ReadClassifier(side, hiddenSize, targets.IsRegression ? 1 : targets.Labels.Count, hp.Pooling);
        }
    }

    private sealed record TrainOutcome(double FinalTrainLoss, int EpochsRun, int BestEpoch);

    private TrainOutcome Train(
        ReadClassifier model, ActivationCache cache, TaskTargets targets, long[] trainIndices, long[] validationIndices,
        ReadHyperparameters hp, IFineTuneProgress progress, CancellationToken cancellationToken)
    {
        var batchesPerEpoch = (trainIndices.Length + hp.BatchSize - 1) / hp.BatchSize;
        var totalSteps = hp.Epochs * batchesPerEpoch;
        using var optimizer = new AdamWSchedule(model.parameters(), hp.LearningRate, hp.WeightDecay, hp.WarmupRatio, hp.MaxGradNorm, totalSteps);
        var device = cache.Device.Torch;
        using var classWeights = !targets.IsRegression && hp.ClassWeights == ClassWeighting.Balanced ? tensor(targets.BalancedWeights(trainIndices), device: device) : null;
        var earlyStopping = hp.EarlyStoppingPatience > 0 && validationIndices.Length > 0;
        var shuffle = new Random(hp.Seed);
        var order = (long[])trainIndices.Clone();
        var lastLoss = double.NaN;
        var step = 0;
        EvaluationMetrics? best = null;
        var bestEpoch = 0;
        Dictionary<string, Tensor>? bestWeights = null;
        var epoch = 0;
        var stopped = false;
        var fingerprint = Fingerprint(hp, trainIndices, validationIndices, targets);
        if (InitialWeights is not null)
            LoadInitialWeights(model, InitialWeights);
        try
        {
            if (ResumeFrom is not null)
            {
                var problem = ResumeProblem(ResumeFrom, model, fingerprint);
                if (problem is null)
                {
                    (epoch, step, lastLoss, best, bestEpoch, stopped, bestWeights) = Resume(ResumeFrom, model, optimizer, shuffle, order);
                    Resumed?.Invoke(epoch);
                }
                else
                {
                    ResumeDiscarded?.Invoke(problem);
                }
            }

            while (!stopped && epoch < hp.Epochs)
            {
                epoch++;
                var epochClock = Stopwatch.StartNew();
                model.train();
                // The only randomness of an epoch: replayed on resume, so the order after epoch k is a function of (seed, k).
                shuffle.Shuffle(order);
                double lossSum = 0;
                for (var start = 0; start < order.Length; start += hp.BatchSize)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    using var scope = NewDisposeScope();
                    var indices = order.AsSpan(start, Math.Min(hp.BatchSize, order.Length - start));
                    using var batch = cache.Read(indices);
                    var outputs = model.Forward(batch.States, batch.Segments, batch.Count); // (B, outputs)
                    var loss = Loss(outputs, targets, indices, classWeights, device);
                    // Read before the step (the sum below needs it anyway): a NaN step would poison every weight.
                    var lossValue = loss.item<float>();
                    if (!float.IsFinite(lossValue))
                    {
                        throw new NonFiniteValueException(NonFiniteValueException.TrainingDiverged,
                            $"Training diverged: the loss was {lossValue} at epoch {epoch}, step {step + 1}. Try a lower learning_rate.");
                    }

                    optimizer.Step(loss);
                    lossSum += lossValue * indices.Length;
                    step++;
                    progress.Progress(FineTuneStage.Train, (double)step / totalSteps);
                }

                lastLoss = lossSum / order.Length;
                var validation = validationIndices.Length == 0 ? null : Evaluate(model, cache, validationIndices, targets).Metrics;
                var epochMetrics = new EpochMetrics(epoch, lastLoss, validation, epochClock.Elapsed.TotalSeconds);
                if (!earlyStopping)
                {
                    bestEpoch = epoch;
                }
                else if (best is null || IsBetter(validation!, best, targets.IsRegression))
                {
                    best = validation;
                    bestEpoch = epoch;
                    Dispose(bestWeights);
                    bestWeights = Snapshot(model);
                }
                else
                {
                    stopped = epoch - bestEpoch >= hp.EarlyStoppingPatience;
                }

                if (CheckpointSaved is { } save)
                {
                    var header = new TrainingCheckpoint.Header(epoch, step, bestEpoch, stopped, lastLoss, best, epochMetrics, fingerprint);
                    var state = TrainingCheckpoint.Write(header, model, bestEpoch == epoch ? null : bestWeights, optimizer.SaveState);
                    save(new TrainingCheckpoint(epoch, bestEpoch, stopped, epochMetrics, state));
                }

                // After the checkpoint: an epoch reported is an epoch a resume never runs again.
                progress.EpochCompleted(epochMetrics);
            }

            if (earlyStopping && bestWeights is not null && bestEpoch != epoch)
                Restore(model, bestWeights);
        }
        finally
        {
            Dispose(bestWeights);
        }

        model.eval();
        return new TrainOutcome(lastLoss, epoch, bestEpoch);
    }

    /// <summary>
    /// Why <paramref name="checkpoint"/> cannot continue this run, checked before anything is loaded (so a mismatch leaves
    /// the model as it was); null when it can. Its format, its fingerprint (hyperparameters, split, labels: a version that
    /// adds a hyperparameter changes it) and every tensor's name and shape must match.
    /// </summary>
    private static string? ResumeProblem(TrainingCheckpoint checkpoint, ReadClassifier model, string fingerprint)
    {
        try
        {
            using var reader = new BinaryReader(new MemoryStream(checkpoint.State));
            var header = TrainingCheckpoint.ReadHeader(reader);
            if (header.Fingerprint != fingerprint)
                return "it was written for other hyperparameters, data split or labels (or by a version that hashes them differently)";
            var weights = TrainingCheckpoint.ReadWeights(reader);
            try
            {
                var expected = model.state_dict();
                foreach (var (name, parameter) in expected)
                {
                    if (!weights.TryGetValue(name, out var value))
                        return $"it has no tensor '{name}'";
                    if (!value.shape.SequenceEqual(parameter.shape))
                        return $"its '{name}' has shape [{string.Join(", ", value.shape)}], the model's is [{string.Join(", ", parameter.shape)}]";
                }
            }
            finally
            {
                Dispose(weights);
            }

            return null;
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException or System.Text.Json.JsonException)
        {
            return $"it cannot be read ({e.Message})";
        }
    }

    /// <summary>Loads a checkpoint of this same run (checked by <see cref="ResumeProblem"/>) and replays what it does not store (schedule, shuffles).</summary>
    private static (int Epoch, int Step, double LastLoss, EvaluationMetrics? Best, int BestEpoch, bool Stopped, Dictionary<string, Tensor>? BestWeights) Resume(
        TrainingCheckpoint checkpoint, ReadClassifier model, AdamWSchedule optimizer, Random shuffle, long[] order)
    {
        using var reader = new BinaryReader(new MemoryStream(checkpoint.State));
        var header = TrainingCheckpoint.ReadHeader(reader);
        var weights = TrainingCheckpoint.ReadWeights(reader);
        try
        {
            TrainingCheckpoint.Load(model, weights);
        }
        finally
        {
            Dispose(weights);
        }

        var bestWeights = reader.ReadBoolean() ? TrainingCheckpoint.ReadWeights(reader) : null;
        if (bestWeights is null && header.Best is not null)
            bestWeights = Snapshot(model); // the checkpoint's epoch was the best one
        optimizer.RestoreState(reader, header.Step);
        for (var e = 0; e < header.Epoch; e++)
            shuffle.Shuffle(order);
        return (header.Epoch, header.Step, header.LastLoss, header.Best, header.BestEpoch, header.Stopped, bestWeights);
    }

    /// <summary>Starts from another run's weights (the adapter architecture must match); optimizer and schedule start afresh.</summary>
    private static void LoadInitialWeights(ReadClassifier model, TrainingCheckpoint checkpoint)
    {
        using var reader = new BinaryReader(new MemoryStream(checkpoint.State));
        TrainingCheckpoint.ReadHeader(reader);
        var weights = TrainingCheckpoint.ReadWeights(reader);
        try
        {
            TrainingCheckpoint.Load(model, weights);
        }
        finally
        {
            Dispose(weights);
        }
    }

    /// <summary>What a resumed run must share with the one that wrote the checkpoint: hyperparameters, split and labels.</summary>
    private static string Fingerprint(ReadHyperparameters hp, long[] trainIndices, long[] validationIndices, TaskTargets targets)
    {
        var text = System.Text.Json.JsonSerializer.Serialize(hp) + "|" + string.Join(",", trainIndices) + "|" + string.Join(",", validationIndices)
            + "|" + string.Join("\u0001", targets.Labels);
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text)));
    }

        private static Tensor Loss(Tensor outputs, TaskTargets targets, ReadOnlySpan<long> indices, Tensor? classWeights, Device device)
    {
        if (targets.IsRegression)
        {
            var standardised = new float[indices.Length];
            for (var i = 0; i < indices.Length; i++)
                standardised[i] = (float)((targets.Values[indices[i]] - targets.Mean) / targets.Std);
            return nn.functional.mse_loss(outputs.squeeze(-1), tensor(standardised, device: device));
        }

        var classes = new long[indices.Length];
        for (var i = 0; i < indices.Length; i++)
            classes[i] = targets.Classes[indices[i]];
        return nn.functional.cross_entropy(outputs, tensor(classes, device: device), weight: classWeights);
    }

    /// <summary>Classification: higher accuracy, then lower loss. Regression: lower MSE.</summary>
    private static bool IsBetter(EvaluationMetrics candidate, EvaluationMetrics best, bool regression) => regression
        ? candidate.Mse < best.Mse
        : candidate.Accuracy > best.Accuracy || (candidate.Accuracy == best.Accuracy && candidate.Loss < best.Loss);

    private static Dictionary<string, Tensor> Snapshot(ReadClassifier model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone());

    private static void Restore(ReadClassifier model, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, parameter) in model.state_dict())
            parameter.copy_(weights[name]);
    }

    private static void Dispose(Dictionary<string, Tensor>? weights)
    {
        if (weights is null)
            return;
        foreach (var tensor in weights.Values)
            tensor.Dispose();
        weights.Clear();
    }

    private static EvaluationResult Evaluate(ReadClassifier model, ActivationCache cache, long[] indices, TaskTargets targets) =>
        Evaluate(model, cache, indices, indices.Select(i => targets.IsRegression ? 0 : targets.Classes[i]).ToArray(),
            indices.Select(i => targets.IsRegression ? targets.Values[i] : 0).ToArray(),
            targets.Labels, targets.IsRegression, targets.Mean, targets.Std);

    private static EvaluationResult Evaluate(ReadClassifier model, ActivationCache cache, long[] indices, long[] classes, double[] values, AdapterConfig config) =>
        Evaluate(model, cache, indices, classes, values, config.LabelNames, config.IsRegression, config.TargetMean ?? 0, config.TargetStd ?? 1);

    /// <param name="classes">Per evaluated example (aligned with <paramref name="indices"/>): the true class.</param>
    /// <param name="values">Per evaluated example: the true number.</param>
    private static EvaluationResult Evaluate(
        ReadClassifier model, ActivationCache cache, long[] indices, long[] classes, double[] values,
        IReadOnlyList<string> labels, bool regression, double mean, double std)
    {
        var outputs = Outputs(model, cache, indices);
        var predictions = AdapterPredictor.Decode(outputs, labels, regression, mean, std);
        if (regression)
            return new EvaluationResult(MetricsCalculator.Regression(predictions.Select(p => p.Value!.Value).ToArray(), values), predictions);

        var labelIndex = labels.Select((l, i) => (l, i)).ToDictionary(p => p.l, p => p.i, StringComparer.Ordinal);
        var predicted = predictions.Select(p => labelIndex[p.Label]).ToArray();
        var actual = classes.Select(c => (int)c).ToArray();
        // Cross-entropy from the probabilities: -log p(true label), floored to stay finite.
        var loss = predictions.Select((p, i) => -Math.Log(Math.Max(p.Probabilities[labels[actual[i]]], 1e-12))).Average();
        var metrics = MetricsCalculator.Classification(predicted, actual, labels.Count) with { Loss = loss };
        return new EvaluationResult(metrics, predictions);
    }

    /// <summary>Head outputs (N × outputs, row-major) for cached examples, in batches bounded by positions.</summary>
    private static float[] Outputs(ReadClassifier model, ActivationCache cache, long[] indices)
    {
        using var noGrad = no_grad();
        var wasTraining = model.training;
        model.eval();
        var result = new List<float>(indices.Length * model.Outputs);
        for (var start = 0; start < indices.Length;)
        {
            var end = start;
            long positions = 0;
            while (end < indices.Length && end - start < EvaluateMaxExamples && (end == start || positions + cache.PositionsOf((int)indices[end]) <= EvaluatePositionBudget))
                positions += cache.PositionsOf((int)indices[end++]);
            using var scope = NewDisposeScope();
            using var batch = cache.Read(indices.AsSpan(start, end - start));
            result.AddRange(model.Forward(batch.States, batch.Segments, batch.Count).to_type(ScalarType.Float32).cpu().contiguous().data<float>().ToArray());
            start = end;
        }

        if (wasTraining)
            model.train();
        return [.. result];
    }

    /// <summary>
    /// Train and validation indices into the concatenated example list; without a validation set, a seeded holdout of
    /// <see cref="ReadHyperparameters.ValidationSplit"/>, stratified by label for classification (each class held out in its
    /// share of the set, the rounding remainder going to the classes with the largest fractional quotas).
    /// </summary>
    internal static (long[] Train, long[] Validation) Split(IReadOnlyList<LabeledExample> train, int? validationCount, ReadHyperparameters hp, FineTuneTask task)
    {
        var trainCount = train.Count;
        if (validationCount is { } count)
            return (Enumerable.Range(0, trainCount).Select(i => (long)i).ToArray(), Enumerable.Range(trainCount, count).Select(i => (long)i).ToArray());
        var holdout = Math.Min(trainCount - 1, (int)Math.Round(trainCount * hp.ValidationSplit));
        var random = new Random(hp.Seed);
        if (task == FineTuneTask.Regression)
        {
            var shuffled = Enumerable.Range(0, trainCount).Select(i => (long)i).ToArray();
            random.Shuffle(shuffled);
            return (shuffled[holdout..].Order().ToArray(), shuffled[..holdout].Order().ToArray());
        }

        var classes = Enumerable.Range(0, trainCount).GroupBy(i => train[i].Label, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => g.Select(i => (long)i).ToArray()).ToList();
        var exact = classes.Select(c => c.Length * (double)holdout / trainCount).ToList();
        var quotas = exact.Select(q => (int)Math.Floor(q)).ToArray();
        foreach (var k in Enumerable.Range(0, classes.Count).OrderByDescending(k => exact[k] - quotas[k]).ThenBy(k => k).Take(holdout - quotas.Sum()))
            quotas[k]++;
        var validation = new List<long>(holdout);
        var rest = new List<long>(trainCount - holdout);
        for (var k = 0; k < classes.Count; k++)
        {
            random.Shuffle(classes[k]);
            validation.AddRange(classes[k][..quotas[k]]);
            rest.AddRange(classes[k][quotas[k]..]);
        }

        return (rest.Order().ToArray(), validation.Order().ToArray());
    }
}
