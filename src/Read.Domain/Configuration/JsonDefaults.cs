using System.Text.Json;
using System.Text.Json.Serialization;

namespace Read.Domain.Configuration;

/// <summary>The JSON conventions of the API and stored documents: snake_case names, nulls omitted.</summary>
public static class JsonDefaults
{
    public static readonly JsonSerializerOptions SnakeCase = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}
