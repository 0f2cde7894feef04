using Read.Domain.SideNetwork;
using System.Globalization;
using Read.Domain.Adapters;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

[Collection(TinyBackboneCollection.Name)]
public sealed class ReadFineTunerTaskTests(TinyBackboneFixture fixture)
{
    /// <summary>Sentiment as a number: +1 or −1 by the sentiment word, plus a small seeded offset.</summary>
    private static List<LabeledExample> Scores(int count, int seed)
    {
        var random = new Random(seed);
        return SyntheticSentiment.Generate(count, seed).Select(e =>
            e with { Label = ((e.Label == "positive" ? 1.0 : -1.0) + random.NextDouble() * 0.2).ToString("R", CultureInfo.InvariantCulture) }).ToList();
    }

    [Fact]
    public void Run_Regression_LearnsAndEvaluateAgreesWithTheJobMetrics()
    {
        var backbone = fixture.Backbone;
        var train = Scores(64, 21);
        var validation = Scores(24, 22);
        var hp = ReadFineTunerTests.Learnable with { Epochs = 30, LearningRate = 1e-2 };
        var result = new ReadFineTuner().Run(backbone, train, validation, FineTuneTask.Regression, hp, fixture.NewCacheDirectory(),
            new RecordingProgress(backbone), CancellationToken.None);

        Assert.Empty(result.Labels);
        Assert.Equal("regression", result.Metrics.Task);
        Assert.Null(result.Metrics.ValidationAccuracy);
        Assert.True(result.Metrics.Pearson > 0.8, $"Pearson {result.Metrics.Pearson}");
        Assert.True(result.Metrics.Spearman > 0.5, $"Spearman {result.Metrics.Spearman}");

        using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
        Assert.Equal(AdapterConfig.RegressionHead, adapter.Config.Head);
        var evaluation = ReadFineTuner.Evaluate(backbone, adapter, validation, fixture.NewCacheDirectory());
        Assert.Equal(result.Metrics.Mse!.Value, evaluation.Metrics.Mse!.Value, 9);
        Assert.Equal(result.Metrics.Pearson!.Value, evaluation.Metrics.Pearson!.Value, 9);

        var direct = AdapterPredictor.Predict(backbone, adapter, validation.Select(e => e.Text).ToList(), null);
        for (var i = 0; i < validation.Count; i++)
        {
            Assert.Empty(direct[i].Probabilities);
            Assert.Equal(evaluation.Predictions[i].Value!.Value, direct[i].Value!.Value, 2); // fp16 cache vs fp32 forward
            Assert.Equal(direct[i].Value!.Value.ToString("R", CultureInfo.InvariantCulture), direct[i].Label);
        }
    }

    [Fact]
    public void Run_RegressionWithNonNumericLabel_ThrowsNamingIt()
    {
        var train = Scores(8, 23);
        train[3] = train[3] with { Label = "very good" };
        var error = Assert.Throws<ArgumentException>(() => new ReadFineTuner().Run(fixture.Backbone, train, null, FineTuneTask.Regression,
            ReadFineTunerTests.Learnable with { Epochs = 1 }, fixture.NewCacheDirectory(), new RecordingProgress(fixture.Backbone), CancellationToken.None));
        Assert.Contains("'very good'", error.Message);
    }

