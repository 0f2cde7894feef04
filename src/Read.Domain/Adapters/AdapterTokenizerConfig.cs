using System.Text.Json.Serialization;

namespace Read.Domain.Adapters;

/// <summary>How inputs were tokenized when the adapter was trained.</summary>
public sealed record AdapterTokenizerConfig(
    [property: JsonPropertyName("do_lower_case")] bool DoLowerCase,
    [property: JsonPropertyName("padding")] string Padding = "longest",
    [property: JsonPropertyName("truncation")] string Truncation = "longest_first",
    [property: JsonPropertyName("type")] string Type = "wordpiece");
