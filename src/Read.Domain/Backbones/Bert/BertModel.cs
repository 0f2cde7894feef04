using TorchSharp;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Bert;

#pragma warning disable IDE1006 // field names are Hugging Face state-dict keys

/// <summary>A BERT encoder (no pooler) that returns every hidden state: embeddings then each layer.</summary>
public sealed class BertModel : nn.Module<Tensor, Tensor, Tensor, Tensor[]>, IBackboneModel
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;

    private readonly ScalarType computeDtype;

    public BertModel(BertConfig config) : this(config, BertPrecision.Float32Cpu)
    {
    }

    internal BertModel(BertConfig config, BertPrecision precision) : base(nameof(BertModel))
    {
        Config = config;
        computeDtype = precision.Compute;
        Precision = precision;
        embeddings = new BertEmbeddings(config, precision);
        encoder = new BertEncoder(config, precision);
        RegisterComponents();
    }

    public BertConfig Config { get; }

    /// <summary>What the weights are kept in, what the forward computes in, and where it runs.</summary>
    internal BertPrecision Precision { get; }

    private static float MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504f,
        ScalarType.BFloat16 => -3.38e38f,
        _ => float.MinValue,
    };

    public BackboneShape Shape => new(Config.HiddenSize, Config.NumHiddenLayers, Config.MaxPositionEmbeddings);

    nn.Module IBackboneModel.Module => this;

    public Tensor[] Forward(EncodedBatch batch) => call(batch.InputIds, batch.AttentionMask, batch.TokenTypeIds);

    /// <summary>
    /// (B, S) ids, mask and token types in; L + 1 tensors of (B, S, d) out: index 0 is the embedding
    /// output, index i the output of layer i.
    /// </summary>
    public override Tensor[] forward(Tensor inputIds, Tensor attentionMask, Tensor tokenTypeIds)
    {
        using var maskBias = MaskBias(attentionMask, computeDtype);
        var embedded = embeddings.call(inputIds, tokenTypeIds);
        var layers = encoder.call(embedded, maskBias);
        if (computeDtype == ScalarType.Float32)
            return [embedded, .. layers];
        // Callers (cache, side network) read float32.
        Tensor[] states = [embedded, .. layers];
        var widened = states.Select(t => t.to_type(ScalarType.Float32)).ToArray();
        foreach (var t in states)
            t.Dispose();
        return widened;
    }

    /// <summary>
    /// (B, 1, 1, S) additive mask, the same as Hugging Face's: the dtype's minimum on padded keys, so they get zero
    /// weight. Shared with <see cref="BertLayerStream"/>.
    /// </summary>
    internal static Tensor MaskBias(Tensor attentionMask, ScalarType computeDtype = ScalarType.Float32)
    {
        using var scope = NewDisposeScope();
        var keep = attentionMask.to_type(ScalarType.Float32).unsqueeze(1).unsqueeze(2); // (B, 1, 1, S)
        var maskBias32 = keep.SubtractedFrom(1.0).Times(MinValue(computeDtype));
        return maskBias32.to_type(computeDtype).MoveToOuterDisposeScope();
    }
}
