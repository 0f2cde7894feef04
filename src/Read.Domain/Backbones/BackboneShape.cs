namespace Read.Domain.Backbones;

/// <summary>What the side network, cache and trainer need to know about a backbone, whatever its architecture.</summary>
/// <param name="HiddenSize">d: width of every hidden state.</param>
/// <param name="NumHiddenLayers">L: transformer layers (hidden states are L + 1: the embedding output, then each layer).</param>
/// <param name="MaxPositionEmbeddings">The longest input, in tokens, the backbone computes exactly.</param>
public sealed record BackboneShape(int HiddenSize, int NumHiddenLayers, int MaxPositionEmbeddings);
