using Read.Domain.Backbones;
using Read.Domain.SideNetwork;

namespace Read.Domain.FineTuning;

/// <summary>
/// What a cache stores: max length, pooling (cls: first token; mean: all positions), layers (0 = embeddings), dtype,
/// the tokenizer settings the ids came from, and the scope that may reuse it (the service scopes caches per tenant,
/// docs/decisions/009-per-tenant-activation-cache.md).
/// </summary>
internal sealed record ActivationCacheSpec(
    int MaxLength, Pooling Pooling, IReadOnlyList<int> Layers, CacheDtype Dtype, TokenizerSettings Tokenizer, string Scope = ActivationCacheSpec.SharedScope)
{
    /// <summary>The scope of single-user tools (bench, CLI): one cache per input, whoever asks.</summary>
    public const string SharedScope = "shared";
}
