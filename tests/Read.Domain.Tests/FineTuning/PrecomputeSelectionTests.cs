using System.Text.Json;
using Read.Domain.SideNetwork;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>Which precompute runs: the memory budget at registration, and the per-job precompute hyperparameter.</summary>
public sealed class PrecomputeSelectionTests
{
    [Theory]
    [InlineData(100L << 20, 512L << 20, true)] // 100 MiB + 256 MiB headroom fits 512 MiB
    [InlineData(300L << 20, 512L << 20, false)] // 300 + 256 does not
    [InlineData(4L << 30, 5L << 30, true)] // 4 GiB + 1 GiB (a quarter) fits 5 GiB exactly
    [InlineData(4L << 30, (5L << 30) - 1, false)]
    public void Fits_WeightsPlusHeadroomAgainstTheBudget(long weights, long budget, bool fits) =>
        Assert.Equal(fits, PrecomputeSelection.Fits(weights, budget));

    [Fact]
    public void Registry_SmallBudget_RegistersStreamedAndAutoPrecomputesLayerByLayer()
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("llama");
        TinyLlamaCheckpoint.Write(directory, new TinyLlamaCheckpoint.Options { Shards = 2 }, seed: 4);
        var options = new BackboneOptions { DataDirectory = temp.Sub("data"), Checkpoints = { ["big"] = directory }, GenerateTinyBackbone = false, ImportBundledBackbones = false };
        using var small = new BackboneRegistry(options, new TrainingOptions { MemoryBudgetBytes = 64L << 20 });
        using var large = new BackboneRegistry(options, new TrainingOptions { MemoryBudgetBytes = 1L << 40 });

        var streamed = small.Get("big");
        var resident = large.Get("big");

        Assert.False(streamed.IsResident);
        Assert.True(resident.IsResident);
        Assert.Equal(resident.WeightsHash, streamed.WeightsHash);
        Assert.Equal(resident.Shape, streamed.Shape);
        Assert.Equal(resident.WeightBytes, streamed.WeightBytes); // from the checkpoint's headers vs the loaded parameters
        using var batch = streamed.Encode(["a good movie"], null, 16);
        var refused = Assert.Throws<BackboneTooLargeException>(() => streamed.HiddenStates(batch));
        Assert.Equal("backbone_too_large_for_online_predict", refused.Code);

        var train = SyntheticSentiment.Generate(40, seed: 1);
        var hp = new ReadHyperparameters { Epochs = 2, BatchSize = 8, SideHiddenSize = 8, MaxLength = 16, Pooling = Pooling.Last };
        var steps = new List<StreamedPrecomputeStep>();
        var result = new ReadFineTuner { StreamedStepCompleted = steps.Add }.Run(streamed, train, null, hp, temp.Sub("cache"),
            new RecordingProgress(streamed), CancellationToken.None);
        Assert.Equal(3, steps.Count); // auto chose streamed: embeddings and both layers, one at a time
        Assert.NotNull(result.Metrics.ValidationAccuracy);

        var residentOnly = Assert.Throws<BackboneTooLargeException>(() => new ReadFineTuner().Run(streamed, train, null, hp with { Precompute = PrecomputeMode.Resident, Seed = 9 },
            temp.Sub("cache2"), new RecordingProgress(streamed), CancellationToken.None));
        Assert.Equal("backbone_too_large_for_resident_precompute", residentOnly.Code);
    }

    [Fact]
    public void Precompute_ReadsTheApiNames_AndRefusesOthersWithTheValidNames()
    {
        Assert.Equal(PrecomputeMode.Streamed, JsonSerializer.Deserialize<ReadHyperparameters>("""{"precompute":"streamed"}""")!.Precompute);
        Assert.Equal(PrecomputeMode.Auto, new ReadHyperparameters().Precompute);
        var error = Assert.Throws<JsonException>(() => JsonSerializer.Deserialize<ReadHyperparameters>("""{"precompute":"disk"}"""));
        Assert.Contains("must be one of auto, resident, streamed (got 'disk')", error.Message, StringComparison.Ordinal);
    }
}
