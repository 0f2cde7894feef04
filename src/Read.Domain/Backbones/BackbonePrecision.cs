namespace Read.Domain.Backbones;

/// <summary>
/// Which precision a frozen backbone keeps its weights in and computes in, per device (issue 9 §2; measured in
/// docs/benchmarks/precision.md, reasoned in docs/decisions/012-devices-and-precision.md). The side network and head
/// always train in float32, whatever the backbone does.
/// </summary>
public static class BackbonePrecision
{
    /// <summary>
    /// Weights when no dtype is configured for the backbone: bfloat16 on CUDA (tensor cores; half the memory; TorchSharp
    /// 0.107 has no autocast, so mixed precision is explicit bf16 weights and activations), float32 on the CPU.
    /// </summary>
    public static BackboneDtype DefaultStorage(ReadDevice device) => device.IsCuda ? BackboneDtype.BFloat16 : BackboneDtype.Float32;

    /// <summary>
    /// What a BERT forward computes in for weights kept in <paramref name="storage"/>: the storage dtype on CUDA;
    /// float32 on the CPU, where libtorch's half-precision matmuls are slower than widening the weights per call.
    /// </summary>
    public static BackboneDtype ComputeDtype(BackboneDtype storage, ReadDevice device) => device.IsCuda ? storage : BackboneDtype.Float32;
}
