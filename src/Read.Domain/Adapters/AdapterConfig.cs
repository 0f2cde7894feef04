using System.Text.Json.Serialization;

namespace Read.Domain.Adapters;

/// <summary>adapter_config.json: everything needed to rebuild a READ adapter on its backbone.</summary>
public sealed record AdapterConfig(
    [property: JsonPropertyName("backbone_id")] string BackboneId,
    [property: JsonPropertyName("backbone_weights_hash")] string BackboneWeightsHash,
    // d: backbone width the side network was built for.
    [property: JsonPropertyName("hidden_size")] int HiddenSize,
    [property: JsonPropertyName("cell")] string Cell,
    // Hidden size of the recurrent cell.
    [property: JsonPropertyName("r")] int SideHiddenSize,
    [property: JsonPropertyName("aggregation")] string Aggregation,
    // Backbone layer indices (1-based; 0 would be the embedding output) that feed the recurrence, in order.
    [property: JsonPropertyName("layers")] IReadOnlyList<int> Layers,
    [property: JsonPropertyName("label_names")] IReadOnlyList<string> LabelNames,
    [property: JsonPropertyName("max_length")] int MaxLength,
    [property: JsonPropertyName("tokenizer")] AdapterTokenizerConfig Tokenizer,
    [property: JsonPropertyName("input_layer_norm")] bool InputLayerNorm = true,
    [property: JsonPropertyName("head")] string Head = "sequence_classification",
    [property: JsonPropertyName("pooling")] string Pooling = "cls",
    [property: JsonPropertyName("method")] string Method = "read",
    [property: JsonPropertyName("format_version")] int FormatVersion = AdapterConfig.CurrentFormatVersion)
{
    public const int CurrentFormatVersion = 1;
}
