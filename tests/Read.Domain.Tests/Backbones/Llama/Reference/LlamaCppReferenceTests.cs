using System.Text.Json.Nodes;
using Read.Domain.Backbones;
using Xunit.Abstractions;

namespace Read.Domain.Tests.Backbones.Llama.Reference;

/// <summary>
/// Checks the llama.cpp reference itself: that <see cref="GgufWriter"/> converts Hugging Face checkpoints the way
/// llama.cpp expects (including the q/k permutation for arch "llama") and that <see cref="LlamaCppReference"/>
/// returns per-token final hidden states of one causal sequence. The expected values come from
/// <see cref="NaiveLlamaForward"/>, a plain double-precision transcription of the Hugging Face modelling code.
/// </summary>
public sealed class LlamaCppReferenceTests(ITestOutputHelper output)
{
    // Relative to the largest magnitude of the expected vector. llama.cpp computes in float32 (F32 weights, F32 KV cache).
    private const double Tolerance = 1e-3;

    private static readonly int[] Tokens = [5, 17, 300, 42, 99, 3, 260, 128];

    private sealed record Converted(TempDirectory Temp, Dictionary<string, SafeTensor> Weights, string GgufPath) : IDisposable
    {
        public void Dispose() => Temp.Dispose();
    }

    private static Converted Convert(TinyLlamaSpec spec, int seed)
    {
        var temp = new TempDirectory();
        var hf = temp.Sub("hf");
        var weights = ReferenceLlamaCheckpoint.Write(hf, spec, seed);
        var gguf = temp.Sub("model.gguf");
        GgufWriter.WriteFromHuggingFace(hf, gguf);
        return new Converted(temp, weights, gguf);
    }

    private double AssertClose(double[][] expected, float[][] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxAbs = 0, maxRel = 0;
        for (var t = 0; t < expected.Length; t++)
        {
            Assert.Equal(expected[t].Length, actual[t].Length);
            var scale = expected[t].Max(Math.Abs);
            for (var i = 0; i < expected[t].Length; i++)
            {
                var diff = Math.Abs(expected[t][i] - actual[t][i]);
                maxAbs = Math.Max(maxAbs, diff);
                maxRel = Math.Max(maxRel, diff / scale);
            }
        }

        output.WriteLine($"{what}: max abs diff {maxAbs:E3}, max diff relative to the vector's largest value {maxRel:E3}");
        Assert.True(maxRel <= Tolerance, $"{what}: llama.cpp differs from the hand computation by {maxRel:E3} relative (max abs {maxAbs:E3}).");
        return maxRel;
    }

    private static double MaxRelativeDifference(double[][] a, double[][] b) =>
        a.Zip(b).Max(p => p.First.Zip(p.Second).Max(x => Math.Abs(x.First - x.Second)) / p.First.Max(Math.Abs));

    [Fact]
    public void Smoke_ShapesFiniteCausalAndRepeatable()
    {
        var spec = new TinyLlamaSpec();
        using var model = Convert(spec, seed: 1);
        using var reference = new LlamaCppReference(model.GgufPath);
        Assert.Equal(spec.Hidden, reference.EmbeddingSize);
        Assert.Equal(spec.Vocab, reference.VocabSize);

        var first = reference.FinalHiddenStates(Tokens);
        Assert.Equal(Tokens.Length, first.Length);
        Assert.All(first, v => Assert.Equal(spec.Hidden, v.Length));
        Assert.All(first, v => Assert.All(v, x => Assert.True(float.IsFinite(x))));

        var again = reference.FinalHiddenStates(Tokens);
        for (var t = 0; t < Tokens.Length; t++)
            Assert.Equal(first[t], again[t]);

        var changed = Tokens.ToArray();
        changed[^1] = 211;
        var other = reference.FinalHiddenStates(changed);
        for (var t = 0; t < Tokens.Length - 1; t++)
            Assert.Equal(first[t], other[t]);
        Assert.NotEqual(first[^1], other[^1]);

        // A shorter sequence afterwards: nothing of the previous one may remain in the KV cache.
        var prefix = reference.FinalHiddenStates(Tokens[..3]);
        for (var t = 0; t < 3; t++)
            Assert.Equal(first[t], prefix[t]);
    }

