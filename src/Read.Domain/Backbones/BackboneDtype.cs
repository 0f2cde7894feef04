using System.Text.Json.Serialization;
using Read.Domain.Configuration;
using static TorchSharp.torch;

namespace Read.Domain.Backbones;

/// <summary>What a backbone's frozen weights are kept in (what it computes in follows from it and the device: BackbonePrecision). bfloat16/float16 halve the weights' memory.</summary>
[JsonConverter(typeof(JsonEnumConverter<BackboneDtype>))]
public enum BackboneDtype
{
    Float32,
    [JsonStringEnumMemberName("bfloat16")]
    BFloat16,
    Float16,
}

public static class BackboneDtypes
{
    /// <summary>Parses float32/fp32, bfloat16/bf16, float16/fp16 (case-insensitive); null for anything else.</summary>
    public static BackboneDtype? Parse(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "float32" or "fp32" or "f32" => BackboneDtype.Float32,
        "bfloat16" or "bf16" => BackboneDtype.BFloat16,
        "float16" or "fp16" or "f16" or "half" => BackboneDtype.Float16,
        _ => null,
    };

    public static ScalarType ToScalarType(this BackboneDtype dtype) => dtype switch
    {
        BackboneDtype.Float32 => ScalarType.Float32,
        BackboneDtype.BFloat16 => ScalarType.BFloat16,
        BackboneDtype.Float16 => ScalarType.Float16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    /// <summary>Bytes per weight.</summary>
    public static int Size(this BackboneDtype dtype) => dtype == BackboneDtype.Float32 ? 4 : 2;

    public static string Name(this BackboneDtype dtype) => dtype.ToString().ToLowerInvariant();
}
