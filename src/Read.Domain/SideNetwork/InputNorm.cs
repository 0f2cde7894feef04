using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.SideNetwork;

/// <summary>The trainable norm applied to every layer state before the cell (JSON: layernorm, rmsnorm, none).</summary>
[JsonConverter(typeof(JsonEnumConverter<InputNorm>))]
public enum InputNorm
{
    [JsonStringEnumMemberName("layernorm")]
    LayerNorm,

    [JsonStringEnumMemberName("rmsnorm")]
    RmsNorm,

    None,
}
