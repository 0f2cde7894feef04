using Read.Domain.SideNetwork;
using Read.Domain.FineTuning;

namespace Read.Domain.Tests.FineTuning;

public sealed class ReadHyperparametersTests
{
    [Theory]
    // Bytes per example: positions × cached layers × width × 2; one read holds Array.MaxLength (2,147,483,591) bytes.
    [InlineData(Pooling.Mean, null, InitialState.Zeros, 2_147_483_591L / (512L * 6 * 384 * 2))] // 910
    [InlineData(Pooling.Cls, null, InitialState.Zeros, 2_147_483_591L / (1L * 6 * 384 * 2))]
    [InlineData(Pooling.Mean, new[] { 2, 4 }, InitialState.Zeros, 2_147_483_591L / (512L * 3 * 384 * 2))] // layers 2, 4 and the final 6
    [InlineData(Pooling.Mean, new[] { 2, 4 }, InitialState.Embedding, 2_147_483_591L / (512L * 4 * 384 * 2))] // and layer 0
    public void MaxBatchSize_MiniLmShape_IsWhatOneCacheReadHolds(Pooling pooling, int[]? layers, InitialState initialState, long expected)
    {
        var hp = new ReadHyperparameters { MaxLength = 512, Pooling = pooling, Layers = layers, InitialState = initialState };
        Assert.Equal(expected, hp.MaxBatchSize(numLayers: 6, hiddenSize: 384));
    }

    [Fact]
    public void Validate_BatchAboveWhatTheCacheServes_NamesBatchSizeAndTheLargestValue()
    {
        var hp = new ReadHyperparameters { MaxLength = 512, BatchSize = 911 };
        var error = Assert.Single(hp.Validate(512, 6, 384));
        Assert.StartsWith("batch_size must be at most 910 ", error, StringComparison.Ordinal);
        Assert.Empty((hp with { BatchSize = 910 }).Validate(512, 6, 384));
        Assert.Empty(hp.Validate(512, 6)); // without the width the cache bound is not checked
    }

    [Theory]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(1e300)]
    [InlineData(0.0)]
    public void Validate_NonFiniteOrOutOfRangeFloats_NameEachField(double value)
    {
        var errors = new ReadHyperparameters { LearningRate = value, WeightDecay = value == 0 ? -1 : value, MaxGradNorm = value == 0 ? -1 : value }.Validate();
        Assert.Contains(errors, e => e.StartsWith("learning_rate must be", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("weight_decay must be", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("max_grad_norm must be", StringComparison.Ordinal));
    }
}
