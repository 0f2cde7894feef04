using System.Diagnostics;
using System.Globalization;

namespace Read.Bench.Measurement;

/// <summary>CPU seconds and resident memory of a process, from the OS (/proc; Linux only).</summary>
internal static class ProcessStats
{
    public static double CpuSeconds()
    {
        using var p = Process.GetCurrentProcess();
        return p.TotalProcessorTime.TotalSeconds;
    }

    /// <summary>Peak resident set size (VmHWM) of this process, or of <paramref name="pid"/>, in MB.</summary>
    public static double PeakRssMb(int? pid = null) => StatusMb(pid?.ToString(CultureInfo.InvariantCulture) ?? "self", "VmHWM:");

    /// <summary>Resident set size now (VmRSS) of this process, or of <paramref name="pid"/>, in MB.</summary>
    public static double RssMb(int? pid = null) => StatusMb(pid?.ToString(CultureInfo.InvariantCulture) ?? "self", "VmRSS:");

    /// <summary>
    /// Resets this process's VmHWM to its current RSS (write 5 to /proc/self/clear_refs, Linux ≥ 4.0), so a later
    /// <see cref="PeakRssMb"/> covers only what follows; false where unsupported (the peak then includes earlier phases).
    /// </summary>
    public static bool ResetPeakRss()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static double StatusMb(string process, string field)
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{process}/status"))
                if (line.StartsWith(field, StringComparison.Ordinal))
                    return double.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024.0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // the process has exited
        }
        return double.NaN;
    }
}
