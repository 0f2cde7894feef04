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
    /// The layer stream's precision: only one layer is resident, so it is held in the compute dtype, converted once
    /// at load rather than widened on every batch (LlamaLayerStream rounds it through <see cref="Storage"/>). Widening
    /// per call costs most where a projection is large and the batch short: a 5120×13824 bf16 weight widened for
    /// 128 tokens runs at 0.25–0.28× of an fp32 projection (docs/benchmarks/precision.md, projection kernels).
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
