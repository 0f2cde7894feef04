using System.Runtime.InteropServices;

namespace Read.Bench.Precision;

/// <summary>What the CPU is and which of the flags that decide half-precision speed it has (from /proc/cpuinfo).</summary>
internal static class HostCpu
{
    /// <summary>The flags that matter for bf16/fp16 matmuls on x86 (oneDNN picks its kernels by them).</summary>
    private static readonly string[] Relevant = ["avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16"];

    private static readonly Lazy<string> Info = new(() => File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : "");

    public static string Model =>
        Info.Value.Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal)) is { } line
            ? line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim()
            : RuntimeInformation.ProcessArchitecture.ToString();

    /// <summary>e.g. "avx2 avx512f avx512_bf16 (no avx512_fp16, amx_bf16)".</summary>
    public static string RelevantFlags
    {
        get
        {
            var flags = Info.Value.Split('\n').FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal)) is { } line
                ? line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal)
                : [];
            var present = Relevant.Where(flags.Contains).ToList();
            var absent = Relevant.Where(f => !flags.Contains(f)).ToList();
            return $"{(present.Count > 0 ? string.Join(' ', present) : "none of them")}" + (absent.Count > 0 ? $" (absent: {string.Join(", ", absent)})" : "");
        }
    }
}
