using Read.Domain.Backbones;
using Read.Domain.Datasets;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>
/// NaN never becomes a product: a diverging loss stops training instead of yielding an adapter, and hidden states the
/// cache dtype cannot hold stop precompute instead of being stored as inf/NaN halves.
/// </summary>
[Collection(TinyBackboneCollection.Name)]
public sealed class NonFiniteValuesTests(TinyBackboneFixture fixture)
{
    [Fact]
    public void Run_RegressionTargetsWhoseStatisticsOverflow_ThrowsTrainingDivergedNotAnAdapter()
    {
        // The mean of these finite labels overflows to infinity, so every standardised target, and the loss, is NaN.
        var train = SyntheticSentiment.Generate(16, seed: 31)
            .Select((e, i) => e with { Label = i % 2 == 0 ? "1.7e308" : "1.6e308" }).ToList();
        var hyperparameters = ReadFineTunerTests.Learnable with { Epochs = 2 };

        var error = Assert.Throws<NonFiniteValuesException>(() => new ReadFineTuner().Run(fixture.Backbone, train, null,
            FineTuneTask.Regression, hyperparameters, fixture.NewCacheDirectory(), new RecordingProgress(fixture.Backbone), CancellationToken.None));

        Assert.Equal(NonFiniteSource.Training, error.Origin);
        Assert.Contains("diverged", error.Message);
    }

    [Theory]
    [InlineData(float.NaN, "fp16")]
    [InlineData(float.PositiveInfinity, "bf16")]
    [InlineData(1e5f, "fp16")] // finite in float32, infinite once stored as fp16
    public void GetOrCreate_HiddenStatesTheDtypeCannotHold_ThrowsAndLeavesNoCacheFile(float gamma, string dtype)
    {
        using var directory = new TempDirectory();
        using var backbone = BackboneWithEmbeddingScale(directory, gamma);
        var cache = directory.Sub("cache");
        var spec = new ActivationCacheSpec(32, "mean", [0, 2], dtype);

        var error = Assert.Throws<NonFiniteValuesException>(() =>
            ActivationCache.GetOrCreate(backbone, SyntheticSentiment.Generate(8, seed: 32), spec, cache, null, CancellationToken.None));

        Assert.Equal(NonFiniteSource.Activations, error.Origin);
        Assert.Empty(Directory.Exists(cache) ? Directory.GetFiles(cache) : []); // neither the cache nor its temporary file
    }

    [Fact]
    public void GetOrCreate_Fp16JustInsideItsRange_StillCaches()
    {
        using var directory = new TempDirectory();
        // LayerNorm output is about ±gamma·√d at most; 100 keeps every value far below 65504.
        using var backbone = BackboneWithEmbeddingScale(directory, 100f);
        var (cache, hit) = ActivationCache.GetOrCreate(backbone, SyntheticSentiment.Generate(8, seed: 33),
            new ActivationCacheSpec(32, "mean", [0, 2], "fp16"), directory.Sub("cache"), null, CancellationToken.None);
        using (cache)
            Assert.False(hit);
    }

    /// <summary>The tiny backbone with its embedding LayerNorm scaled by <paramref name="gamma"/>: layer 0 states are about that large.</summary>
    private Backbone BackboneWithEmbeddingScale(TempDirectory directory, float gamma)
    {
        var checkpoint = directory.Sub("backbone");
        Directory.CreateDirectory(checkpoint);
        foreach (var file in Directory.GetFiles(fixture.CheckpointDirectory))
            File.Copy(file, Path.Combine(checkpoint, Path.GetFileName(file)));
        var weights = Path.Combine(checkpoint, "model.safetensors");
        var tensors = TestSafeTensors.Read(weights);
        var (shape, data) = tensors["embeddings.LayerNorm.weight"];
        tensors["embeddings.LayerNorm.weight"] = (shape, data.Select(_ => gamma).ToArray());
        TestSafeTensors.Write(weights, tensors);
        return HuggingFaceCheckpoint.Load("tiny-scaled-" + Guid.NewGuid().ToString("N")[..8], checkpoint);
    }
}
