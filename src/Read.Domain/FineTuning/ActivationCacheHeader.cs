using System.Text.Json.Serialization;
using Read.Domain.SideNetwork;

namespace Read.Domain.FineTuning;

/// <summary>The JSON header of an activation cache file (docs/activation-cache.md).</summary>
internal sealed record ActivationCacheHeader
{
    [JsonPropertyName("format")]
    public string Format { get; init; } = "read-activations";

    [JsonPropertyName("backbone_id")]
    public required string BackboneId { get; init; }

    [JsonPropertyName("backbone_weights_hash")]
    public required string BackboneWeightsHash { get; init; }

    /// <summary>SHA-256 over the examples' texts and pairs, in order (labels excluded: they do not change the states).</summary>
    [JsonPropertyName("dataset_sha256")]
    public required string DatasetSha256 { get; init; }

    /// <summary>Who may reuse the file (the service: one tenant); part of the key too.</summary>
    [JsonPropertyName("scope")]
    public required string Scope { get; init; }

    // The tokenizer settings the ids came from. Headers written before strip_accents was recorded lack the
    // required fields, do not parse, and are rebuilt.
    [JsonPropertyName("do_lower_case")]
    public required bool DoLowerCase { get; init; }

    [JsonPropertyName("strip_accents")]
    public required bool StripAccents { get; init; }

    [JsonPropertyName("tokenize_chinese_chars")]
    public required bool TokenizeChineseChars { get; init; }

    [JsonPropertyName("truncation")]
    public string Truncation { get; init; } = "longest_first";

    [JsonPropertyName("max_length")]
    public required int MaxLength { get; init; }

    /// <summary>cls: one position per example (the first token); mean: every non-padding position.</summary>
    [JsonPropertyName("pooling")]
    public required Pooling Pooling { get; init; }

    /// <summary>Backbone layers stored per position, ascending; 0 is the embedding output.</summary>
    [JsonPropertyName("layers")]
    public required IReadOnlyList<int> Layers { get; init; }

    /// <summary>fp16 or bf16, little-endian, 2 bytes per value.</summary>
    [JsonPropertyName("dtype")]
    public required CacheDtype Dtype { get; init; }

    [JsonPropertyName("hidden_size")]
    public required int HiddenSize { get; init; }

    [JsonPropertyName("examples")]
    public required int Examples { get; init; }

    /// <summary>Total stored positions P over all examples.</summary>
    [JsonPropertyName("positions")]
    public required long Positions { get; init; }

    [JsonPropertyName("payload_offset")]
    public required long PayloadOffset { get; init; }

    /// <summary>P · |layers| · hidden_size · 2.</summary>
    [JsonPropertyName("payload_bytes")]
    public required long PayloadBytes { get; init; }

    [JsonPropertyName("block_bytes")]
    public required int BlockBytes { get; init; }

    [JsonPropertyName("index_offset")]
    public required long IndexOffset { get; init; }

    [JsonPropertyName("index_bytes")]
    public required long IndexBytes { get; init; }

    /// <summary>SHA-256 of the index section (per-example offsets and lengths, then per-block payload checksums).</summary>
    [JsonPropertyName("index_sha256")]
    public required string IndexSha256 { get; init; }
}
