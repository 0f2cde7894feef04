using Read.Domain.SideNetwork;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
using Read.Domain.Batches;
using Read.Domain.FineTuning;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Devices;

/// <summary>
/// libtorch's default device is process-wide: these tests move it to <c>meta</c>, so nothing else may run meanwhile.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DefaultDeviceCollection
{
    public const string Name = "default device";
}

/// <summary>
/// Read:Device placement, checked on the CPU: with TorchSharp's default device set to <c>meta</c> (tensors with a
/// shape and no storage) and the backbone on the CPU, any tensor or module on the training or inference path that is
/// created without the configured device lands on meta, and the run fails (meta tensors cannot meet CPU tensors in an
/// op, nor be read back). So a run that completes under meta and gives the same numbers as an ordinary run shows
/// every allocation names its device. On a CUDA host the same code places everything on cuda:N.
/// </summary>
[Collection(DefaultDeviceCollection.Name)]
public sealed class DevicePlacementTests
{
    private const double Tolerance = 1e-6;

    private static readonly ReadHyperparameters Short = new()
    {
        Epochs = 3, BatchSize = 16, LearningRate = 3e-2, WeightDecay = 0, SideHiddenSize = 16, MaxLength = 32, Seed = 3,
    };

    [Fact]
    public void MetaDefault_CatchesATensorCreatedWithoutADevice()
    {
        // The probe itself: it must be able to fail.
        using var cpu = torch.zeros(3, device: CPU);
        WithMetaDefault(() =>
        {
            using var stray = torch.zeros(3);
            Assert.Equal(DeviceType.META, stray.device_type);
            Assert.ThrowsAny<Exception>(() => (cpu + stray).data<float>().ToArray());
            Assert.ThrowsAny<Exception>(() => stray.data<float>().ToArray());
            using var linear = nn.Linear(2, 2);
            Assert.Equal(DeviceType.META, linear.weight!.device_type);
        });
        Assert.Equal(DeviceType.CPU, torch.get_default_device().type);
    }

    public static TheoryData<Pooling, RecurrentCell, InitialState, ClassWeighting> Variants => new()
    {
        // pooling, cell, initial_state, class_weights: cls and mean (packed) caches, every side-network branch that allocates.
        { Pooling.Cls, RecurrentCell.Gru, InitialState.Zeros, ClassWeighting.None },
        { Pooling.Mean, RecurrentCell.Lstm, InitialState.Embedding, ClassWeighting.Balanced },
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void Bert_PrecomputeTrainEvaluatePredict_UnderMetaDefault_EqualsTheOrdinaryRun(Pooling pooling, RecurrentCell cell, InitialState initial, ClassWeighting weights)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny");
        TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        var hp = Short with { Pooling = pooling, Cell = cell, InitialState = initial, ClassWeights = weights };

        var reference = EndToEnd(directory, hp, temp.Sub("cache-ref"));
        Run? placed = null;
        WithMetaDefault(() => placed = EndToEnd(directory, hp, temp.Sub("cache-meta")));

        AssertSame(reference, placed!);
    }

