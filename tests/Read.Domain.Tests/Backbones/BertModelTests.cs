using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Backbones;

public sealed class BertModelTests
{
    private const double Tolerance = 1e-4;

    [Fact]
    public void Erf_ReferenceImplementation_MatchesKnownValues()
    {
        Assert.Equal(0.5204998778, BertReference.Erf(0.5), 9);
        Assert.Equal(0.9953222650, BertReference.Erf(2.0), 9);
        Assert.Equal(-0.9999779095, BertReference.Erf(-3.0), 9);
    }

    [Fact]
    public void HiddenStates_PaddedPairBatch_MatchPlainCSharpReference()
    {
        using var temp = new TempDirectory();
        var config = BertConfig.Tiny(vocabSize: 1, layers: 2, hiddenSize: 32, heads: 4, intermediateSize: 64, maxPositions: 64);
        TinyBertCheckpoint.Write(temp.Path, config, seed: 7);
        // Perturb every tensor so biases and LayerNorm weights are not the trivial zeros/ones of a fresh checkpoint.
        var path = Path.Combine(temp.Path, "model.safetensors");
        var random = new Random(3);
        var weights = TestSafeTensors.Read(path).ToDictionary(
            p => p.Key,
            p => (p.Value.Shape, p.Value.Data.Select(v => v + (float)(random.NextDouble() - 0.5) * 0.2f).ToArray()));
        TestSafeTensors.Write(path, weights);

        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);
        using var batch = backbone.Encode(["a great movie", "bad, really bad! the ending was awful and too long"], ["fun", null], 64);
        var hidden = backbone.HiddenStates(batch);
        var reference = new BertReference(weights, layers: 2, heads: 4, eps: 1e-12);

        var ids = batch.InputIds.data<long>().ToArray();
        var mask = batch.AttentionMask.data<long>().ToArray();
        var types = batch.TokenTypeIds.data<long>().ToArray();
        long rows = batch.InputIds.shape[0], width = batch.InputIds.shape[1];
        Assert.Contains(0L, mask); // the batch really has padding
        Assert.Equal(3, hidden.Length);
        var maxError = 0.0;
        for (var r = 0; r < rows; r++)
        {
            var expected = reference.Forward(ids.Skip((int)(r * width)).Take((int)width).ToArray(), mask.Skip((int)(r * width)).Take((int)width).ToArray(), types.Skip((int)(r * width)).Take((int)width).ToArray());
            for (var l = 0; l < hidden.Length; l++)
            {
                var actual = hidden[l][r].data<float>().ToArray(); // (S, d)
                for (var t = 0; t < width; t++)
                    for (var j = 0; j < 32; j++)
                        maxError = Math.Max(maxError, Math.Abs(actual[t * 32 + j] - expected[l][t][j]));
            }
        }

        Assert.True(maxError < Tolerance, $"max |torch - reference| = {maxError}");
        foreach (var h in hidden)
            h.Dispose();
    }

    [Fact]
    public void Model_Loaded_IsFrozenAndInEvalMode()
    {
        using var temp = new TempDirectory();
        TinyBertCheckpoint.Write(temp.Path, BertConfig.Tiny(1, layers: 1, hiddenSize: 16, heads: 2, intermediateSize: 32), seed: 1);
        using var backbone = HuggingFaceCheckpoint.Load("t", temp.Path);
        Assert.False(backbone.Model.training);
        Assert.All(backbone.Model.parameters(), p => Assert.False(p.requires_grad));
        Assert.Contains("encoder.layer.0.attention.self.query.weight", backbone.Model.state_dict().Keys);
        Assert.Contains("encoder.layer.0.attention.output.LayerNorm.weight", backbone.Model.state_dict().Keys);
        Assert.Contains("embeddings.word_embeddings.weight", backbone.Model.state_dict().Keys);
    }
}
