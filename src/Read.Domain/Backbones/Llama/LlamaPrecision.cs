using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Read.Domain.Backbones.Llama;

/// <summary>
/// How a Llama-family backbone holds and computes: weights stored in <see cref="Storage"/> on <see cref="Device"/>,
/// activations (and the mask and rotary tables) in <see cref="Compute"/>, the device's choice
/// (<see cref="BackbonePrecision.ComputeDtype(BackboneDtype, ReadDevice)"/>). When they differ (bf16-stored weights,
/// fp32 compute on a CPU without native bf16) each projection widens its weight for the call, so the resident copy
/// stays narrow (docs/decisions/012-devices-and-precision.md). BERT keeps its own copy of this (BertPrecision).
/// </summary>
internal sealed record LlamaPrecision(ScalarType Storage, ScalarType Compute, Device Device)
{
    public static LlamaPrecision Float32Cpu { get; } = new(ScalarType.Float32, ScalarType.Float32, CPU);

    public Linear Linear(int inputs, int outputs, bool bias) => nn.Linear(inputs, outputs, bias, dtype: Storage, device: Device);

    /// <summary>
    /// The layer stream's precision: one layer is resident at a time, so its weights are converted to the compute dtype
    /// once at load instead of widened on every call (measured in docs/benchmarks/precision.md: widening per call costs
    /// a matmul's worth of memory traffic per projection, which a one-off conversion per precompute batch set avoids).
    /// </summary>
    public LlamaPrecision Converted => this with { Storage = Compute };

    /// <summary>x·Wᵀ + b in x's dtype; a weight stored narrower is widened for this call only.</summary>
    public static Tensor Project(Linear layer, Tensor x)
    {
        if (layer.weight!.dtype == x.dtype)
            return layer.call(x);
        using var weight = layer.weight.to_type(x.dtype);
        using var bias = layer.bias?.to_type(x.dtype);
        return nn.functional.linear(x, weight, bias);
    }
}
