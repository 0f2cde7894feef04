namespace Read.Domain.FineTuning;

/// <summary>What a cache stores: max length, pooling (cls: first token; mean: all positions), layers (0 = embeddings), dtype.</summary>
internal sealed record ActivationCacheSpec(int MaxLength, string Pooling, IReadOnlyList<int> Layers, string Dtype);
