using Read.Domain.Backbones;
using Read.Domain.FineTuning;
using Read.Research.Baselines;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Research.Baselines;

[Collection(TinyBackboneCollection.Name)]
public sealed class BaselineTrainerTests(TinyBackboneFixture fixture)
{
    [Fact]
    public void BitFit_Training_ChangesBiasesAndNothingElse()
    {
        using var backbone = HuggingFaceCheckpoint.Load("tiny-test", fixture.CheckpointDirectory);
        var before = Snapshot(backbone.Model);
        var config = new BaselineConfig { Method = BaselineMethod.BitFit, Epochs = 2, BatchSize = 8, MaxLength = 32 };
        using var model = BaselineTrainer.CreateClassifier(backbone, config, 2);
        var train = SyntheticSentiment.Generate(32, seed: 1);
        BaselineTrainer.Fit(model, backbone, train, BaselineTrainer.Classes(train, ["negative", "positive"]), config, CancellationToken.None);

        var after = Snapshot(backbone.Model);
        var changed = before.Keys.Where(k => !before[k].AsSpan().SequenceEqual(after[k])).ToList();
        Assert.NotEmpty(changed);
        Assert.All(changed, k => Assert.EndsWith(".bias", k));
        Assert.Contains(changed, k => k.Contains("intermediate.dense.bias", StringComparison.Ordinal));
    }

    [Fact]
    public void Full_Training_ChangesItsOwnBackboneButNotTheRegistrysSharedOne()
    {
        using var data = new TempDirectory();
        using var registry = new BackboneRegistry(new BackboneOptions { DataDirectory = data.Path, ImportBundledBackbones = false });
        var shared = registry.Get(BackboneRegistry.TinyBackboneId);
        var sharedBefore = Snapshot(shared.Model);
        var directory = Path.Combine(data.Path, "backbones", BackboneRegistry.TinyBackboneId);
        var config = new BaselineConfig { Method = BaselineMethod.Full, Epochs = 1, BatchSize = 8, MaxLength = 32, LearningRate = 1e-3 };
        var train = SyntheticSentiment.Generate(32, seed: 1);

        using var fresh = HuggingFaceCheckpoint.Load(BackboneRegistry.TinyBackboneId, directory);
        using var model = BaselineTrainer.CreateClassifier(fresh, config, 2);
        BaselineTrainer.Fit(model, fresh, train, BaselineTrainer.Classes(train, ["negative", "positive"]), config, CancellationToken.None);
        var trained = Snapshot(fresh.Model);
        Assert.Contains(trained, p => p.Key.EndsWith("query.weight", StringComparison.Ordinal) && !p.Value.AsSpan().SequenceEqual(sharedBefore[p.Key]));
        Assert.Contains(trained, p => p.Key == "embeddings.word_embeddings.weight" && !p.Value.AsSpan().SequenceEqual(sharedBefore[p.Key]));

        // The public entry point loads its own copy too.
        var result = BaselineTrainer.Run(config, BackboneRegistry.TinyBackboneId, directory, train, null, data.Sub("work"), CancellationToken.None);
        Assert.Equal(shared.Model.parameters().Sum(p => p.numel()) + 64 * 2 + 2, result.TrainableParameters);

        var sharedAfter = Snapshot(shared.Model);
        Assert.All(sharedBefore, p => Assert.True(p.Value.AsSpan().SequenceEqual(sharedAfter[p.Key]), $"{p.Key} of the shared backbone changed"));
        Assert.All(shared.Model.parameters(), p => Assert.False(p.requires_grad));
    }

    [Fact]
    public void ReadWithoutCache_MatchesReadWithCache()
    {
        var train = SyntheticSentiment.Generate(80, seed: 1);
        var test = SyntheticSentiment.Generate(40, seed: 2);
        var learnable = ReadFineTunerTests.Learnable;
        var config = new BaselineConfig
        {
            Method = BaselineMethod.Read, Epochs = 12, BatchSize = learnable.BatchSize, LearningRate = learnable.LearningRate, WeightDecay = 0,
            SideHiddenSize = learnable.SideHiddenSize, MaxLength = learnable.MaxLength, Seed = learnable.Seed,
        };
        using var work = new TempDirectory();
        var cached = BaselineTrainer.Run(config, "tiny-test", fixture.CheckpointDirectory, train, test, work.Sub("a"), CancellationToken.None);
        var live = BaselineTrainer.Run(config with { Method = BaselineMethod.ReadNoCache }, "tiny-test", fixture.CheckpointDirectory, train, test, work.Sub("b"), CancellationToken.None);

        Assert.NotNull(cached.PrecomputeSeconds);
        Assert.Null(live.PrecomputeSeconds);
        Assert.Equal(cached.TrainableParameters, live.TrainableParameters);
        Assert.Equal(cached.AdapterBytes, live.AdapterBytes);
        Assert.Equal(config.Epochs, cached.EpochLosses.Count);
        Assert.Equal(config.Epochs, live.EpochLosses.Count);
        // Same seed, order and optimiser: the only difference is fp16 cached states against fp32 live ones.
        for (var e = 0; e < config.Epochs; e++)
            Assert.True(Math.Abs(cached.EpochLosses[e] - live.EpochLosses[e]) < 2e-3 * Math.Max(1, cached.EpochLosses[e]), $"epoch {e + 1}: {cached.EpochLosses[e]} vs {live.EpochLosses[e]}");
        Assert.Equal(cached.Test!.Accuracy, live.Test!.Accuracy);
        Assert.True(cached.EpochLosses[^1] < cached.EpochLosses[0], "training loss went down");
    }

    [Theory]
    [InlineData(BaselineMethod.Full, 1e-3)]
    [InlineData(BaselineMethod.Lora, 1e-2)]
    [InlineData(BaselineMethod.BitFit, 3e-2)]
    [InlineData(BaselineMethod.Adapters, 1e-2)]
    [InlineData(BaselineMethod.Probe, 5e-2)]
    [InlineData(BaselineMethod.Read, 3e-2)]
    [InlineData(BaselineMethod.ReadNoCache, 3e-2)]
    public void EveryMethod_LearnsSyntheticSentimentAboveChance(BaselineMethod method, double learningRate)
    {
        var train = SyntheticSentiment.Generate(64, seed: 1);
        var test = SyntheticSentiment.Generate(40, seed: 2);
        var config = new BaselineConfig
        {
            Method = method, Epochs = 10, BatchSize = 16, MaxLength = 32, LearningRate = learningRate, WeightDecay = 0, SideHiddenSize = 32, Seed = 3,
        };
        using var work = new TempDirectory();
        var result = BaselineTrainer.Run(config, "tiny-test", fixture.CheckpointDirectory, train, test, work.Path, CancellationToken.None);

        Assert.True(result.Test!.Accuracy >= 0.8, $"{method}: test accuracy {result.Test.Accuracy}, losses {string.Join(", ", result.EpochLosses.Select(l => l.ToString("F3")))}");
        Assert.Equal(40, result.Test.Examples);
        Assert.Equal(config.Epochs, result.EpochLosses.Count);
        Assert.Equal(config.Epochs * 4, result.Steps);
        Assert.True(result.AdapterBytes > result.TrainableParameters * 4, "the safetensors file holds every trainable tensor");
        Assert.True(result.AdapterBytes < result.TrainableParameters * 4 + 8192, "and nothing else");
    }

    private static Dictionary<string, float[]> Snapshot(TorchSharp.torch.nn.Module model) =>
        model.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().clone().data<float>().ToArray(), StringComparer.Ordinal);
}
