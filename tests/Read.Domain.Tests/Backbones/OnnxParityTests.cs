using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert.Onnx;
using TorchSharp;
using Xunit.Abstractions;

namespace Read.Domain.Tests.Backbones;

/// <summary>The TorchSharp backbone against ONNX Runtime running the very ONNX file it was imported from.</summary>
[Collection(MiniLmCollection.Name)]
public sealed class OnnxParityTests(MiniLmFixture fixture, ITestOutputHelper output)
{
    private const double Tolerance = 1e-4;

    [Fact]
    public void OnnxGraph_MiniLm_HasTheBertInputsAndLastHiddenState()
    {
        var model = OnnxModel.Parse(fixture.Onnx);
        Assert.Equal(["input_ids", "attention_mask", "token_type_ids"], model.Inputs);
        Assert.Equal("last_hidden_state", model.Outputs[0]);
    }

    [Fact]
    public void HiddenStates_PaddedBatchOfDifferentLengths_MatchOnnxRuntime()
    {
        using var batch = fixture.Backbone.Encode(
            ["This is an example sentence", "Short.", "A considerably longer sentence, with punctuation and rarer words like quixotic."], null, 128);
        var diff = MaxDifferenceFromOnnxRuntime(batch);
        output.WriteLine($"max |TorchSharp - ONNX Runtime| = {diff:E3}");
        Assert.True(diff < Tolerance, $"max |TorchSharp - ONNX Runtime| = {diff:E3}");
    }

    [Fact]
    public void HiddenStates_TextPairWithTokenTypes_MatchOnnxRuntime()
    {
        using var batch = fixture.Backbone.Encode(["How old are you?", "Is it raining?"], ["I am six years old.", null], 128);
        Assert.Contains(1L, batch.TokenTypeIds.data<long>().ToArray());
        var diff = MaxDifferenceFromOnnxRuntime(batch);
        output.WriteLine($"max |TorchSharp - ONNX Runtime| = {diff:E3}");
        Assert.True(diff < Tolerance, $"max |TorchSharp - ONNX Runtime| = {diff:E3}");
    }

    [Fact]
    public void MeanPooledEmbedding_ExampleSentence_MatchesPublishedValues()
    {
        using var batch = fixture.Backbone.Encode(["This is an example sentence"], null, 128);
        var hidden = fixture.Backbone.HiddenStates(batch);
        try
        {
            using var mask = batch.AttentionMask.unsqueeze(-1).to_type(torch.ScalarType.Float32); // (B, S, 1)
            using var summed = (hidden[^1] * mask).sum(1);
            using var mean = summed / mask.sum(1);
            using var normalised = torch.nn.functional.normalize(mean, p: 2, dim: 1);
            var values = normalised.data<float>().ToArray();
            double[] expected = [0.0677, 0.0635, 0.0487, 0.0793];
            output.WriteLine("embedding[0..4] = " + string.Join(", ", values.Take(4).Select(v => v.ToString("F5", System.Globalization.CultureInfo.InvariantCulture))));
            for (var i = 0; i < expected.Length; i++)
                Assert.True(Math.Abs(values[i] - expected[i]) <= 1e-4, $"embedding[{i}] = {values[i]:F5}, expected {expected[i]}");
        }
        finally
        {
            foreach (var h in hidden)
                h.Dispose();
        }
    }

    private double MaxDifferenceFromOnnxRuntime(EncodedBatch batch)
    {
        var hidden = fixture.Backbone.HiddenStates(batch);
        try
        {
            var ours = hidden[^1].data<float>().ToArray();
            var reference = OnnxRuntimeLastHiddenState(fixture.Onnx, batch);
            Assert.Equal(reference.Length, ours.Length);
            return ours.Zip(reference, (a, b) => Math.Abs((double)a - b)).Max();
        }
        finally
        {
            foreach (var h in hidden)
                h.Dispose();
        }
    }

    internal static float[] OnnxRuntimeLastHiddenState(byte[] onnx, EncodedBatch batch)
    {
        int[] shape = [(int)batch.InputIds.shape[0], (int)batch.InputIds.shape[1]];
        using var session = new InferenceSession(onnx);
        var inputs = new List<NamedOnnxValue>
        {
            NamedOnnxValue.CreateFromTensor("input_ids", new DenseTensor<long>(batch.InputIds.data<long>().ToArray(), shape)),
            NamedOnnxValue.CreateFromTensor("attention_mask", new DenseTensor<long>(batch.AttentionMask.data<long>().ToArray(), shape)),
            NamedOnnxValue.CreateFromTensor("token_type_ids", new DenseTensor<long>(batch.TokenTypeIds.data<long>().ToArray(), shape)),
        };
        using var results = session.Run(inputs, ["last_hidden_state"]);
        return results[0].AsEnumerable<float>().ToArray();
    }
}
