using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Bert;

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>A BERT encoder (no pooler) that returns every hidden state: embeddings then each layer.</summary>
public sealed class BertModel : nn.Module<Tensor, Tensor, Tensor, Tensor[]>, IBackboneModel
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;

    public BertModel(BertConfig config) : base(nameof(BertModel))
    {
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        RegisterComponents();
    }

    public BertConfig Config { get; }

    public BackboneShape Shape => new(Config.HiddenSize, Config.NumHiddenLayers, Config.MaxPositionEmbeddings);

    nn.Module IBackboneModel.Module => this;

    public Tensor[] Forward(EncodedBatch batch) => call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);

    /// <summary>
    /// (B, S) ids, mask and token types in; L + 1 tensors of (B, S, d) out: index 0 is the embedding
    /// output, index i the output of layer i.
    /// </summary>
    public override Tensor[] forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds)
    {
        using var maskBias = MaskBias(attentionMask);
        var embedded = embeddings.call(inputIds, tokenTypeIds);
        var layers = encoder.call(embedded, maskBias);
        return [embedded, .. layers];
    }

    /// <summary>
    /// (B, 1, 1, S) additive mask, the same as Hugging Face's: the dtype's minimum on padded keys, so they get zero
    /// weight. Shared with <see cref="BertLayerStream"/>.
    /// </summary>
    internal static Tensor MaskBias(Tensor attentionMask)
    {
        using var keep = attentionMask.to_type(ScalarType.Float32).unsqueeze(1).unsqueeze(2); // (B, 1, 1, S)
        return (1.0f - keep) * float.MinValue;
    }
}
