using System.IO.Compression;
using Read.Domain.Adapters;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>
/// Checkpoints and exact resume: a seeded run stopped after epoch k and resumed from that epoch's checkpoint ends with
/// the very weights and metrics of the run that was never stopped (bit for bit: same operations in the same order on
/// one machine).
/// </summary>
[Collection(TinyBackboneCollection.Name)]
public sealed class TrainingCheckpointTests(TinyBackboneFixture fixture)
{
    private static readonly ReadHyperparameters Hp = ReadFineTunerTests.Learnable with { Epochs = 6, Seed = 5 };

    [Theory]
    [InlineData(0, 3)] // no early stopping: the last epoch's weights are published
    [InlineData(2, 4)] // early stopping: the best epoch's weights, kept in the checkpoint, are restored
    public void Determinism_ResumedAfterEpochK_EqualsUninterruptedRun(int patience, int k)
    {
        var hp = Hp with { EarlyStoppingPatience = patience };
        var train = SyntheticSentiment.Generate(48, seed: 11);
        var validation = SyntheticSentiment.Generate(24, seed: 12);
        var cache = fixture.NewCacheDirectory();

        var uninterruptedCheckpoints = new List<TrainingCheckpoint>();
        var uninterruptedProgress = new RecordingProgress(fixture.Backbone);
        var uninterrupted = new ReadFineTuner { CheckpointSaved = uninterruptedCheckpoints.Add }
            .Run(fixture.Backbone, train, validation, hp, cache, uninterruptedProgress, CancellationToken.None);

        // The "killed" run: its worker dies right after checkpoint k is stored.
        var stored = new List<TrainingCheckpoint>();
        using var kill = new CancellationTokenSource();
        Assert.ThrowsAny<OperationCanceledException>(() => new ReadFineTuner
        {
            CheckpointSaved = c =>
            {
                stored.Add(c);
                if (c.Epoch == k)
                    kill.Cancel();
            },
        }.Run(fixture.Backbone, train, validation, hp, cache, new RecordingProgress(fixture.Backbone), kill.Token));
        Assert.Equal(k, stored[^1].Epoch);

        // A fresh trainer (another worker) resumes from the stored bytes only.
        var resumedProgress = new RecordingProgress(fixture.Backbone);
        var resumedCheckpoints = new List<TrainingCheckpoint>();
        int? resumedAfter = null;
        var resumed = new ReadFineTuner
        {
            ResumeFrom = TrainingCheckpoint.Read(stored[^1].State.ToArray()), CheckpointSaved = resumedCheckpoints.Add, Resumed = e => resumedAfter = e,
            ResumeDiscarded = reason => Assert.Fail($"set aside: {reason}"),
        }.Run(fixture.Backbone, train, validation, hp, cache, resumedProgress, CancellationToken.None);
        Assert.Equal(k, resumedAfter);

        // Epochs 1..k are not run again, and k+1.. match the uninterrupted run's exactly.
        Assert.Equal(Enumerable.Range(k + 1, uninterruptedProgress.Epochs.Count - k), resumedProgress.Epochs.Select(e => e.Epoch));
        Assert.Equal(uninterruptedProgress.Epochs.Skip(k).Select(e => (e.TrainLoss, e.Validation)), resumedProgress.Epochs.Select(e => (e.TrainLoss, e.Validation)));
        Assert.Equal(uninterruptedCheckpoints.Skip(k).Select(c => (c.Epoch, c.BestEpoch, c.Stopped)), resumedCheckpoints.Select(c => (c.Epoch, c.BestEpoch, c.Stopped)));
        Assert.Equal(uninterrupted.Metrics.FinalTrainLoss, resumed.Metrics.FinalTrainLoss);
        Assert.Equal(uninterrupted.Metrics.ValidationLoss, resumed.Metrics.ValidationLoss);
        Assert.Equal(uninterrupted.Metrics.ValidationAccuracy, resumed.Metrics.ValidationAccuracy);
        Assert.Equal((uninterrupted.Metrics.EpochsRun, uninterrupted.Metrics.BestEpoch), (resumed.Metrics.EpochsRun, resumed.Metrics.BestEpoch));
        AssertSameWeights(uninterrupted.Artifact, resumed.Artifact);
        // The run must have learnt something between k and the end, or "equal" would prove little.
        Assert.NotEqual(uninterruptedProgress.Epochs[k - 1].TrainLoss, uninterruptedProgress.Epochs[^1].TrainLoss);
    }

