using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.SideNetwork;

[Collection(TinyBackboneCollection.Name)]
public sealed class SideNetworkVariantTests(TinyBackboneFixture fixture)
{
    private const int D = 16, R = 8;

    private static float[] Values(Tensor t) => t.detach().contiguous().data<float>().ToArray();

    private static void Perturb(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var p in module.parameters())
            p.add_(randn_like(p) * 0.3);
    }

    [Theory]
    [InlineData(RecurrentCell.Gru, InputNorm.LayerNorm, InitialState.Zeros, null)]
    [InlineData(RecurrentCell.Gru, InputNorm.RmsNorm, InitialState.Embedding, null)]
    [InlineData(RecurrentCell.Lstm, InputNorm.None, InitialState.Embedding, new[] { 1, 3 })]
    [InlineData(RecurrentCell.Rnn, InputNorm.LayerNorm, InitialState.Zeros, new[] { 2 })]
    public void ZeroInitialisedOutput_AnyVariant_LeavesFinalStateExactlyUnchanged(RecurrentCell cell, InputNorm norm, InitialState initial, int[]? layers)
    {
        var layout = LayerLayout.Create(layers, 4, initial == InitialState.Embedding);
        using var side = new ReadSideNetwork(new ReadSideNetworkConfig(D, R, cell, LayerAggregation.Mean, norm, true, initial), layout);
        using var states = randn(5, layout.Channels.Count, D) * 3; // channels: [0?] + selected + 4
        using var corrected = side.call(states);
        Assert.Equal(Values(states.select(1, -1)), Values(corrected)); // layer 4 is the last channel
    }

    [Theory]
    [InlineData(RecurrentCell.Gru, InputNorm.LayerNorm, InitialState.Zeros)]
    [InlineData(RecurrentCell.Gru, InputNorm.RmsNorm, InitialState.Embedding)]
    [InlineData(RecurrentCell.Lstm, InputNorm.LayerNorm, InitialState.Embedding)]
    [InlineData(RecurrentCell.Rnn, InputNorm.None, InitialState.Zeros)]
    public void TrainableParameters_AnyVariant_DoNotDependOnDepth(RecurrentCell cell, InputNorm norm, InitialState initial)
    {
        const int labels = 3;
        long Count(int depth)
        {
            var layout = LayerLayout.Create(null, depth, initial == InitialState.Embedding);
            using var model = new ReadClassifier(new ReadSideNetwork(new ReadSideNetworkConfig(D, R, cell, LayerAggregation.Mean, norm, true, initial), layout), D, labels);
            using var logits = model.call(randn(2, layout.Channels.Count, D));
            Assert.Equal(new long[] { 2, labels }, logits.shape);
            return model.TrainableParameters;
        }

        var gates = cell switch { RecurrentCell.Gru => 3, RecurrentCell.Lstm => 4, _ => 1 };
        var expected = (norm switch { InputNorm.LayerNorm => 2 * D, InputNorm.RmsNorm => D, _ => 0 })
            + gates * R * (D + R) + 2 * gates * R // cell: W_ih, W_hh, two biases
            + R * D + D // joiner
            + (initial == InitialState.Embedding ? D * R : 0) // W_0, no bias
            + D * labels + labels; // head
        Assert.Equal(expected, Count(2));
        Assert.Equal(expected, Count(6));
        Assert.Equal(expected, Count(12));
    }

    [Fact]
    public void LayerSelection_FeedsOnlySelectedLayers_AndCorrectsTheLastLayer()
    {
        manual_seed(5);
        var layout = LayerLayout.Create([1, 3], 4, embedding: false); // channels 1, 3, 4
        Assert.Equal([1, 3, 4], layout.Channels);
        using var selected = new ReadSideNetwork(new ReadSideNetworkConfig(D, R, ZeroInitOutput: false), layout);
        using var plain = new ReadSideNetwork(new ReadSideNetworkConfig(D, R, ZeroInitOutput: false));
        plain.load_state_dict(selected.state_dict());
        using var states = randn(3, 3, D);
        using var expectedDelta = plain.Join(plain.Aggregate(states.narrow(1, 0, 2))); // recurrence over layers 1 and 3 only
        using var actual = selected.call(states);
        using var expected = states.select(1, 2) + expectedDelta;
        Assert.True(allclose(expected, actual, 1e-6, 1e-6));
    }

    [Fact]
    public void EmbeddingInitialState_ChangesTheRecurrence_ButNotItsParameterNamesElsewhere()
    {
        var layout = LayerLayout.Create(null, 2, embedding: true); // channels 0, 1, 2
        using var side = new ReadSideNetwork(new ReadSideNetworkConfig(D, R, ZeroInitOutput: false, InitialState: InitialState.Embedding), layout);
        Assert.Contains("initial.weight", side.state_dict().Keys);
        using var states = randn(4, 3, D);
        using var a = side.Aggregate(states);
        using var changed = states.clone();
        using (no_grad())
            changed.select(1, 0).add_(randn(4, D)); // only φ_0 changes (not by a constant shift: the norm would remove it)
        using var b = side.Aggregate(changed);
        Assert.False(allclose(a, b, 1e-4, 1e-4), "h_0 must depend on the embedding output");
    }

    [Fact]
    public void MeanPooling_PackedForward_EqualsHeadOnMeanOfCorrectedPositions()
    {
        manual_seed(9);
        using var model = new ReadClassifier(new ReadSideNetwork(new ReadSideNetworkConfig(D, R, ZeroInitOutput: false)), D, 2, Pooling.Mean);
        Perturb(model);
        using var states = randn(7, 3, D); // example 0: 3 positions, example 1: 4 positions
        using var segments = tensor(new long[] { 0, 0, 0, 1, 1, 1, 1 });
        using var packed = model.Forward(states, segments, 2);

        using var corrected = model.Side.call(states); // (7, d): φ'_L per position
        using var pooled = stack([corrected.narrow(0, 0, 3).mean([0]), corrected.narrow(0, 3, 4).mean([0])]);
        var head = model.named_children().Single(c => c.name == "head").module as nn.Module<Tensor, Tensor>;
        using var expected = head!.call(pooled);
        Assert.True(allclose(expected, packed, 1e-5, 1e-5), $"{string.Join(",", Values(expected))} vs {string.Join(",", Values(packed))}");
    }

    [Fact]
    public void Backward_MeanPoolingWithEmbeddingState_GivesGradientsOnlyToSideAndHead()
    {
        var backbone = fixture.Backbone;
        using var batch = backbone.Encode(["a good movie", "an awful film was so bad"], null, 16);
        var hidden = backbone.HiddenStates(batch);
        var layout = LayerLayout.Create([2, 3], backbone.Shape.NumHiddenLayers, embedding: true);
        var (states, segments) = Read.Domain.FineTuning.HiddenStateGather.Gather(hidden, batch.AttentionMask, layout.Channels, Pooling.Mean);
        using var model = new ReadClassifier(
            new ReadSideNetwork(new ReadSideNetworkConfig(64, 8, RecurrentCell.Lstm, LayerAggregation.Last, InputNorm.RmsNorm, true, InitialState.Embedding), layout), 64, 2, Pooling.Mean);
        using var loss = nn.functional.cross_entropy(model.Forward(states, segments, 2), tensor(new long[] { 1, 0 }));
        loss.backward();

        Assert.All(model.named_parameters(), p => Assert.True(p.parameter.grad is not null, $"{p.name} has no gradient"));
        // The joiner starts at zero, so only it and the head get non-zero gradients on the first step.
        Assert.All(model.named_parameters().Where(p => p.name.StartsWith("side.joiner", StringComparison.Ordinal) || p.name.StartsWith("head", StringComparison.Ordinal)),
            p => Assert.True(p.parameter.grad!.abs().sum().item<float>() > 0, $"{p.name} has a zero gradient"));
        Assert.All(backbone.Model.parameters(), p => Assert.Null(p.grad));
        Assert.False(states.requires_grad);
        foreach (var h in hidden)
            h.Dispose();
    }
}
