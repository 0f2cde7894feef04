using Read.Domain.FineTuning;

namespace Read.Domain.Tests;

[Collection(TinyBackboneCollection.Name)]
public sealed class DiagTests(TinyBackboneFixture fixture)
{
    [Fact]
    public void Diag()
    {
        var train = SyntheticSentiment.Generate(80, seed: 1);
        var validation = SyntheticSentiment.Generate(40, seed: 2);
        var lines = new List<string>();
        foreach (var hp in new[] {
            ReadFineTunerTests.Learnable with { Epochs = 30, LearningRate = 5e-2, Aggregation = "mean", WeightDecay = 0 },
            ReadFineTunerTests.Learnable with { Epochs = 30, LearningRate = 1e-1, Aggregation = "mean", WeightDecay = 0 },
            ReadFineTunerTests.Learnable with { Epochs = 30, LearningRate = 5e-2, Aggregation = "mean", WeightDecay = 0, Seed = 9 },
            ReadFineTunerTests.Learnable with { Epochs = 60, LearningRate = 3e-2, Aggregation = "mean", WeightDecay = 0 },
            ReadFineTunerTests.Learnable with { Epochs = 60, LearningRate = 3e-2, Aggregation = "mean", WeightDecay = 0, Seed = 5 },
            ReadFineTunerTests.Learnable with { Epochs = 60, LearningRate = 1e-2, Aggregation = "mean", WeightDecay = 0.01, Seed = 5 },
        })
        {
            var p = new RecordingProgress(fixture.Backbone);
            var r = new ReadFineTuner().Run(fixture.Backbone, train, validation, hp, fixture.NewCacheDirectory(), p, CancellationToken.None);
            lines.Add($"{hp.LearningRate} {hp.Aggregation} {hp.Seed} acc={r.Metrics.ValidationAccuracy} loss={r.Metrics.FinalTrainLoss} {r.Metrics.TrainSeconds:F1}s " + string.Join(" ", p.Epochs.Where((e, i) => i % 3 == 0).Select(e => $"{e.Loss:F3}/{e.Accuracy:F2}")));
        }
        File.WriteAllLines("/tmp/diag.txt", lines);
    }
}
