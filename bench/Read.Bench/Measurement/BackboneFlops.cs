using Read.Domain.Backbones;
using Read.Domain.Backbones.Bert;

namespace Read.Bench.Measurement;

/// <summary>
/// Forward FLOPs of a backbone, as the design doc counts them: 2 × (parameters outside the embedding tables) per
/// token, plus attention's 4·S·d per token per layer. Embedding tables are lookups, not FLOPs.
/// </summary>
internal static class BackboneFlops
{
    public static long DenseParameters(Backbone backbone) =>
        backbone.Model.named_parameters()
            .Where(p => !p.name.EndsWith("_embeddings.weight", StringComparison.Ordinal) && !p.name.EndsWith("embed_tokens.weight", StringComparison.Ordinal))
            .Sum(p => p.parameter.numel());

    /// <summary>FLOPs of one example of <paramref name="tokens"/> tokens (its own sequence length).</summary>
    public static double ForExample(BackboneShape config, long denseParameters, int tokens) =>
        tokens * (2.0 * denseParameters + 4.0 * tokens * config.HiddenSize * config.NumHiddenLayers);
}
