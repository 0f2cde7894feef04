using System.Numerics;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Read.Domain.FineTuning;

/// <summary>
/// A hyperparameter that is a number or the string "auto" (<see cref="ReadHyperparameters.Auto"/> in memory), for
/// <c>int</c> (epochs, r) and <c>double</c> (learning rate).
/// </summary>
internal sealed class AutoNumberConverter<T> : JsonConverter<T> where T : struct, INumber<T>
{
    private static readonly T Auto = T.CreateChecked(ReadHyperparameters.Auto);

    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
            return reader.ValueTextEquals("auto") ? Auto : throw new JsonException("Expected a number or \"auto\".");
        // GetInt32 refuses 2.5 or 3e9 for an int; GetDouble takes any JSON number.
        var value = typeof(T) == typeof(int) ? T.CreateChecked(reader.GetInt32()) : T.CreateChecked(reader.GetDouble());
        // The sentinel must not be reachable as a number, or -1 would silently mean "auto".
        return value == Auto ? throw new JsonException("Expected a positive number or \"auto\".") : value;
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options)
    {
        if (value == Auto)
            writer.WriteStringValue("auto");
        else if (typeof(T) == typeof(int))
            writer.WriteNumberValue(int.CreateChecked(value));
        else
            writer.WriteNumberValue(double.CreateChecked(value));
    }
}