    [Fact]
    public void Resume_CheckpointOfOtherHyperparameters_IsSetAside_AndTheRunEqualsOneThatNeverHadIt()
    {
        var train = SyntheticSentiment.Generate(24, seed: 13);
        var checkpoints = new List<TrainingCheckpoint>();
        var cache = fixture.NewCacheDirectory();
        new ReadFineTuner { CheckpointSaved = checkpoints.Add }.Run(fixture.Backbone, train, null, Hp with { Epochs = 2 }, cache, new RecordingProgress(fixture.Backbone), CancellationToken.None);
        // As after an upgrade that changed what the fingerprint covers: the checkpoint is of "another" run.
        var hp = Hp with { Epochs = 2, LearningRate = 1e-3 };
        var fresh = new ReadFineTuner().Run(fixture.Backbone, train, null, hp, cache, new RecordingProgress(fixture.Backbone), CancellationToken.None);

        string? reason = null;
        int? resumedAfter = null;
        var progress = new RecordingProgress(fixture.Backbone);
        var restarted = new ReadFineTuner { ResumeFrom = checkpoints[0], ResumeDiscarded = r => reason = r, Resumed = e => resumedAfter = e }
            .Run(fixture.Backbone, train, null, hp, cache, progress, CancellationToken.None);

        Assert.Contains("other hyperparameters", reason);
        Assert.Null(resumedAfter);
        Assert.Equal([1, 2], progress.Epochs.Select(e => e.Epoch));
        Assert.True(restarted.Metrics.CacheHit);
        AssertSameWeights(fresh.Artifact, restarted.Artifact);
    }

    /// <summary>
    /// Guard for docs/decisions/014-checkpoints-leases.md: a checkpoint stores no random-generator state, because a resume
    /// replays the only randomness training has (the seeded shuffle). That is exact only while training draws nothing from
    /// torch's generator (no dropout, no random masking or sampling). Should this fail, training has started to: give the
    /// run its own torch.Generator and save its state in the checkpoint before changing this test.
    /// </summary>
    [Fact]
    public void Training_DrawsNothingFromTorchsGenerator_SoTheReplayedShuffleIsTheWholeRandomState()
    {
        var train = SyntheticSentiment.Generate(48, seed: 16);
        var validation = SyntheticSentiment.Generate(16, seed: 17);
        var cache = fixture.NewCacheDirectory();
        byte[] GeneratorStateAfter(int epochs)
        {
            new ReadFineTuner().Run(fixture.Backbone, train, validation, Hp with { Epochs = epochs }, cache, new RecordingProgress(fixture.Backbone), CancellationToken.None);
            using var state = TorchSharp.torch.random.get_rng_state();
            return state.data<byte>().ToArray();
        }

        GeneratorStateAfter(1); // builds the cache, so both runs below are alike but for their epochs
        // Each run seeds the generator and initialises its model the same way; any draw made while training moves it on.
        Assert.Equal(GeneratorStateAfter(1), GeneratorStateAfter(4));
    }

    [Fact]
    public void InitialWeights_FromAnEarlierRun_StartTrainingWhereItEnded()
    {
        var train = SyntheticSentiment.Generate(48, seed: 14);
        var validation = SyntheticSentiment.Generate(24, seed: 15);
        var cache = fixture.NewCacheDirectory();
        var checkpoints = new List<TrainingCheckpoint>();
        var first = new ReadFineTuner { CheckpointSaved = checkpoints.Add }
            .Run(fixture.Backbone, train, validation, Hp, cache, new RecordingProgress(fixture.Backbone), CancellationToken.None);
        var scratch = new RecordingProgress(fixture.Backbone);
        new ReadFineTuner().Run(fixture.Backbone, train, validation, Hp with { Epochs = 1 }, cache, scratch, CancellationToken.None);

        var further = new RecordingProgress(fixture.Backbone);
        new ReadFineTuner { InitialWeights = checkpoints[^1] }.Run(fixture.Backbone, train, validation, Hp with { Epochs = 1 }, cache, further, CancellationToken.None);

        // From the trained weights, the first epoch's loss is below a from-scratch first epoch's (the zero-initialised
        // output makes the untrained adapter the backbone itself, so scratch starts at chance).
        Assert.True(further.Epochs[0].TrainLoss < scratch.Epochs[0].TrainLoss,
            $"from checkpoint {further.Epochs[0].TrainLoss} vs scratch {scratch.Epochs[0].TrainLoss}; first run ended at {first.Metrics.FinalTrainLoss}");
    }

    private static void AssertSameWeights(byte[] expectedArtifact, byte[] actualArtifact)
    {
        var expected = Weights(expectedArtifact);
        var actual = Weights(actualArtifact);
        Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, (shape, data)) in expected)
        {
            Assert.Equal(shape, actual[name].Shape);
            Assert.True(data.AsSpan().SequenceEqual(actual[name].Data), $"{name} differs");
        }
    }

    private static Dictionary<string, (long[] Shape, float[] Data)> Weights(byte[] artifact)
    {
        using var zip = new ZipArchive(new MemoryStream(artifact));
        using var stream = zip.GetEntry(AdapterArtifact.WeightsEntry)!.Open();
        using var bytes = new MemoryStream();
        stream.CopyTo(bytes);
        return TestSafeTensors.Read(bytes.ToArray());
    }
}