    [Fact]
    public void Llama_OneLayer_Token0_MatchesHandComputation()
    {
        var spec = new TinyLlamaSpec(Layers: 1);
        using var model = Convert(spec, seed: 2);
        using var reference = new LlamaCppReference(model.GgufPath);
        foreach (var id in new[] { 0, 7, 319 })
        {
            var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, [id]);
            AssertClose(expected, reference.FinalHiddenStates([id]), $"llama 1 layer, token {id} at position 0");
        }
    }

    [Fact]
    public void Qwen2_BiasesTiedEmbeddings_Token0_MatchesHandComputation()
    {
        var spec = new TinyLlamaSpec(ModelType: "qwen2", Layers: 1, TieWordEmbeddings: true, BosTokenId: null, EosTokenId: 2);
        using var model = Convert(spec, seed: 3);
        using var reference = new LlamaCppReference(model.GgufPath);
        var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, [11]);
        AssertClose(expected, reference.FinalHiddenStates([11]), "qwen2 1 layer, token 11 at position 0");
    }

    public static TheoryData<string> Architectures => new() { "llama", "mistral", "qwen2" };

    [Theory]
    [MemberData(nameof(Architectures))]
    public void TwoLayers_Sequence_RopeAndGqa_MatchHandComputation(string modelType)
    {
        var spec = new TinyLlamaSpec(ModelType: modelType, Layers: 2, RopeTheta: 100);
        using var model = Convert(spec, seed: 4);
        using var reference = new LlamaCppReference(model.GgufPath);
        var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, Tokens);
        AssertClose(expected, reference.FinalHiddenStates(Tokens), $"{modelType} 2 layers, {Tokens.Length} tokens");

        // The test must be able to see RoPE: without it the expected states differ clearly.
        var noRope = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, Tokens, rope: false);
        Assert.True(MaxRelativeDifference(expected, noRope) > 20 * Tolerance, "The checkpoint is not sensitive to RoPE.");
    }

    [Fact]
    public void Llama_TwoTokens_MatchHandComputation()
    {
        var spec = new TinyLlamaSpec(Layers: 1, RopeTheta: 100);
        using var model = Convert(spec, seed: 5);
        using var reference = new LlamaCppReference(model.GgufPath);
        var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, [30, 31]);
        AssertClose(expected, reference.FinalHiddenStates([30, 31]), "llama 1 layer, 2 tokens");
    }

    [Fact]
    public void Llama_HeadDimDifferentFromHiddenOverHeads_MatchesHandComputation()
    {
        var spec = new TinyLlamaSpec(Layers: 2, HeadDim: 32, RopeTheta: 100);
        using var model = Convert(spec, seed: 6);
        using var reference = new LlamaCppReference(model.GgufPath);
        var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, Tokens);
        AssertClose(expected, reference.FinalHiddenStates(Tokens), "llama head_dim 32 with hidden 64 / 4 heads");
    }

    public static TheoryData<string> RopeScalings => new() { "linear", "llama3" };

    [Theory]
    [MemberData(nameof(RopeScalings))]
    public void Llama_RopeScaling_MatchesHandComputation(string type)
    {
        var scaling = type == "linear"
            ? new JsonObject { ["type"] = "linear", ["factor"] = 4.0 }
            : new JsonObject
            {
                ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0,
                ["original_max_position_embeddings"] = 64,
            };
        var spec = new TinyLlamaSpec(Layers: 2, RopeTheta: 100, RopeScaling: scaling);
        using var model = Convert(spec, seed: 7);
        using var reference = new LlamaCppReference(model.GgufPath);
        var expected = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, Tokens);
        AssertClose(expected, reference.FinalHiddenStates(Tokens), $"llama rope_scaling {type}");

        var unscaled = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec with { RopeScaling = null }, Tokens);
        Assert.True(MaxRelativeDifference(expected, unscaled) > 5 * Tolerance, $"The checkpoint is not sensitive to rope_scaling {type}.");
    }

    [Theory]
    [InlineData("llama", false)]
    [InlineData("llama", true)]
    [InlineData("qwen2", true)]
    public void Logits_MatchHandComputation(string modelType, bool tie)
    {
        var spec = new TinyLlamaSpec(ModelType: modelType, Layers: 1, TieWordEmbeddings: tie, RopeTheta: 100);
        using var model = Convert(spec, seed: 8);
        using var reference = new LlamaCppReference(model.GgufPath);
        var hidden = NaiveLlamaForward.FinalHiddenStates(model.Weights, spec, Tokens[..4]);
        var expected = hidden.Select(h => NaiveLlamaForward.Logits(model.Weights, spec, h)).ToArray();
        var logits = reference.Logits(Tokens[..4]);
        Assert.All(logits, l => Assert.Equal(spec.Vocab, l.Length));
        AssertClose(expected, logits, $"{modelType} logits, tie={tie}");
    }

    [Fact]
    public void ShardedCheckpoint_ConvertsToTheSameFileAsASingleOne()
    {
        var spec = new TinyLlamaSpec(Layers: 2);
        using var temp = new TempDirectory();
        var single = temp.Sub("single");
        var tensors = ReferenceLlamaCheckpoint.Write(single, spec, seed: 9);
        var sharded = temp.Sub("sharded");
        Directory.CreateDirectory(sharded);
        File.Copy(Path.Combine(single, "config.json"), Path.Combine(sharded, "config.json"));
        var names = tensors.Keys.Order(StringComparer.Ordinal).ToList();
        var weightMap = new JsonObject();
        for (var shard = 0; shard < 2; shard++)
        {
            var file = $"model-0000{shard + 1}-of-00002.safetensors";
            var part = names.Where((_, i) => i % 2 == shard).ToList();
            File.WriteAllBytes(Path.Combine(sharded, file), SafeTensorsFile.Write(part.Select(n => KeyValuePair.Create(n, tensors[n]))));
            foreach (var n in part)
                weightMap[n] = file;
        }

        File.WriteAllText(Path.Combine(sharded, "model.safetensors.index.json"), new JsonObject { ["metadata"] = new JsonObject(), ["weight_map"] = weightMap }.ToJsonString());
        // Same directory name so that general.name matches.
        var a = temp.Sub("a");
        var b = temp.Sub("b");
        Directory.CreateDirectory(a);
        Directory.CreateDirectory(b);
        Directory.Move(single, Path.Combine(a, "m"));
        Directory.Move(sharded, Path.Combine(b, "m"));
        GgufWriter.WriteFromHuggingFace(Path.Combine(a, "m"), temp.Sub("a.gguf"));
        GgufWriter.WriteFromHuggingFace(Path.Combine(b, "m"), temp.Sub("b.gguf"));
        Assert.Equal(File.ReadAllBytes(temp.Sub("a.gguf")), File.ReadAllBytes(temp.Sub("b.gguf")));
    }

    [Fact]
    public void Permute_MatchesConverterReshapeSwapaxes()
    {
        // reshape(n_head, 2, hd/2, cols).swapaxes(1, 2): with 1 head, hd 4 rows [r0 r1 r2 r3] -> [r0 r2 r1 r3].
        var t = new SafeTensor([8, 1], [0, 1, 2, 3, 10, 11, 12, 13]);
        Assert.Equal([0f, 2, 1, 3, 10, 12, 11, 13], GgufWriter.Permute(t, 2));
    }
}
