using System.Text.Json.Serialization;
using Read.Domain.Configuration;

namespace Read.Domain.SideNetwork;

/// <summary>
/// Which positions of the final hidden state a head reads: the mean over all real tokens, the first token ([CLS],
/// encoders), or the last real token (causal decoders, as LlamaForSequenceClassification reads it).
/// </summary>
[JsonConverter(typeof(JsonEnumConverter<Pooling>))]
public enum Pooling
{
    Mean,
    Cls,
    Last,
}

public static class PoolingExtensions
{
    /// <summary>One stored position per example (cls, last) rather than every real token (mean).</summary>
    public static bool IsSinglePosition(this Pooling pooling) => pooling is Pooling.Cls or Pooling.Last;
}
