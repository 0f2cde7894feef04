using Read.Domain.Backbones;

namespace Read.Bench.Measurement;

/// <summary>
/// Forward FLOPs of a BERT encoder, as the design doc counts them: 2 × (parameters outside the embedding tables) per
/// token, plus attention's 4·S·d per token per layer. Embedding tables are lookups, not FLOPs.
/// </summary>
internal static class BackboneFlops
{
    public static long DenseParameters(Backbone backbone)
    {
        var c = backbone.Config;
        var embeddings = (long)(c.VocabSize + c.MaxPositionEmbeddings + c.TypeVocabSize) * c.HiddenSize;
        return backbone.Model.parameters().Sum(p => p.numel()) - embeddings;
    }

    /// <summary>FLOPs of one example of <paramref name="tokens"/> tokens (its own sequence length).</summary>
    public static double ForExample(BertConfig config, long denseParameters, int tokens) =>
        tokens * (2.0 * denseParameters + 4.0 * tokens * config.HiddenSize * config.NumHiddenLayers);
}
