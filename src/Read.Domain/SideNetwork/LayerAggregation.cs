using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.SideNetwork;

/// <summary>How the cell's states over the layers become one vector: mean of h_1..h_K, or last (h_K).</summary>
[JsonConverter(typeof(JsonEnumConverter<LayerAggregation>))]
public enum LayerAggregation
{
    Mean,
    Last,
}
