using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

/// <summary>
/// A backbone whose last layer emits NaN, values beyond fp16, or values that overflow the head: training stops with
/// a stable code, no cache file is left and no adapter is returned. The checkpoints are generated tiny BERTs whose
/// final LayerNorm is rewritten, loaded through the real loader.
/// </summary>
public sealed class NonFiniteValueTests : IDisposable
{
    private readonly TempDirectory directory = new();

    // Final LayerNorm with weight 0 and this bias: every last-layer state equals the bias.
    private Backbone BackboneWhoseLastLayerIs(float value)
    {
        var path = directory.Sub("tiny-" + Guid.NewGuid().ToString("N"));
        var config = BertConfig.Tiny(vocabSize: 1);
        TinyBertCheckpoint.Write(path, config, seed: 4, SyntheticSentiment.Words);
        var weightsPath = Path.Combine(path, HuggingFaceCheckpoint.WeightsFile);
        var tensors = TestSafeTensors.Read(weightsPath);
        var prefix = $"encoder.layer.{config.NumHiddenLayers - 1}.output.LayerNorm.";
        var name = tensors.Keys.Single(k => k.EndsWith(prefix + "bias", StringComparison.Ordinal)).Replace("bias", "", StringComparison.Ordinal);
        var (shape, _) = tensors[name + "weight"];
        tensors[name + "weight"] = (shape, new float[shape[0]]);
        tensors[name + "bias"] = (shape, Enumerable.Repeat(value, (int)shape[0]).ToArray());
        TestSafeTensors.Write(weightsPath, tensors);
        return HuggingFaceCheckpoint.Load("tiny-poisoned", path);
    }

    private static ReadHyperparameters Quick(CacheDtype dtype) => ReadFineTunerTests.Learnable with { Epochs = 2, CacheDtype = dtype };

    [Theory]
    [InlineData(float.NaN, CacheDtype.Fp16)]
    [InlineData(float.PositiveInfinity, CacheDtype.Bf16)]
    [InlineData(1e5f, CacheDtype.Fp16)] // finite, but beyond fp16's 65504
    public void Run_BackboneStatesTheCacheCannotHold_FailsWithNonFiniteActivationsAndLeavesNoFile(float value, CacheDtype dtype)
    {
        using var backbone = BackboneWhoseLastLayerIs(value);
        var cache = directory.Sub("cache-" + Guid.NewGuid().ToString("N"));

        var e = Assert.Throws<NonFiniteValueException>(() => new ReadFineTuner().Run(
            backbone, SyntheticSentiment.Generate(16, seed: 1), null, Quick(dtype), cache, new RecordingProgress(backbone), CancellationToken.None));

        Assert.Equal("non_finite_activations", e.Code);
        Assert.Empty(Directory.Exists(cache) ? Directory.GetFiles(cache) : []);
    }

    [Fact]
    public void Run_StatesThatOverflowTheHead_FailsWithTrainingDiverged()
    {
        // 3e38 fits bf16 and float32, so the cache takes it; the side network and head overflow on it.
        using var backbone = BackboneWhoseLastLayerIs(3e38f);
        var cache = directory.Sub("cache-" + Guid.NewGuid().ToString("N"));

        var e = Assert.Throws<NonFiniteValueException>(() => new ReadFineTuner().Run(
            backbone, SyntheticSentiment.Generate(16, seed: 1), null, Quick(CacheDtype.Bf16), cache, new RecordingProgress(backbone), CancellationToken.None));

        Assert.Equal("training_diverged", e.Code);
    }

    public void Dispose() => directory.Dispose();
}
