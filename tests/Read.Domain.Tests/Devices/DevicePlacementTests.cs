using Read.Domain.SideNetwork;
using Read.Domain.Adapters;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones.Llama;
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
