using System.Text.Json.Serialization;
using Read.Domain.Configuration;
using static TorchSharp.torch;

namespace Read.Domain.FineTuning;

/// <summary>Storage type of the activation cache (JSON: fp16, bf16); two bytes per number either way.</summary>
[JsonConverter(typeof(JsonEnumConverter<CacheDtype>))]
public enum CacheDtype
{
    Fp16,
    Bf16,
}

public static class CacheDtypeExtensions
{
    public static ScalarType ToScalarType(this CacheDtype dtype) => dtype switch
    {
        CacheDtype.Fp16 => ScalarType.Float16,
        CacheDtype.Bf16 => ScalarType.BFloat16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
