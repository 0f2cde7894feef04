namespace Read.Domain.Backbones;

/// <summary>
/// Which precision a frozen backbone keeps its weights in and computes in, per device (issue 9 §2; measured in
/// docs/benchmarks/precision.md, reasoned in docs/decisions/012-devices-and-precision.md). The side network and head
/// always train in float32, whatever the backbone does.
/// </summary>
public static class BackbonePrecision
{
    private static readonly Lazy<bool> CpuNativeBf16 = new(() => HasNativeBf16(ReadCpuInfo()));

    /// <summary>
    /// Weights when no dtype is configured for the backbone: bfloat16 on CUDA (tensor cores; half the memory; TorchSharp
    /// 0.107 has no autocast, so mixed precision is explicit bf16 weights and activations), float32 on the CPU.
    /// </summary>
    public static BackboneDtype DefaultStorage(ReadDevice device) => device.IsCuda ? BackboneDtype.BFloat16 : BackboneDtype.Float32;

    /// <summary>
    /// Whether this machine's CPU has bf16 dot-product instructions (<c>avx512_bf16</c> or <c>amx_bf16</c> among
    /// /proc/cpuinfo's flags), read once per process; false where /proc/cpuinfo is absent.
    /// </summary>
    public static bool CpuHasNativeBf16 => CpuNativeBf16.Value;

    /// <summary>What a forward computes in for weights kept in <paramref name="storage"/>, on this machine's CPU.</summary>
    public static BackboneDtype ComputeDtype(BackboneDtype storage, ReadDevice device) => ComputeDtype(storage, device, CpuHasNativeBf16);

    /// <summary>
    /// The rule, with the CPU's bf16 capability given (the registry passes <c>Read:Backbones:CpuBf16Compute</c> when
    /// set; tests force either answer). On CUDA: the storage dtype (tensor cores). On a CPU: bf16 for bf16 weights where
    /// the CPU has bf16 instructions, float32 otherwise and always for fp16 weights (widened per call). Measured in
    /// docs/benchmarks/precision.md: on an EPYC with avx512_bf16, bf16 projections ran at 3.2–5.7× fp32 (forward
    /// 1.7–1.9×) with READ's UCI accuracy unchanged; on a machine whose flags were not recorded a bf16 forward ran at
    /// 0.11× of fp32; fp16 compute ran at 0.25–0.46× (kernels, the EPYC) and 0.24–0.27× (forward, both machines).
    /// </summary>
    public static BackboneDtype ComputeDtype(BackboneDtype storage, ReadDevice device, bool cpuComputesBf16)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (device.IsCuda)
            return storage;
        return storage == BackboneDtype.BFloat16 && cpuComputesBf16 ? BackboneDtype.BFloat16 : BackboneDtype.Float32;
    }

    /// <summary>
    /// Whether /proc/cpuinfo text lists <c>avx512_bf16</c> or <c>amx_bf16</c> among the flags of every processor
    /// (libtorch's threads may run on any of them).
    /// </summary>
    internal static bool HasNativeBf16(string? cpuInfo)
    {
        var flagLines = (cpuInfo ?? "").Split('\n')
            .Where(line => line.StartsWith("flags", StringComparison.Ordinal) && line.Contains(':', StringComparison.Ordinal))
            .ToList();
        return flagLines.Count > 0 && flagLines.All(line => line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..]
            .Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)
            .Any(flag => flag is "avx512_bf16" or "amx_bf16"));
    }

    private static string? ReadCpuInfo()
    {
        try
        {
            return File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
