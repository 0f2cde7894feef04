using System.Text.Json;
using System.Text.Json.Serialization;

namespace Read.Domain.FineTuning;

/// <summary>A hyperparameter that is a number or the string "auto" (<see cref="ReadHyperparameters.Auto"/> in memory).</summary>
internal sealed class AutoIntConverter : JsonConverter<int>
{
    public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
            return reader.ValueTextEquals("auto") ? ReadHyperparameters.Auto : throw new JsonException("Expected a number or \"auto\".");
        var value = reader.GetInt32();
        // The sentinel must not be reachable as a number, or -1 would silently mean "auto".
        return value == ReadHyperparameters.Auto ? throw new JsonException("Expected a positive number or \"auto\".") : value;
    }

    public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options)
    {
        if (value == ReadHyperparameters.Auto)
            writer.WriteStringValue("auto");
        else
            writer.WriteNumberValue(value);
    }
}

/// <inheritdoc cref="AutoIntConverter"/>
internal sealed class AutoDoubleConverter : JsonConverter<double>
{
    public override double Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType == JsonTokenType.String)
            return reader.ValueTextEquals("auto") ? ReadHyperparameters.Auto : throw new JsonException("Expected a number or \"auto\".");
        var value = reader.GetDouble();
        return value == ReadHyperparameters.Auto ? throw new JsonException("Expected a positive number or \"auto\".") : value;
    }

    public override void Write(Utf8JsonWriter writer, double value, JsonSerializerOptions options)
    {
        if (value == ReadHyperparameters.Auto)
            writer.WriteStringValue("auto");
        else
            writer.WriteNumberValue(value);
    }
}