    [Fact]
    public void Llama_PrecomputeTrainPredict_UnderMetaDefault_EqualsTheOrdinaryRun()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny-llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options(), seed: 11);
        var hp = Short with { Pooling = Pooling.Last };

        var reference = EndToEnd(directory, hp, temp.Sub("cache-ref"));
        Run? placed = null;
        WithMetaDefault(() => placed = EndToEnd(directory, hp, temp.Sub("cache-meta")));

        AssertSame(reference, placed!);
    }

    [Theory]
    [InlineData("bert")]
    [InlineData("llama")]
    public void LayerStreamed_PrecomputeAndTrain_UnderMetaDefault_EqualsTheOrdinaryRun(string architecture)
    {
        // The layer-streamed path builds its own modules per step and reads scratch files back into tensors: each of
        // those must name Read:Device too.
        using var temp = new TempDirectory();
        var directory = temp.Sub(architecture);
        if (architecture == "bert")
            TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        else
            TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 11);
        var hp = Short with { Pooling = architecture == "bert" ? Pooling.Mean : Pooling.Last, Precompute = PrecomputeMode.Streamed };

        FineTuneMetrics Train(string cache)
        {
            using var backbone = HuggingFaceCheckpoint.LoadStreamed("tiny", directory, device: ReadDevice.Cpu);
            return new ReadFineTuner().Run(backbone, SyntheticSentiment.Generate(48, seed: 1), SyntheticSentiment.Generate(24, seed: 2), hp, cache,
                new RecordingProgress(backbone), CancellationToken.None).Metrics;
        }

        var reference = Train(temp.Sub("cache-ref"));
        FineTuneMetrics? placed = null;
        WithMetaDefault(() => placed = Train(temp.Sub("cache-meta")));

        Assert.Equal(reference.FinalTrainLoss, placed!.FinalTrainLoss, Tolerance);
        Assert.Equal(reference.ValidationLoss!.Value, placed.ValidationLoss!.Value, Tolerance);
        Assert.Equal(reference.ValidationAccuracy, placed.ValidationAccuracy);
    }

    [Fact]
    public void Resume_FromACheckpointWithBestWeights_UnderMetaDefault_EqualsTheOrdinaryResume()
    {
        // A resumed run reads the side network's weights, the best epoch's weights and AdamW's moments back from bytes:
        // each of those tensors must land on Read:Device (or be copied there), not on the default device.
        using var temp = new TempDirectory();
        var directory = temp.Sub("tiny");
        TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        using var backbone = HuggingFaceCheckpoint.Load("tiny", directory, device: ReadDevice.Cpu);
        var train = SyntheticSentiment.Generate(48, seed: 1);
        var validation = SyntheticSentiment.Generate(24, seed: 2);
        var hp = Short with { Epochs = 8, LearningRate = 1e-1, EarlyStoppingPatience = 8 };
        var cache = temp.Sub("cache");
        var checkpoints = new List<TrainingCheckpoint>();
        new ReadFineTuner { CheckpointSaved = checkpoints.Add }.Run(backbone, train, validation, hp, cache, new RecordingProgress(backbone), CancellationToken.None);
        // One written after an epoch that was not the best: it carries the best epoch's weights as well as the last ones.
        var from = checkpoints.First(c => c.BestEpoch < c.Epoch && c.Epoch < hp.Epochs);

        FineTuneResult Resume() => new ReadFineTuner { ResumeFrom = TrainingCheckpoint.Read(from.State) }
            .Run(backbone, train, validation, hp, cache, new RecordingProgress(backbone), CancellationToken.None);
        FineTuneResult Continue() => new ReadFineTuner { InitialWeights = TrainingCheckpoint.Read(from.State) }
            .Run(backbone, train, validation, hp with { Epochs = 2 }, cache, new RecordingProgress(backbone), CancellationToken.None);

        var (resumed, continued) = (Resume(), Continue());
        FineTuneResult? placedResume = null, placedContinue = null;
        WithMetaDefault(() => (placedResume, placedContinue) = (Resume(), Continue()));

        foreach (var (want, got) in new[] { (resumed, placedResume!), (continued, placedContinue!) })
        {
            Assert.Equal(want.Metrics.FinalTrainLoss, got.Metrics.FinalTrainLoss, Tolerance);
            Assert.Equal(want.Metrics.ValidationLoss!.Value, got.Metrics.ValidationLoss!.Value, Tolerance);
            Assert.Equal((want.Metrics.EpochsRun, want.Metrics.BestEpoch), (got.Metrics.EpochsRun, got.Metrics.BestEpoch));
        }

        Assert.True(from.Epoch < resumed.Metrics.EpochsRun, "the resumed run trained further epochs (AdamW stepped from its restored state)");
    }

    [Theory]
    [InlineData("bert", false)]
    [InlineData("bert", true)]
    [InlineData("llama", true)]
    public void BatchForward_UnderMetaDefault_EqualsTheOrdinaryRun(string architecture, bool streamed)
    {
        // Batch prediction's own path (BatchJobRunner's BatchForward): index tensors, each adapter's rows, resident or
        // layer-streamed states.
        using var temp = new TempDirectory();
        var directory = WriteCheckpoint(temp, architecture);
        var pooling = architecture == "bert" ? Pooling.Mean : Pooling.Last;
        byte[][] artifacts;
        using (var probe = HuggingFaceCheckpoint.Load("tiny", directory, device: ReadDevice.Cpu))
            artifacts = [SeededArtifact(probe, 1, 2, pooling), SeededArtifact(probe, 2, 5, pooling)];
        var texts = SyntheticSentiment.Generate(14, seed: 4).Select(e => e.Text).ToList();

        Prediction[] Predict(string scratch)
        {
            using var backbone = streamed
                ? HuggingFaceCheckpoint.LoadStreamed("tiny", directory, device: ReadDevice.Cpu)
                : HuggingFaceCheckpoint.Load("tiny", directory, device: ReadDevice.Cpu);
            using var first = AdapterArtifact.Load(artifacts[0], backbone);
            using var second = AdapterArtifact.Load(artifacts[1], backbone);
            // Both adapters on every text, one text twice: shared precompute, per-adapter rows, repeated inputs.
            var items = texts.Select(t => new BatchForward.Item(first, t, null)).Concat(texts.Take(9).Select(t => new BatchForward.Item(second, t, null)))
                .Append(new BatchForward.Item(first, texts[0], null)).ToList();
            return BatchForward.Predict(backbone, items, chunkTexts: 5, Directory.CreateDirectory(scratch).FullName, null, null, CancellationToken.None);
        }

        var reference = Predict(temp.Sub("scratch-ref"));
        Prediction[]? placed = null;
        WithMetaDefault(() => placed = Predict(temp.Sub("scratch-meta")));

        AssertSamePredictions(reference, placed!);
    }

    [Theory]
    [InlineData("bert")]
    [InlineData("llama")]
    public void SharedForward_UnderMetaDefault_EqualsTheOrdinaryRun(string architecture)
    {
        // The API's online predict: InferenceBatcher hands each gathered batch to SharedForwardPredictor, which runs the
        // union in length-sorted chunks (a few rows each here, so the chunked path with its stitched tensors runs).
        using var temp = new TempDirectory();
        var directory = WriteCheckpoint(temp, architecture);
        var poolings = architecture == "bert" ? new[] { Pooling.Cls, Pooling.Mean } : [Pooling.Last, Pooling.Mean];
        byte[][] artifacts;
        using (var probe = HuggingFaceCheckpoint.Load("tiny", directory, device: ReadDevice.Cpu))
            artifacts = [SeededArtifact(probe, 1, 2, poolings[0]), SeededArtifact(probe, 2, 3, poolings[1])];
        var texts = SyntheticSentiment.Generate(13, seed: 5).Select(e => e.Text).ToList();

        Prediction[] Predict()
        {
            using var backbone = HuggingFaceCheckpoint.Load("tiny", directory, device: ReadDevice.Cpu);
            using var first = AdapterArtifact.Load(artifacts[0], backbone);
            using var second = AdapterArtifact.Load(artifacts[1], backbone);
            var outcomes = SharedForwardPredictor.PredictEach(backbone,
                [new SharedForwardPredictor.Segment(first, texts[..8], null), new SharedForwardPredictor.Segment(second, texts[5..], null)],
                new SharedForwardTimings(), forwardRows: 3);
            return outcomes.SelectMany(o => o.Predictions ?? throw o.Error!).ToArray();
        }

        var reference = Predict();
        Prediction[]? placed = null;
        WithMetaDefault(() => placed = Predict());

        AssertSamePredictions(reference, placed!);
    }

    private static string WriteCheckpoint(TempDirectory temp, string architecture)
    {
        var directory = temp.Sub(architecture);
        if (architecture == "bert")
            TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 1, SyntheticSentiment.Words);
        else
            TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 11);
        return directory;
    }

    /// <summary>An adapter artifact from a seeded, untrained side network (non-zero output layer), written by the real writer.</summary>
    private static byte[] SeededArtifact(Backbone backbone, int seed, int labels, Pooling pooling)
    {
        var d = backbone.Shape.HiddenSize;
        torch.manual_seed(seed);
        using var classifier = new ReadClassifier(new ReadSideNetwork(d, 8, zeroInitOutput: false), d, labels, pooling);
        var config = new AdapterConfig(backbone.Id, backbone.WeightsHash, d, RecurrentCell.Gru, 8, LayerAggregation.Mean,
            Enumerable.Range(1, backbone.Shape.NumHiddenLayers).ToArray(), Enumerable.Range(0, labels).Select(i => $"label-{i}").ToArray(), 32,
            AdapterTokenizerConfig.From(backbone.TokenizerSettings), Pooling: pooling, Architecture: backbone.Architecture, ModelType: backbone.ModelType);
        return AdapterArtifact.Write(config, classifier, new { });
    }

    private static void AssertSamePredictions(IReadOnlyList<Prediction> expected, IReadOnlyList<Prediction> actual)
    {
        Assert.Equal(expected.Count, actual.Count);
        foreach (var (want, got) in expected.Zip(actual))
        {
            Assert.Equal(want.Label, got.Label);
            foreach (var (label, p) in want.Probabilities)
                Assert.Equal(p, got.Probabilities[label], Tolerance);
        }
    }

    private sealed record Run(FineTuneMetrics Metrics, IReadOnlyList<Prediction> Live, IReadOnlyList<Prediction> Cached, EvaluationMetrics Evaluation);

    /// <summary>Load (on Read:Device = cpu), precompute, train, evaluate; then the live and the cached inference paths.</summary>
    private static Run EndToEnd(string checkpoint, ReadHyperparameters hp, string cacheDirectory)
    {
        using var backbone = HuggingFaceCheckpoint.Load("tiny", checkpoint, device: ReadDevice.Cpu);
        var train = SyntheticSentiment.Generate(48, seed: 1);
        var validation = SyntheticSentiment.Generate(40, seed: 2); // > 32 inputs: the predictor's length-sorted path
        var result = new ReadFineTuner().Run(backbone, train, validation, hp, cacheDirectory, new RecordingProgress(backbone), CancellationToken.None);
        using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
        var live = AdapterPredictor.Predict(backbone, adapter, validation.Select(e => e.Text).ToList(), null);
        var cached = ReadFineTuner.PredictViaCache(backbone, adapter, validation, cacheDirectory);
        var evaluation = ReadFineTuner.Evaluate(backbone, adapter, validation, cacheDirectory).Metrics;
        return new Run(result.Metrics, live, cached, evaluation);
    }

    private static void AssertSame(Run expected, Run actual)
    {
        Assert.Equal(expected.Metrics.FinalTrainLoss, actual.Metrics.FinalTrainLoss, Tolerance);
        Assert.Equal(expected.Metrics.ValidationLoss!.Value, actual.Metrics.ValidationLoss!.Value, Tolerance);
        Assert.Equal(expected.Metrics.ValidationAccuracy, actual.Metrics.ValidationAccuracy);
        Assert.Equal(expected.Evaluation.Loss!.Value, actual.Evaluation.Loss!.Value, Tolerance);
        foreach (var (want, got) in expected.Live.Zip(actual.Live).Concat(expected.Cached.Zip(actual.Cached)))
        {
            Assert.Equal(want.Label, got.Label);
            foreach (var (label, p) in want.Probabilities)
                Assert.Equal(p, got.Probabilities[label], Tolerance);
        }
    }

    private static void WithMetaDefault(Action action)
    {
        var previous = torch.get_default_device();
        torch.set_default_device(new Device(DeviceType.META));
        try
        {
            action();
        }
        finally
        {
            torch.set_default_device(previous);
        }
    }
}
