using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Read.Domain.Configuration;

/// <summary>
/// The API's names of an enum's values: <see cref="JsonStringEnumMemberNameAttribute"/> where a member has one,
/// snake_case of the member name otherwise. One place turns names into values and back, so adding a variant is a
/// change to its enum only.
/// </summary>
public static class JsonEnum<T> where T : struct, Enum
{
    private static readonly (T Value, string Name)[] Members = Enum.GetValues<T>()
        .Select(v => (v, typeof(T).GetField(v.ToString())!.GetCustomAttribute<JsonStringEnumMemberNameAttribute>()?.Name
                         ?? JsonNamingPolicy.SnakeCaseLower.ConvertName(v.ToString())))
        .ToArray();

    /// <summary>Every name, in declaration order.</summary>
    public static IReadOnlyList<string> Names { get; } = Members.Select(m => m.Name).ToArray();

    public static string Name(T value) =>
        Members.FirstOrDefault(m => EqualityComparer<T>.Default.Equals(m.Value, value)).Name
        ?? throw new ArgumentOutOfRangeException(nameof(value), value, $"Not a {typeof(T).Name}.");

    public static bool TryParse(string? name, out T value)
    {
        foreach (var m in Members)
            if (string.Equals(m.Name, name, StringComparison.Ordinal))
            {
                value = m.Value;
                return true;
            }

        value = default;
        return false;
    }

    /// <summary>The value named <paramref name="name"/>, or an error listing the valid names.</summary>
    public static T Parse(string? name) =>
        TryParse(name, out var value) ? value : throw new FormatException(UnknownMessage(name));

    internal static string UnknownMessage(string? name) => $"must be one of {string.Join(", ", Names)} (got '{name}').";
}

/// <summary>
/// Reads and writes an enum as its <see cref="JsonEnum{T}"/> name; an unknown name, a number or a null fails with a
/// message that lists the valid names (the API answers it as a 400 naming the field's path).
/// </summary>
public sealed class JsonEnumConverter<T> : JsonConverter<T> where T : struct, Enum
{
    public override T Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        if (reader.TokenType != JsonTokenType.String)
            throw new JsonException($"The value {JsonEnum<T>.UnknownMessage(reader.TokenType.ToString().ToLowerInvariant())}");
        var name = reader.GetString();
        return JsonEnum<T>.TryParse(name, out var value) ? value : throw new JsonException($"The value {JsonEnum<T>.UnknownMessage(name)}");
    }

    public override void Write(Utf8JsonWriter writer, T value, JsonSerializerOptions options) => writer.WriteStringValue(JsonEnum<T>.Name(value));
}

/// <summary>
/// <see cref="JsonEnumConverter{T}"/> for every enum: options-level converters win over a type's own
/// [JsonConverter], so the API registers this one rather than JsonStringEnumConverter, and every enum it reads fails
/// the same clear way.
/// </summary>
public sealed class JsonEnumConverterFactory : JsonConverterFactory
{
    public override bool CanConvert(Type typeToConvert) => typeToConvert.IsEnum;

    public override JsonConverter CreateConverter(Type typeToConvert, JsonSerializerOptions options) =>
        (JsonConverter)Activator.CreateInstance(typeof(JsonEnumConverter<>).MakeGenericType(typeToConvert))!;
}
