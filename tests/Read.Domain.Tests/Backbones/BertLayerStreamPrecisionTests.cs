using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Backbones;

/// <summary>
/// BERT's layer stream holds its one resident layer in the compute dtype (converted once at load, not widened per
/// call); its weights must still be rounded through the storage dtype, so streamed and resident states (one cache
/// key) are the same.
/// </summary>
public sealed class BertLayerStreamPrecisionTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BackboneDtype.BFloat16, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.Float16, BackboneDtype.Float32)]
    [InlineData(BackboneDtype.BFloat16, BackboneDtype.BFloat16)]
    public void LayerStream_OfAnFp32Checkpoint_GivesTheResidentModelsStates(BackboneDtype stored, BackboneDtype compute)
    {
        using var temp = new TempDirectory();
        var directory = temp.Sub("bert");
        TinyBertCheckpoint.Write(directory, BertConfig.Tiny(vocabSize: 1), seed: 3, SyntheticSentiment.Words); // F32 on disk
        using var backbone = HuggingFaceCheckpoint.Load("tiny", directory, stored, compute: compute);
        using var batch = backbone.Encode(["the movie was really good", "bad", "this food is quite great and the story was bad"], null, 32);
        var resident = backbone.HiddenStates(batch);
        using var stream = backbone.OpenLayerStream();
        Tensor? previous = null;
        double worst = 0;
        for (var step = 0; step <= stream.Layers; step++)
        {
            stream.Load(step);
            var state = stream.Run(step, previous, batch);
            Assert.Equal(compute.ToScalarType(), state.dtype);
            previous?.Dispose();
            previous = state;
            using var widened = state.to_type(ScalarType.Float32);
            using var delta = (widened - resident[step]).abs().max();
            worst = Math.Max(worst, delta.item<float>());
        }

        previous?.Dispose();
        foreach (var t in resident)
            t.Dispose();
        output.WriteLine($"{stored}/{compute}: streamed vs resident max |Δ| {worst:E2}");
        Assert.True(worst <= 1e-5, $"streamed states differ from the resident model's by {worst}");
    }
}
