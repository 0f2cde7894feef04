using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.FineTuning;

/// <summary>none, or balanced: weight each class's loss by N / (K · n_class) over the training set.</summary>
[JsonConverter(typeof(JsonEnumConverter<ClassWeighting>))]
public enum ClassWeighting
{
    None,
    Balanced,
}
