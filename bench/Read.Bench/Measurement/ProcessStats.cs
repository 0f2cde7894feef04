using System.Diagnostics;

namespace Read.Bench.Measurement;

/// <summary>CPU seconds and peak resident memory of this process, from the OS.</summary>
internal static class ProcessStats
{
    public static double CpuSeconds()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Peak resident set size (VmHWM) in MB; Linux only.</summary>
    public static double PeakRssMb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return double.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return double.NaN;
    }
}
