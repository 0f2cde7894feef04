using System.Text.Json;
using Read.Domain.Configuration;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>Better adapters by default: stratified holdout, early stopping on, "auto" hyperparameters.</summary>
[Collection(TinyBackboneCollection.Name)]
public sealed class TrainingDefaultsTests(TinyBackboneFixture fixture)
{
    private static List<LabeledExample> Labelled(params (string Label, int Count)[] classes)
    {
        // Interleaved, so a split that ignored labels would not get the proportions right by luck of the order.
        var queue = classes.SelectMany(c => Enumerable.Range(0, c.Count).Select(i => (c.Label, i))).OrderBy(p => p.i).ThenBy(p => p.Label).ToList();
        return queue.Select((p, i) => new LabeledExample($"text {i}", null, p.Label)).ToList();
    }

    [Fact]
    public void Split_WithoutValidationSet_HoldsOutEachClassInItsShare()
    {
        var train = Labelled(("a", 60), ("b", 30), ("c", 10));
        var (rest, holdout) = ReadFineTuner.Split(train, null, new ReadHyperparameters { ValidationSplit = 0.2, Seed = 4 }, FineTuneTask.Classification);

        // 20 held out: 60·0.2, 30·0.2, 10·0.2 (computed by hand).
        Assert.Equal(new Dictionary<string, int> { ["a"] = 12, ["b"] = 6, ["c"] = 2 },
            holdout.GroupBy(i => train[(int)i].Label).ToDictionary(g => g.Key, g => g.Count()));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => (long)i), rest.Concat(holdout).Order());
        Assert.Empty(rest.Intersect(holdout));
    }

    [Fact]
    public void Split_RoundingRemainder_GoesToTheLargestFractionalQuota()
    {
        var train = Labelled(("a", 7), ("b", 3));
        // round(10 · 0.25) = 2 (to even); quotas 1.4 and 0.6: floors 1 + 0, the remaining one to b (0.6 > 0.4).
        var (_, holdout) = ReadFineTuner.Split(train, null, new ReadHyperparameters { ValidationSplit = 0.25, Seed = 1 }, FineTuneTask.Classification);
        Assert.Equal(["a", "b"], holdout.Select(i => train[(int)i].Label).Order());
    }

    [Fact]
    public void Determinism_Split_SameSeedSameHoldout_OtherSeedOther()
    {
        var train = Labelled(("a", 50), ("b", 50));
        var hp = new ReadHyperparameters { ValidationSplit = 0.2, Seed = 9 };
        var first = ReadFineTuner.Split(train, null, hp, FineTuneTask.Classification).Validation;
        Assert.Equal(first, ReadFineTuner.Split(train, null, hp, FineTuneTask.Classification).Validation);
        Assert.NotEqual(first, ReadFineTuner.Split(train, null, hp with { Seed = 10 }, FineTuneTask.Classification).Validation);
    }

    [Theory]
    [InlineData(300, 20, 5e-3, 32)]
    [InlineData(1_500, 10, 2e-3, 64)]
    [InlineData(5_000, 6, 2e-3, 64)]
    [InlineData(50_000, 4, 2e-3, 128)]
    public void ResolveAuto_ChoosesFromDatasetSize(int examples, int epochs, double learningRate, int r)
    {
        var auto = new ReadHyperparameters { Epochs = ReadHyperparameters.Auto, LearningRate = ReadHyperparameters.Auto, SideHiddenSize = ReadHyperparameters.Auto };
        var resolved = auto.ResolveAuto(examples);
        Assert.Equal((epochs, learningRate, r), (resolved.Epochs, resolved.LearningRate, resolved.SideHiddenSize));
        Assert.Empty(resolved.Validate());
        // Values the user gave are kept.
        Assert.Equal(7, (auto with { Epochs = 7 }).ResolveAuto(examples).Epochs);
    }

    [Fact]
    public void Json_AutoParsesAndRoundTrips_MinusOneIsRefused()
    {
        var hp = JsonSerializer.Deserialize<ReadHyperparameters>("""{"epochs":"auto","learning_rate":"auto","r":"auto","batch_size":8}""", JsonDefaults.SnakeCase)!;
        Assert.True(hp.HasAuto);
        Assert.Equal((ReadHyperparameters.Auto, ReadHyperparameters.Auto, 8), (hp.Epochs, hp.SideHiddenSize, hp.BatchSize));
        Assert.Empty(hp.Validate());
        var json = JsonSerializer.Serialize(hp, JsonDefaults.SnakeCase);
        Assert.Contains("\"epochs\":\"auto\"", json);
        Assert.Contains("\"learning_rate\":\"auto\"", json);
        Assert.Equal(hp, JsonSerializer.Deserialize<ReadHyperparameters>(json, JsonDefaults.SnakeCase));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ReadHyperparameters>("""{"epochs":-1}""", JsonDefaults.SnakeCase));
        Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ReadHyperparameters>("""{"r":"big"}""", JsonDefaults.SnakeCase));
        Assert.Single(new ReadHyperparameters { Epochs = 0 }.Validate());
    }

    [Fact]
    public void Run_DefaultPatience_StopsEarlyOnTheHoldoutAndRestoresTheBestEpoch()
    {
        Assert.Equal(3, new ReadHyperparameters().EarlyStoppingPatience);
        var train = SyntheticSentiment.Generate(64, seed: 24);
        // Learnable's settings but the default patience; the learning rate that makes validation peak early.
        var hp = ReadFineTunerTests.Learnable with { Epochs = 40, LearningRate = 5e-2, EarlyStoppingPatience = new ReadHyperparameters().EarlyStoppingPatience };
        var progress = new RecordingProgress(fixture.Backbone);
        var result = new ReadFineTuner().Run(fixture.Backbone, train, null, hp, fixture.NewCacheDirectory(), progress, CancellationToken.None);

        Assert.True(result.Metrics.EpochsRun < hp.Epochs, $"ran {result.Metrics.EpochsRun} epochs");
        Assert.Equal(result.Metrics.EpochsRun - 3, result.Metrics.BestEpoch);
        Assert.Equal(progress.Epochs[result.Metrics.BestEpoch - 1].Validation!.Loss!.Value, result.Metrics.ValidationLoss!.Value, 9);
    }

    [Fact]
    public void Run_AutoHyperparameters_TrainWithTheResolvedValues()
    {
        var train = SyntheticSentiment.Generate(40, seed: 26);
        var hp = ReadFineTunerTests.Learnable with { Epochs = ReadHyperparameters.Auto, SideHiddenSize = ReadHyperparameters.Auto, EarlyStoppingPatience = 0 };
        var progress = new RecordingProgress(fixture.Backbone);
        var result = new ReadFineTuner().Run(fixture.Backbone, train, null, hp, fixture.NewCacheDirectory(), progress, CancellationToken.None);

        Assert.Equal(20, progress.Epochs.Count); // 36 training examples → 20 epochs
        Assert.Equal(32, Read.Domain.Adapters.AdapterArtifact.ReadConfig(result.Artifact).SideHiddenSize);
    }
}
