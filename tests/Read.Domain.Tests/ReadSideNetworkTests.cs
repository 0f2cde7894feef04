using Read.Domain.SideNetwork;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests;

[Collection(TinyBackboneCollection.Name)]
public sealed class ReadSideNetworkTests(TinyBackboneFixture fixture)
{
    private static float[] Values(Tensor t) => t.detach().contiguous().data<float>().ToArray();

    [Fact]
    public void Gru_TwoLayersMeanAggregation_MatchesHandComputedEquations()
    {
        const int d = 5, r = 3, layers = 2, n = 2;
        manual_seed(11);
        using var side = new ReadSideNetwork(d, r, RecurrentCell.Gru, LayerAggregation.Mean, inputLayerNorm: true, zeroInitOutput: false);
        var state = side.state_dict();
        using (no_grad())
        {
            // Non-trivial LayerNorm and output weights, so every term of the equations is exercised.
            state["norm.weight"].copy_(rand(d) + 0.5);
            state["norm.bias"].copy_(randn(d) * 0.1);
        }

        using var input = randn(n, layers, d);
        using var output = side.call(input);

        var x = Values(input);
        var gamma = Values(state["norm.weight"]);
        var beta = Values(state["norm.bias"]);
        var wih = Values(state["cell.weight_ih_l0"]); // (3r, d), gates r | z | n
        var whh = Values(state["cell.weight_hh_l0"]); // (3r, r)
        var bih = Values(state["cell.bias_ih_l0"]);
        var bhh = Values(state["cell.bias_hh_l0"]);
        var wout = Values(state["joiner.weight"]); // (d, r)
        var bout = Values(state["joiner.bias"]);
        var actual = Values(output);
        static double Sigmoid(double v) => 1 / (1 + Math.Exp(-v));

        for (var b = 0; b < n; b++)
        {
            var h = new double[r];
            var sum = new double[r];
            for (var l = 0; l < layers; l++)
            {
                var phi = Enumerable.Range(0, d).Select(j => (double)x[(b * layers + l) * d + j]).ToArray();
                var mean = phi.Average();
                var variance = phi.Select(v => (v - mean) * (v - mean)).Average();
                var xn = phi.Select((v, j) => (v - mean) / Math.Sqrt(variance + 1e-5) * gamma[j] + beta[j]).ToArray();
                double Gi(int row) => bih[row] + Enumerable.Range(0, d).Sum(j => wih[row * d + j] * xn[j]);
                double Gh(int row, double[] hp) => bhh[row] + Enumerable.Range(0, r).Sum(j => whh[row * r + j] * hp[j]);
                var next = new double[r];
                for (var k = 0; k < r; k++)
                {
                    var reset = Sigmoid(Gi(k) + Gh(k, h));
                    var update = Sigmoid(Gi(r + k) + Gh(r + k, h));
                    var candidate = Math.Tanh(Gi(2 * r + k) + reset * Gh(2 * r + k, h));
                    next[k] = (1 - update) * candidate + update * h[k];
                }

                h = next;
                for (var k = 0; k < r; k++)
                    sum[k] += h[k] / layers;
            }

            for (var j = 0; j < d; j++)
            {
                var expected = x[(b * layers + layers - 1) * d + j] + bout[j] + Enumerable.Range(0, r).Sum(k => wout[j * r + k] * sum[k]);
                Assert.True(Math.Abs(expected - actual[b * d + j]) < 1e-5, $"example {b} feature {j}: expected {expected}, got {actual[b * d + j]}");
            }
        }
    }

    [Theory]
    [InlineData(RecurrentCell.Gru, LayerAggregation.Mean)]
    [InlineData(RecurrentCell.Gru, LayerAggregation.Last)]
    [InlineData(RecurrentCell.Rnn, LayerAggregation.Mean)]
    [InlineData(RecurrentCell.Lstm, LayerAggregation.Last)]
    public void ZeroInitialisedOutput_LeavesFinalStateExactlyUnchanged(RecurrentCell cell, LayerAggregation aggregation)
    {
        using var side = new ReadSideNetwork(16, 8, cell, aggregation);
        using var states = randn(4, 3, 16) * 3;
        using var corrected = side.call(states);
        using var last = states.select(1, -1);
        Assert.Equal(Values(last), Values(corrected)); // exact, element by element
    }

    [Fact]
    public void TrainableParameters_DoNotDependOnDepth()
    {
        const int d = 64, r = 16, labels = 3;
        long Count(int layers)
        {
            using var classifier = new ReadClassifier(new ReadSideNetwork(d, r), d, labels);
            using var logits = classifier.call(randn(2, layers, d));
            Assert.Equal(new long[] { 2, labels }, logits.shape);
            return classifier.TrainableParameters;
        }

        // LayerNorm 2d, GRU 3r(d + r) + 6r, joiner rd + d, head d·labels + labels.
        var expected = 2 * d + 3 * r * (d + r) + 6 * r + r * d + d + d * labels + labels;
        Assert.Equal(expected, Count(2));
        Assert.Equal(expected, Count(6));
    }

    [Fact]
    public void Backward_ThroughSideNetwork_GivesGradientsOnlyToSideAndHead()
    {
        var backbone = fixture.Backbone;
        using var batch = backbone.Encode(["a good movie", "an awful film"], null, 16);
        var hidden = backbone.HiddenStates(batch);
        using var states = stack(hidden.Skip(1).Select(h => h.select(1, 0)).ToArray(), 1); // (B, L, d)
        using var classifier = new ReadClassifier(new ReadSideNetwork(64, 8), 64, 2);
        using var loss = nn.functional.cross_entropy(classifier.call(states), tensor(new long[] { 1, 0 }));
        loss.backward();

        Assert.All(classifier.named_parameters(), p => Assert.True(p.parameter.grad is not null, $"{p.name} has no gradient"));
        // The joiner starts at zero, yet its gradient must not be: it is how training moves away from the identity.
        Assert.True(classifier.named_parameters().Single(p => p.name == "side.joiner.weight").parameter.grad!.abs().sum().item<float>() > 0);
        Assert.All(backbone.Model.parameters(), p => Assert.Null(p.grad));
        Assert.All(hidden, h => Assert.False(h.requires_grad));
        foreach (var h in hidden)
            h.Dispose();
    }
}
