using Read.Domain.Backbones.Bert;
using Read.Domain.Backbones;
using Read.Research.Baselines;
using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Tests.Research.Baselines;

/// <summary>LoRA, adapters and BitFit as modules on the tiny backbone: identity at the start, closed-form sizes, gradients.</summary>
[Collection(TinyBackboneCollection.Name)]
public sealed class BaselineModulesTests(TinyBackboneFixture fixture)
{
    private const int Classes = 2;

    [Fact]
    public void Lora_ZeroB_LeavesHiddenStatesExactlyUnchangedUntilBMoves()
    {
        using var backbone = Fresh();
        using var batch = backbone.Encode(["the movie was good", "a really bad phone and awful service"], null, 32);
        var before = Last(backbone, batch);

        using var model = new BaselineClassifier((BertModel)backbone.Model, new BaselineConfig { Method = BaselineMethod.Lora }, Classes);
        var attached = Last(backbone, batch);
        Assert.True((before - attached).abs().max().item<float>() == 0f, "LoRA with B = 0 changed the output");

        // The hook really runs: a non-zero B moves the output.
        using (no_grad())
        {
            foreach (var (name, parameter) in model.named_parameters().Where(p => p.name.EndsWith("lora_B.weight", StringComparison.Ordinal)))
                parameter.fill_(0.01f);
        }

        var moved = Last(backbone, batch);
        Assert.True((moved - before).abs().max().item<float>() > 1e-4f, "a non-zero B did not change the output");
    }

    [Fact]
    public void Lora_Backward_GivesGradientsOnlyToLoraAndHead()
    {
        using var backbone = Fresh();
        using var model = new BaselineClassifier((BertModel)backbone.Model, new BaselineConfig { Method = BaselineMethod.Lora }, Classes);
        using var batch = backbone.Encode(["the movie was good", "a really bad phone"], null, 32);
        using var loss = nn.functional.cross_entropy(model.call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds), tensor(new long[] { 1, 0 }));
        loss.backward();

        var parameters = model.named_parameters().ToList();
        Assert.All(parameters.Where(p => p.name.StartsWith("bert.", StringComparison.Ordinal)), p =>
        {
            Assert.False(p.parameter.requires_grad, p.name);
            Assert.Null(p.parameter.grad);
        });
        var trainable = parameters.Where(p => p.parameter.requires_grad).Select(p => p.name).ToList();
        Assert.All(trainable, name => Assert.True(name.StartsWith("lora.", StringComparison.Ordinal) || name.StartsWith("classifier.", StringComparison.Ordinal), name));
        // d loss / d B = (d loss / d y) (A x)ᵀ is non-zero; d loss / d A = Bᵀ (…) is exactly zero while B = 0.
        Assert.All(parameters.Where(p => p.name.EndsWith("lora_B.weight", StringComparison.Ordinal)), p => Assert.True(p.parameter.grad!.abs().sum().item<float>() > 0, p.name));
        Assert.All(parameters.Where(p => p.name.EndsWith("lora_A.weight", StringComparison.Ordinal)), p => Assert.Equal(0f, p.parameter.grad!.abs().sum().item<float>()));
        Assert.True(parameters.Single(p => p.name == "classifier.weight").parameter.grad!.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Adapters_StartAsIdentityAndChangeOutputOnceUpMoves()
    {
        using var backbone = Fresh();
        using var batch = backbone.Encode(["the movie was good", "a really bad phone and awful service"], null, 32);
        var before = Last(backbone, batch);
        using var model = new BaselineClassifier((BertModel)backbone.Model, new BaselineConfig { Method = BaselineMethod.Adapters, AdapterSize = 16 }, Classes);
        Assert.True((before - Last(backbone, batch)).abs().max().item<float>() == 0f, "a fresh adapter is not the identity");

        using (no_grad())
        {
            // Random, not constant: the LayerNorm after the residual would cancel a shift shared by every dimension.
            foreach (var (_, parameter) in model.named_parameters().Where(p => p.name.EndsWith("up.weight", StringComparison.Ordinal)))
                parameter.copy_(randn_like(parameter) * 0.05f);
        }

        Assert.True((Last(backbone, batch) - before).abs().max().item<float>() > 1e-4f, "the adapter hook did not run");
    }

    [Theory]
    [InlineData(BaselineMethod.Full)]
    [InlineData(BaselineMethod.Lora)]
    [InlineData(BaselineMethod.BitFit)]
    [InlineData(BaselineMethod.Adapters)]
    [InlineData(BaselineMethod.Probe)]
    public void TrainableParameters_MatchClosedForm(BaselineMethod method)
    {
        using var backbone = Fresh();
        var c = ((BertModel)backbone.Model).Config;
        long v = c.VocabSize, p = c.MaxPositionEmbeddings, t = c.TypeVocabSize, d = c.HiddenSize, f = c.IntermediateSize, l = c.NumHiddenLayers;
        const int r = 4, m = 16;
        var head = d * Classes + Classes;
        var expected = method switch
        {
            // Embedding tables + embedding LayerNorm; per layer q, k, v, attention output (d² + d each), two LayerNorms,
            // the FFN (d·f + f, f·d + d).
            BaselineMethod.Full => (v + p + t) * d + 2 * d + l * (4 * (d * d + d) + 4 * d + (d * f + f) + (f * d + d)) + head,
            // 2 targets × L × r × (d_in + d_out).
            BaselineMethod.Lora => 2 * l * r * (d + d) + head,
            // Per layer: 4 attention biases, intermediate f, output d, two LayerNorm biases; plus the embedding LayerNorm bias.
            BaselineMethod.BitFit => l * (7 * d + f) + d + head,
            // Per layer: down (d·m + m), up (m·d + d), two LayerNorms (4d).
            BaselineMethod.Adapters => l * (2 * d * m + m + d) + l * 4 * d + head,
            _ => head,
        };
        using var model = new BaselineClassifier((BertModel)backbone.Model, new BaselineConfig { Method = method, LoraRank = r, AdapterSize = m }, Classes);
        Assert.Equal(expected, model.TrainableParameters);
    }

    [Fact]
    public void Lora_CustomTargetsRankAndAlpha_SizeAndScaleFollow()
    {
        using var backbone = Fresh();
        var c = ((BertModel)backbone.Model).Config;
        var config = new BaselineConfig { Method = BaselineMethod.Lora, LoraRank = 2, LoraAlpha = 16, LoraTargets = ["key", "intermediate.dense"] };
        using var model = new BaselineClassifier((BertModel)backbone.Model, config, Classes);
        long d = c.HiddenSize, f = c.IntermediateSize;
        Assert.Equal(c.NumHiddenLayers * 2 * ((d + d) + (d + f)) + d * Classes + Classes, model.TrainableParameters);
        Assert.Contains(model.named_parameters(), p => p.name == "lora.encoder_layer_0_intermediate_dense.lora_B.weight" && p.parameter.shape.SequenceEqual(new[] { f, 2L }));
        Assert.All(model.modules().OfType<LoraLinear>(), lora => Assert.Equal(8.0, lora.Scaling));
    }

    private Backbone Fresh() => HuggingFaceCheckpoint.Load("tiny-test", fixture.CheckpointDirectory);

    private static Tensor Last(Backbone backbone, EncodedBatch batch)
    {
        using var noGrad = no_grad();
        var hidden = ((BertModel)backbone.Model).call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);
        return hidden[^1];
    }
}
