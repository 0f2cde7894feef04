using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.SideNetwork;

/// <summary>The recurrent cell READ runs across the layers (JSON: gru, rnn, lstm).</summary>
[JsonConverter(typeof(JsonEnumConverter<RecurrentCell>))]
public enum RecurrentCell
{
    Gru,

    /// <summary>Elman RNN with tanh.</summary>
    Rnn,

    Lstm,
}
