using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Read.Domain.Backbones.Llama;
using Read.Domain.Tests.Backbones.Llama.Reference;
using Xunit.Abstractions;

namespace Read.Domain.Tests.Backbones.Llama;

/// <summary>
/// The Llama-family backbone against llama.cpp, an independent implementation: a random checkpoint written in
/// Hugging Face layout is loaded through the real loader and tokenizer, the same checkpoint is converted to GGUF the
/// way convert_hf_to_gguf.py does, and the final hidden states of the same token ids must agree.
/// </summary>
public sealed class LlamaParityTests(ITestOutputHelper output)
{
    // Relative to each position's largest magnitude; both sides compute in float32, and llama.cpp's own agreement with
    // a double-precision transcription of transformers is ~1e-6 (LlamaCppReferenceTests).
    private const double Tolerance = 1e-4;

    private const string Text = "the movie was good but the ending was bad and i would not watch it again";

    public static TheoryData<string> Variants => new() { "llama-gqa", "qwen2-bias-tied", "llama3-rope", "linear-rope", "mistral", "head-dim-32" };

    private static TinyLlamaCheckpoint.Options OptionsFor(string variant) => variant switch
    {
        "llama-gqa" => new TinyLlamaCheckpoint.Options(),
        "qwen2-bias-tied" => new TinyLlamaCheckpoint.Options { ModelType = "qwen2", TieWordEmbeddings = true, RopeTheta = 1_000_000 },
        "llama3-rope" => new TinyLlamaCheckpoint.Options
        {
            // Llama 3.2's scaling with a short original context, so every band (kept, interpolated, divided) is used.
            RopeTheta = 500_000,
            RopeScaling = new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = 32.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
                ["original_max_position_embeddings"] = 64,
            },
        },
        "linear-rope" => new TinyLlamaCheckpoint.Options { RopeScaling = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 } },
        "mistral" => new TinyLlamaCheckpoint.Options { ModelType = "mistral", KeyValueHeads = 1 },
        "head-dim-32" => new TinyLlamaCheckpoint.Options { HeadDim = 32 },
        _ => throw new ArgumentOutOfRangeException(nameof(variant)),
    };

    [Theory]
    [MemberData(nameof(Variants))]
    public void FinalHiddenStates_PaddedBatch_MatchLlamaCpp(string variant)
    {
        using var temp = new TempDirectory();
        var hf = temp.Sub("hf");
        TinyLlamaCheckpoint.Write(hf, OptionsFor(variant), seed: 7);
        var gguf = temp.Sub("model.gguf");
        GgufWriter.WriteFromHuggingFace(hf, gguf);

        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama", hf);
        using var reference = new LlamaCppReference(gguf);
        // Rows of different lengths in one batch: padding must neither change a row nor leak into another.
        string[] texts = [Text, "good", "bad service and cold food"];
        using var batch = backbone.Encode(texts, null, 64);
        var hidden = backbone.HiddenStates(batch);
        try
        {
            Assert.Equal(backbone.Shape.NumHiddenLayers + 1, hidden.Length);
            var final = hidden[^1];
            double worst = 0;
            for (var row = 0; row < texts.Length; row++)
            {
                var length = (int)batch.AttentionMask[row].sum().item<long>();
                var ids = batch.InputIds[row].data<long>().Take(length).Select(i => (int)i).ToArray();
                var expected = reference.FinalHiddenStates(ids);
                var actual = final[row].data<float>().ToArray();
                var d = backbone.Shape.HiddenSize;
                for (var t = 0; t < length; t++)
                {
                    var scale = expected[t].Max(Math.Abs);
                    for (var i = 0; i < d; i++)
                        worst = Math.Max(worst, Math.Abs(expected[t][i] - actual[t * d + i]) / scale);
                }
            }

            output.WriteLine($"{variant}: max |TorchSharp - llama.cpp| relative to the position's largest value = {worst:E3}");
            Assert.True(worst <= Tolerance, $"{variant}: differs from llama.cpp by {worst:E3} relative.");
        }
        finally
        {
            foreach (var h in hidden)
                h.Dispose();
        }
    }

    [Fact]
    public void FinalHiddenStates_Bf16Weights_Fp32Compute_MatchLlamaCpp()
    {
        // A BF16 checkpoint kept in bf16 and widened per projection computes what llama.cpp computes in fp32 from the same weights.
        using var temp = new TempDirectory();
        var hf = temp.Sub("hf");
        TinyLlamaCheckpoint.Write(hf, new TinyLlamaCheckpoint.Options { StorageDtype = "BF16" }, seed: 3);
        var gguf = temp.Sub("model.gguf");
        GgufWriter.WriteFromHuggingFace(hf, gguf);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama-bf16", hf, BackboneDtype.BFloat16, compute: BackboneDtype.Float32);
        using var reference = new LlamaCppReference(gguf);
        using var batch = backbone.Encode([Text], null, 64);
        var hidden = backbone.HiddenStates(batch);
        var ids = batch.InputIds[0].data<long>().Select(i => (int)i).ToArray();
        var expected = reference.FinalHiddenStates(ids);
        var actual = hidden[^1][0].data<float>().ToArray();
        var d = backbone.Shape.HiddenSize;
        var worst = Enumerable.Range(0, ids.Length).Max(t => Enumerable.Range(0, d).Max(i => Math.Abs(expected[t][i] - actual[t * d + i])) / expected[t].Max(Math.Abs));
        foreach (var h in hidden)
            h.Dispose();
        output.WriteLine($"bf16 weights, fp32 compute vs llama.cpp fp32: {worst:E3} relative");
        Assert.All(backbone.Model.parameters(), p => Assert.Equal(TorchSharp.torch.ScalarType.BFloat16, p.dtype));
        Assert.True(worst <= Tolerance, $"bf16 weights with fp32 compute differ from fp32 llama.cpp by {worst:E3} relative.");
    }

    [Fact]
    public void FinalHiddenStates_Bf16Compute_StayCloseToLlamaCppFp32()
    {
        using var temp = new TempDirectory();
        var hf = temp.Sub("hf");
        TinyLlamaCheckpoint.Write(hf, new TinyLlamaCheckpoint.Options { StorageDtype = "BF16" }, seed: 3);
        var gguf = temp.Sub("model.gguf");
        GgufWriter.WriteFromHuggingFace(hf, gguf);
        using var backbone = HuggingFaceCheckpoint.Load("tiny-llama-bf16", hf, BackboneDtype.BFloat16, compute: BackboneDtype.BFloat16);
        using var reference = new LlamaCppReference(gguf);
        using var batch = backbone.Encode([Text], null, 64);
        var hidden = backbone.HiddenStates(batch);
        var ids = batch.InputIds[0].data<long>().Select(i => (int)i).ToArray();
        var expected = reference.FinalHiddenStates(ids);
        var actual = hidden[^1][0].data<float>().ToArray();
        var d = backbone.Shape.HiddenSize;
        var worst = Enumerable.Range(0, ids.Length).Max(t => Enumerable.Range(0, d).Max(i => Math.Abs(expected[t][i] - actual[t * d + i])) / expected[t].Max(Math.Abs));
        foreach (var h in hidden)
            h.Dispose();
        output.WriteLine($"bf16 compute vs llama.cpp fp32 on the same (bf16-stored) weights: {worst:E3} relative");
        // bf16 keeps 8 bits of mantissa (~4e-3 per rounding); two layers of rounding stay well inside 5e-2.
        Assert.True(worst <= 5e-2, $"bf16 differs from fp32 llama.cpp by {worst:E3} relative.");
        Assert.True(worst > 1e-6, "bf16 compute should not be bit-identical to fp32: is the dtype option applied?");
    }
}