    [Fact]
    public void Run_EarlyStopping_StopsAndRestoresTheBestEpoch()
    {
        var backbone = fixture.Backbone;
        var train = SyntheticSentiment.Generate(48, seed: 24);
        var validation = SyntheticSentiment.Generate(16, seed: 25);
        // A learning rate this high makes validation accuracy reach its best early and then plateau or wobble.
        var hp = ReadFineTunerTests.Learnable with { Epochs = 40, EarlyStoppingPatience = 2, LearningRate = 5e-2 };
        var progress = new RecordingProgress(backbone);
        var result = new ReadFineTuner().Run(backbone, train, validation, hp, fixture.NewCacheDirectory(), progress, CancellationToken.None);

        Assert.True(result.Metrics.EpochsRun < hp.Epochs, $"ran {result.Metrics.EpochsRun} epochs");
        Assert.Equal(progress.Epochs.Count, result.Metrics.EpochsRun);
        Assert.Equal(result.Metrics.EpochsRun - hp.EarlyStoppingPatience, result.Metrics.BestEpoch);
        var best = progress.Epochs[result.Metrics.BestEpoch - 1].Validation!;
        Assert.Equal(best.Accuracy, result.Metrics.ValidationAccuracy); // the artifact holds the best epoch's weights
        Assert.Equal(best.Loss!.Value, result.Metrics.ValidationLoss!.Value, 9);
        Assert.All(progress.Epochs.Skip(result.Metrics.BestEpoch), e => Assert.True(e.Validation!.Accuracy <= best.Accuracy));
    }

    [Fact]
    public void Run_VariantsAndBalancedWeights_TrainAndReportEveryClassificationMetric()
    {
        var backbone = fixture.Backbone;
        // Imbalanced: 3 positives for every negative.
        var train = SyntheticSentiment.Generate(64, seed: 26).Where((e, i) => e.Label == "positive" || i % 3 == 1).ToList();
        var validation = SyntheticSentiment.Generate(16, seed: 27);
        var hp = ReadFineTunerTests.Learnable with
        {
            Epochs = 8, Cell = RecurrentCell.Lstm, InputNorm = InputNorm.RmsNorm, InitialState = InitialState.Embedding, Layers = [2, 3],
            ClassWeights = ClassWeighting.Balanced, Pooling = Pooling.Mean, CacheDtype = CacheDtype.Bf16, Aggregation = LayerAggregation.Last,
        };
        var progress = new RecordingProgress(backbone);
        var result = new ReadFineTuner().Run(backbone, train, validation, hp, fixture.NewCacheDirectory(), progress, CancellationToken.None);

        var m = result.Metrics;
        Assert.True(m.ValidationAccuracy > 0.75, $"accuracy {m.ValidationAccuracy}");
        Assert.NotNull(m.F1);
        Assert.NotNull(m.MacroF1);
        Assert.NotNull(m.Mcc);
        Assert.Null(m.Pearson);
        Assert.True(m.CacheBytes > 0);
        Assert.Equal(hp.Epochs, progress.Epochs.Count);
        Assert.All(progress.Epochs, e => Assert.NotNull(e.Validation?.MacroF1));

        using var adapter = AdapterArtifact.Load(result.Artifact, backbone);
        Assert.Equal([2, 3], adapter.Config.Layers);
        Assert.Equal([0, 2, 3, 4], adapter.Layout.Channels);
        var evaluation = ReadFineTuner.Evaluate(backbone, adapter, validation, fixture.NewCacheDirectory());
        Assert.Equal(m.ValidationAccuracy, evaluation.Metrics.Accuracy);
        Assert.Equal(m.Mcc!.Value, evaluation.Metrics.Mcc!.Value, 9);
        var direct = AdapterPredictor.Predict(backbone, adapter, validation.Select(e => e.Text).ToList(), null);
        Assert.Equal(evaluation.Predictions.Select(p => p.Label), direct.Select(p => p.Label));
    }

    [Fact]
    public void Hyperparameters_NewFieldsOutOfRange_AreAllReported()
    {
        var errors = new ReadHyperparameters
        {
            Layers = [3, 2], WarmupRatio = 1, MaxGradNorm = -1, EarlyStoppingPatience = -1,
        }.Validate(512, 6);
        Assert.Equal(4, errors.Count);
        Assert.Single(new ReadHyperparameters { Layers = [1, 7] }.Validate(512, 6), e => e.Contains("between 1 and 6", StringComparison.Ordinal));
        Assert.Empty(new ReadHyperparameters { Layers = [1, 6] }.Validate(512, 6));
        Assert.Empty(new ReadHyperparameters().Validate(512, 6));
    }
}
