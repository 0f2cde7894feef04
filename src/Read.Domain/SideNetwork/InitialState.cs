using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.SideNetwork;

/// <summary>h_0 of the recurrence: zeros, or embedding (W_0 · norm(φ_0), a d→r projection of the embedding output).</summary>
[JsonConverter(typeof(JsonEnumConverter<InitialState>))]
public enum InitialState
{
    Zeros,
    Embedding,
}
